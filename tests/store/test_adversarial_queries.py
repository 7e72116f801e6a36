"""Hostile Cypher through ``EmbeddedStore.run`` (no ``write=True``): comment and string tricks, several statements,
transaction control, every write and file clause in odd casing. Each must be refused with QueryError and leave every
table byte-for-byte unchanged (checksums of all rows of all tables) and no file written.

Two walls: the lexical check (:mod:`circuitdb.store.readonly`, read under both comment readings) and the engine
(one prepared statement; its ``EXPLAIN`` plan made of read operators only, :mod:`circuitdb.store.plan_check`;
inside a READ ONLY transaction). ``test_engine_wall_alone`` and ``test_engine_refuses_files_and_transactions``
turn the first one off.
"""

from __future__ import annotations

import hashlib

import pytest
from synthetic_graphs import mixed_graph

from circuitdb.errors import QueryError
from circuitdb.store import cypher as cy
from circuitdb.store import embedded as emb
from circuitdb.store import plan_check
from circuitdb.store.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = EmbeddedStore(tmp_path_factory.mktemp("adv") / "db").connect()
    s.write_graph(mixed_graph("victim", n_edges=800))
    s.save_circuit("c", "victim", ["A0.0@0", "L:7@4"], method="m", params={}, scores={})
    yield s
    s.close()


def checksum(store: EmbeddedStore) -> str:
    """Every row of every table (nodes: all properties; rels: endpoints' keys + properties), order-independent."""
    h = hashlib.sha256()
    for table in cy.LB_TABLES:
        cols = store._df(f"CALL table_info('{table}') RETURN name")["name"].tolist()
        if table.isupper():  # a REL table
            q = f"MATCH (a)-[r:{table}]->(b) RETURN a.uid AS a_, b.uid AS b_" + "".join(
                f", r.{c} AS {c}" for c in cols)
        else:
            q = f"MATCH (n:{table}) RETURN " + ", ".join(f"n.{c} AS {c}" for c in cols)
        rows = sorted(repr(list(rec.values())) for rec in store._df(q).to_dict("records"))
        h.update(f"{table}:{len(rows)}:".encode())
        for r in rows:
            h.update(r.encode())
    return h.hexdigest()


