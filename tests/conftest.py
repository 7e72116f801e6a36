"""Shared pytest configuration: quiet TransformerLens warnings, one torch thread, offline by default."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*HookedTransformer.*")


def pytest_configure(config) -> None:
    try:
        import torch

        torch.set_num_threads(1)  # tiny models: threads cost more than they give
    except ImportError:  # pragma: no cover
        pass


# ---------------------------------------------------------------------- Neo4j server (session)
#: the URI of the server this session started (the both-stores suites may empty only that one)
_OWNED_SERVER: list[str] = []
NEO4J_ENV = ("CIRCUITDB_NEO4J_URI", "CIRCUITDB_NEO4J_USER", "CIRCUITDB_NEO4J_PASSWORD", "CIRCUITDB_NEO4J_HTTP")


@pytest.fixture(scope="session")
def neo4j_server():
    """A live Neo4j 5 for tests marked ``neo4j``: ``$CIRCUITDB_NEO4J_URI`` (with ``_USER`` / ``_PASSWORD``) when set,
    else the local server of tools/neo4j-server started on free ports with an empty database (tests/neo4j_server.py).
    Exports these variables (and ``_HTTP``, the Browser's base address, where known) while the session runs and yields them as a dict. Skips when no server can start —
    except under ``CI=true``, where that fails."""
    if os.environ.get("CIRCUITDB_NEO4J_URI"):
        yield {k: os.environ.get(k, "") for k in NEO4J_ENV}
        return
    from neo4j_server import LocalNeo4j, ServerUnavailable

    server = LocalNeo4j()
    try:
        server.start()
    except ServerUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the live Neo4j server: {e}")
        pytest.skip(f"no Neo4j server: {e}")
    saved = {k: os.environ.get(k) for k in NEO4J_ENV}
    os.environ.update(server.env())
    _OWNED_SERVER.append(server.uri)
    try:
        yield server.env()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


# ---------------------------------------------------------------------- both stores (tests/both_stores.py)
@pytest.fixture(scope="session")
def neo4j_database(neo4j_server):
    """The session's Neo4j database for the both-stores suites (tests/both_stores.py): emptied before and after."""
    if neo4j_server["CIRCUITDB_NEO4J_URI"] not in _OWNED_SERVER and os.environ.get("CIRCUITDB_NEO4J_WIPE") != "1":
        pytest.skip("the both-stores suites empty the Neo4j database; set CIRCUITDB_NEO4J_WIPE=1 to let them empty "
                    f"{os.environ['CIRCUITDB_NEO4J_URI']}")
    import neo4j

    driver = neo4j.GraphDatabase.driver(neo4j_server["CIRCUITDB_NEO4J_URI"], notifications_min_severity="OFF",
                                        auth=(neo4j_server["CIRCUITDB_NEO4J_USER"],
                                              neo4j_server["CIRCUITDB_NEO4J_PASSWORD"]))
    from both_stores import Neo4jDatabase

    db = Neo4jDatabase(driver)
    db.empty()
    yield db
    db.empty()
    driver.close()
