"""The shared write detector of ``GraphStore.run`` (circuitdb.store.readonly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdb.errors import QueryError
from circuitdb.store import cypher as cy
from circuitdb.store.readonly import assert_read_only, write_reason

WRITES = [
    "CREATE (n:Node {uid: $u})",
    "match (n) detach delete n",
    "MATCH (n:Node) WHERE n.uid = $u SET n.label = 'x'",
    "MATCH (n) REMOVE n:Head",
    "MERGE (u:Unit {uid: $u})",
    "UNWIND [1, 2] AS x FOREACH (i IN [x] | CREATE (:Node))",
    "DROP CONSTRAINT circuitdb_node_uid",
    "LOAD CSV FROM 'file:///x.csv' AS row RETURN row",
    "COPY Node FROM 'nodes.parquet'",
    "CALL apoc.create.node(['A'], {})",
    "CALL db.createLabel('X')",
    "CALL dbms.setConfigValue('db.logs.query.enabled', 'off')",
    "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'SET n.x = 1', {})",
    "UNWIND range(1, 10) AS x CALL (x) { RETURN x AS y } IN TRANSACTIONS OF 5 ROWS RETURN y",
    "START DATABASE neo4j",
    "MATCH (n) RETURN n; CREATE (m)",
    "MATCH (n) /* comment */ DELETE n",
]
READS = [
    "MATCH (n:Node {graph_id: $graph_id}) RETURN n.key AS key",
    "MATCH (n:Node) WHERE n.label = 'CREATE (x)' OR n.label = \"SET y\" RETURN n",  # keywords inside strings
    "MATCH (n:Node) RETURN n.set AS s, n.create, n.delete",  # properties named like keywords
    "MATCH (n:`CREATE`) RETURN {delete: 1, merge: 2} AS m",  # backquoted label, map keys
    "RETURN $set AS start, $remove AS stop",  # parameters and aliases
    "MATCH (n) // DELETE n\nRETURN n",  # a comment
    "CALL db.labels() YIELD label RETURN label",
    "CALL current_setting('threads') RETURN *",  # Ladybug: "set" inside "setting" is not a write
    "CALL show_tables() RETURN *",
    "MATCH p = (a:Node)-[:ATTRIBUTES*1..3]->(b:Node) WHERE all(r IN relationships(p) WHERE r.abs_weight > $w) "
    "RETURN p",
]


@pytest.mark.parametrize("q", WRITES)
def test_writes_are_detected(q: str) -> None:
    assert write_reason(q) is not None
    with pytest.raises(QueryError, match="write=True"):
        assert_read_only(q)


@pytest.mark.parametrize("q", READS)
def test_reads_pass(q: str) -> None:
    assert write_reason(q) is None, write_reason(q)
    assert_read_only(q)


def test_library_and_store_reads_are_read_only() -> None:
    """Every shipped query file and every portable read passes (no false positives on our own Cypher)."""
    root = Path(__file__).resolve().parents[2]
    texts = {p.name: p.read_text() for p in (root / "queries").glob("*.cypher")}
    texts.update({n: v for n, v in vars(cy).items() if n.isupper() and isinstance(v, str)
                  and v.lstrip().upper().startswith(("MATCH", "RETURN", "UNWIND", "WITH", "OPTIONAL"))
                  and not n.startswith(("NEO4J_", "LB_")) and n not in cy.PORTABLE_WRITES})
    bad = {n: write_reason(t) for n, t in texts.items() if write_reason(t)}
    assert not bad
    for n in ("NEO4J_CREATE_EDGES", "NEO4J_DELETE_VERSION_NODES", "NEO4J_MERGE_UNITS_AND_LINKS", *cy.PORTABLE_WRITES):
        assert write_reason(getattr(cy, n))  # and our writes are writes
