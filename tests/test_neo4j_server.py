"""The local Neo4j server (tools/neo4j-server) and docker-compose.yml run the same Neo4j version; the server speaks
Bolt with the password it was given and serves HTTP discovery and the Browser."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pom_and_compose_name_the_same_neo4j_version() -> None:
    pom = (ROOT / "tools" / "neo4j-server" / "pom.xml").read_text()
    server = re.search(r"<neo4j\.version>(\d+)\.(\d+)\.(\d+)</neo4j\.version>", pom).groups()
    image = re.search(r"image:\s*neo4j:(\d+)\.(\d+)(?:\.(\d+))?-community", (ROOT / "docker-compose.yml").read_text())
    assert image is not None, "docker-compose.yml must run a neo4j:<major>.<minor>-community image"
    assert image.groups()[:2] == server[:2]
    assert image.group(3) in (None, server[2])


@pytest.mark.neo4j
def test_local_server_speaks_bolt_http_and_serves_the_browser(neo4j_server) -> None:
    import neo4j

    uri, user, password = (neo4j_server[k] for k in ("CIRCUITDB_NEO4J_URI", "CIRCUITDB_NEO4J_USER",
                                                     "CIRCUITDB_NEO4J_PASSWORD"))
    with neo4j.GraphDatabase.driver(uri, auth=(user, password)) as d:
        rec = d.execute_query("CALL dbms.components() YIELD versions, edition RETURN versions[0] AS v, edition")
        assert rec.records[0]["v"].startswith("5.26") and rec.records[0]["edition"] == "community"
    with neo4j.GraphDatabase.driver(uri, auth=(user, password + "x")) as d, pytest.raises(neo4j.exceptions.AuthError):
        d.verify_connectivity()
    http = neo4j_server.get("CIRCUITDB_NEO4J_HTTP")
    if not http:
        pytest.skip("CIRCUITDB_NEO4J_HTTP is not set (an outside server): no HTTP checks")
    with urllib.request.urlopen(http + "/", timeout=10) as r:
        assert b'"neo4j_edition":"community"' in r.read()
    with urllib.request.urlopen(http + "/browser/", timeout=10) as r:
        assert b"<title>Neo4j Browser</title>" in r.read()