W = "MATCH (n:Node) DETACH DELETE n"
HOSTILE = [
    # comment tricks (the /* **/ comment Ladybug's lexer does not close where a naive reader does)
    "MATCH (g:Graph) RETURN g.id /* **/ 'x */ ; COMMIT; MATCH (n:Node) DETACH DELETE n; //'",
    "/* **/ 'x */ COPY (MATCH (g:Graph) RETURN g.id) TO '{out}' //'",
    "/* **/ 'x */ EXPORT DATABASE '{out}' //'",
    "RETURN 1 /* ****/ ; " + W,
    "RETURN 1 // comment \n; " + W,
    "/* unclosed comment " + W,
    "RETURN 'unclosed string ; " + W,
    "RETURN \"a\\\"\" ; " + W,
    "RETURN 'it\\'s' ; " + W,
    "RETURN `a``b` AS x; " + W,
    # several statements
    "RETURN 1; " + W,
    "MATCH (n:Node) RETURN count(n);MATCH (n:Node) SET n.label = 'x'",
    "RETURN 1 ;\n\n CREATE (:Graph {sid: 'evil', id: 'evil', current: true})",
    # transaction control
    "COMMIT", "commit", "CoMmIt", "ROLLBACK", "BEGIN TRANSACTION", "begin transaction read only", "CHECKPOINT",
    # writes in odd casing and layouts
    "match (n:Node) detach delete n", "MATCH (n:Node) DeTaCh\nDeLeTe n", "MATCH (n:Node) SET n.label = 'x'",
    "MATCH (n:Node) set n.label = 'x'", "MATCH (n:Node) REMOVE n.label", "create (:Graph {sid: 'e', id: 'e'})",
    "MERGE (g:Graph {sid: 'e'})", "MATCH (n:Node) WITH n LIMIT 1 DELETE n", "DROP TABLE Circuit",
    "ALTER TABLE Node ADD x INT64", "CREATE NODE TABLE Evil(id STRING PRIMARY KEY)",
    "UNWIND [1, 2] AS x CREATE (:StoreInfo {key: 'k' + x})",
    # files and extensions
    "COPY (MATCH (g:Graph) RETURN g.id) TO '{out}'", "copy (MATCH (g:Graph) RETURN g.id) to '{out}'",
    "COPY Node FROM '{out}'", "EXPORT DATABASE '{out}'", "export database '{out}'", "IMPORT DATABASE '{out}'",
    "INSTALL json", "install httpfs", "LOAD EXTENSION json", "LOAD FROM '{out}' RETURN *",
    "ATTACH '{out}' AS other (dbtype lbug)", "DETACH other", "USE other",
    "CALL db.createLabel('x')",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_query_is_refused_and_changes_nothing(store, tmp_path, text):
    out = tmp_path / "leak"
    before = checksum(store)
    with pytest.raises(QueryError):
        store.run(text.replace("{out}", str(out)))
    assert checksum(store) == before
    assert not out.exists()
    assert store.run("RETURN 1 AS one")["one"].tolist() == [1]  # the connection is still usable


@pytest.mark.parametrize("text", [t for t in HOSTILE if "{out}" not in t and "INSTALL" not in t.upper()
                                  and "LOAD" not in t.upper() and not t.upper().startswith(("DETACH O", "USE"))])
def test_engine_wall_alone(store, monkeypatch, text):
    """With the lexical check off, the engine still refuses: several statements are not prepared, writes fail in
    the READ ONLY transaction (a lone COMMIT/CHECKPOINT may run: it has nothing to commit)."""
    monkeypatch.setattr(emb, "assert_read_only", lambda cypher: None)
    before = checksum(store)
    try:
        store.run(text)
    except QueryError:
        pass
    assert checksum(store) == before


#: file writes and transaction control that a READ ONLY transaction lets through: the plan check refuses them alone
ENGINE_ONLY = [
    "COPY (MATCH (g:Graph) RETURN g.id) TO '{out}'", "copy (match (g:Graph) return g.id) to '{out}'",
    "CoPy (MATCH (n:Node) RETURN n.uid, n.label) tO '{out}'",
    "/* **/ 'x */ COPY (MATCH (g:Graph) RETURN g.id) TO '{out}' //'",
    "// a comment\nCOPY (MATCH (g:Graph) RETURN g.meta) TO '{out}' (header=true)",
    "/* c */ copy /* c */ (MATCH (g:Graph) RETURN g.id) /* c */ to '{out}'",
    "EXPORT DATABASE '{out}'", "export database '{out}'", "ExPoRt DaTaBaSe '{out}' (format='parquet')",
    "/* **/ 'x */ EXPORT DATABASE '{out}' //'", "// x\n export /* y */ database '{out}'",
    "COMMIT", "commit", "CoMmIt", "/* c */ COMMIT", "ROLLBACK", "CHECKPOINT", "checkpoint",
    "BEGIN TRANSACTION", "begin transaction read only",
    "MATCH (n:Node) SET n.label = 'x'", "create (:Graph {sid: 'e', id: 'e'})", "DROP TABLE Circuit",
    "CALL clear_warnings()", "CALL threads=1", "CREATE MACRO m(x) AS x + 1",
]


@pytest.mark.parametrize("text", ENGINE_ONLY)
def test_engine_refuses_files_and_transactions(store, tmp_path, monkeypatch, text):
    """With the lexical check off, the engine's plan refuses COPY … TO, EXPORT, transaction control and writes
    before anything runs: QueryError, no file, every table unchanged, the READ ONLY transaction not ended."""
    monkeypatch.setattr(emb, "assert_read_only", lambda cypher: None)
    out = tmp_path / "leak"
    before = checksum(store)
    with pytest.raises(QueryError, match="does not only read|failed before it ran"):
        store.run(text.replace("{out}", str(out)))
    assert checksum(store) == before
    # planning EXPORT DATABASE creates its (empty) target directory; nothing else may appear, and no file at all
    assert not out.exists() or (out.is_dir() and not any(out.iterdir()) and "EXPORT" in text.upper())
    assert store.run("RETURN 1 AS one")["one"].tolist() == [1]


def test_plan_check_is_an_allow_list():
    """An operator or table function the module does not know is refused; a plan without operators too."""
    assert plan_check.plan_refusal("│ RESULT_COLLECTOR[1] │\n│ SCAN_NODE_TABLE[0] │") is None
    assert "NEW_WRITER" in plan_check.plan_refusal("│ RESULT_COLLECTOR[1] │\n│ NEW_WRITER[0] │")
    assert "FTS_QUERY" in plan_check.plan_refusal("│ TABLE_FUNCTION_CALL[0] │ Function: FTS_QUERY")
    assert "no operator" in plan_check.plan_refusal("")


@pytest.mark.parametrize("text", [
    "MATCH (n:Node) WHERE n.label = 'CREATE (x) ; DELETE x' RETURN count(n) AS c",
    "MATCH (n:Node) RETURN count(n) AS c /* SET n.x = 1 ; */",
    "MATCH (n:Node) RETURN count(n) AS c // ; DETACH DELETE n",
    "MATCH (n:Node) WHERE n.key <> \"a;b\" RETURN count(n) AS c;",
    "MATCH (n:Node) RETURN n.label AS set LIMIT 0",
])
def test_reads_that_look_odd_still_run(store, text):
    assert len(store.run(text)) <= 1


def test_checksum_sees_a_one_property_change(tmp_path):
    s = EmbeddedStore(tmp_path / "db").connect()
    s.write_graph(mixed_graph("g", n_edges=50))
    before = checksum(s)
    s.run("MATCH (n:Node) WHERE n.key = 'E@0' SET n.label = 'changed'", write=True)
    assert checksum(s) != before
    s.close()


def test_a_read_is_planned_once_per_text_and_parameter_types(store, monkeypatch):
    planned = []
    real = store._prepare
    monkeypatch.setattr(store, "_prepare", lambda c: (planned.append(c) if c.startswith(plan_check.EXPLAIN) else None)
                        or real(c))
    text = "RETURN $k AS v /* plan-cache test */"
    for k in ("head", "mlp", "head"):
        store.run(text, {"k": k})
    store.run(text, {"k": 3})  # another parameter type: planned again
    assert len(planned) == 2
