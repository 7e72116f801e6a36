"""Neo4jStore against a driver test double (no server can run here; test_neo4j_live.py covers a real one).

The double (neo4j_double.py) records every (query, params, access mode, transaction) and emulates our statements in
memory with copy-on-begin / swap-on-commit transactions, so these tests see both the calls and their effect.
"""

from __future__ import annotations

import math
import re

import neo4j
import numpy as np
import pytest
from neo4j_double import NASTY_ID, FakeDriver, sample_graph

from circuitdb.errors import ConfigError, GraphNotFoundError, QueryError, StoreError
from circuitdb.graph import KINDS
from circuitdb.store import cypher as cy
from circuitdb.store.neo4j import READ, WRITE, Neo4jStore
from circuitdb.store.readonly import is_write_query

ENV = ("CIRCUITDB_NEO4J_URI", "CIRCUITDB_NEO4J_USER", "CIRCUITDB_NEO4J_PASSWORD", "CIRCUITDB_NEO4J_DATABASE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ENV:
        monkeypatch.delenv(k, raising=False)


def make(batch_size: int = 10_000) -> tuple[Neo4jStore, FakeDriver]:
    d = FakeDriver()
    return Neo4jStore(driver=d, batch_size=batch_size).connect(), d


def write_calls(d: FakeDriver) -> list:
    return [c for c in d.calls if c.mode == WRITE]


# ---------------------------------------------------------------------- connect / config
def test_constructor_does_no_io_and_connect_creates_schema_once() -> None:
    d = FakeDriver()
    store = Neo4jStore(driver=d)
    assert d.events == [] and d.calls == []
    store.connect()
    assert d.events[0] == ("verify_connectivity",)
    assert [c.query for c in d.calls] == list(cy.NEO4J_SCHEMA)
    assert all(c.tx == "auto" and c.mode == WRITE for c in d.calls)  # DDL outside data transactions
    uniques = {m.groups() for c in d.calls
               for m in [re.search(r"FOR \((\w):(\w+)\) REQUIRE \1\.(\w+) IS UNIQUE", c.query)] if m}
    assert {(label, prop) for _, label, prop in uniques} == {("Node", "uid"), ("Graph", "id"), ("Unit", "uid"),
                                                             ("Circuit", "uid")}
    assert any("ATTRIBUTES" in q and "abs_weight" in q for q in cy.NEO4J_SCHEMA)
    assert any("(n:Node) ON (n.graph_id)" in q for q in cy.NEO4J_SCHEMA)
    assert all("IF NOT EXISTS" in q for q in cy.NEO4J_SCHEMA)
    n = len(d.calls)
    store.connect()
    assert len(d.calls) == n  # idempotent


def test_env_config_and_arguments_override(monkeypatch) -> None:
    monkeypatch.setenv("CIRCUITDB_NEO4J_URI", "neo4j://db.example:7687")
    monkeypatch.setenv("CIRCUITDB_NEO4J_USER", "alice")
    monkeypatch.setenv("CIRCUITDB_NEO4J_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("CIRCUITDB_NEO4J_DATABASE", "graphs")
    s = Neo4jStore()
    assert (s.uri, s.user, s.database) == ("neo4j://db.example:7687", "alice", "graphs")
    assert "s3cret-pw" not in repr(s)
    s2 = Neo4jStore("bolt://other:7687", user="bob", password="pw2", database="neo4j")
    assert (s2.uri, s2.user, s2.database) == ("bolt://other:7687", "bob", "neo4j")

    made = {}

    def fake_driver(uri, auth=None, **kw):
        made.update(uri=uri, auth=auth)
        return FakeDriver()

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", fake_driver)
    s.connect()
    assert made == {"uri": "neo4j://db.example:7687", "auth": ("alice", "s3cret-pw")}
    assert s._driver.sessions[0]["database"] == "graphs"
    s.close()
    assert s._driver is None


def test_missing_uri_and_bad_batch_size_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="CIRCUITDB_NEO4J_URI"):
        Neo4jStore()
    for bad in (0, -5, "10", True, 2.5):
        with pytest.raises(ConfigError, match="batch_size"):
            Neo4jStore(driver=FakeDriver(), batch_size=bad)


def test_injected_driver_is_not_closed_by_store() -> None:
    store, d = make()
    store.close()
    assert not d.closed


def test_access_mode_constants_match_driver() -> None:
    assert (READ, WRITE) == (neo4j.READ_ACCESS, neo4j.WRITE_ACCESS)


# ---------------------------------------------------------------------- writes
def test_round_trip_and_idempotent_rewrite() -> None:
    store, d = make(batch_size=4)
    g = sample_graph("rt")
    assert store.write_graph(g) == "rt"
    back = store.read_graph("rt")
    assert g.diff(back) == []
    assert back.keys.tolist() == g.keys.tolist()  # node order restored
    assert math.isnan(back.nodes["activation"].iat[0]) and back.nodes["activation"].iat[2] == 1.5
    store.write_graph(g)
    assert len(d.db.state.nodes) == g.n_nodes and len(d.db.state.edges) == g.n_edges
    assert store.list_graphs()["id"].tolist() == ["rt"]
    g2 = sample_graph("rt", scale=-2.0).subgraph(node_mask=np.arange(9) != 6)
    store.write_graph(g2, graph_id="rt")  # replace with a different graph
    assert g2.diff(store.read_graph("rt"), meta=False) == []
    assert len(d.db.state.nodes) == g2.n_nodes


def test_empty_graph_round_trip() -> None:
    import pandas as pd

    from circuitdb.graph import AttributionGraph

    store, d = make()
    empty = AttributionGraph(pd.DataFrame({"key": [], "kind": []}), [], [], [], meta={"id": "empty"})
    store.write_graph(empty)
    back = store.read_graph("empty")
    assert (back.n_nodes, back.n_edges, back.id) == (0, 0, "empty")
    reads = [c for c in d.calls if c.mode == READ]
    assert len({c.tx for c in reads}) == 1 and len(reads) == 3  # graph, nodes and edges: one snapshot


def test_batching_by_batch_size() -> None:
    g = sample_graph("b")
    store, d = make(batch_size=2)
    store.write_graph(g)
    edge_calls = [c for c in d.calls if c.query == cy.NEO4J_CREATE_EDGES]
    assert [len(c.params["rows"]) for c in edge_calls] == [2] * 6  # 12 edges
    node_calls = [c for c in d.calls if c.query in cy.NEO4J_CREATE_NODES.values()]
    assert all(1 <= len(c.params["rows"]) <= 2 for c in node_calls)
    assert sum(len(c.params["rows"]) for c in node_calls) == g.n_nodes
    assert {r["uid"] for c in node_calls for r in c.params["rows"]} == {f"b/{k}" for k in g.keys}
    row = next(r for c in edge_calls for r in c.params["rows"] if r["s"] == "b/E@0" and r["t"] == "b/A0.1@0")
    assert row == {"s": "b/E@0", "t": "b/A0.1@0", "w": 0.4, "a": 0.4, "c": "v"}
    store2, d2 = make(batch_size=5)
    store2.write_graph(g)
    assert [len(c.params["rows"]) for c in d2.calls if c.query == cy.NEO4J_CREATE_EDGES] == [5, 5, 2]
    store2.write_graph(g)  # batched delete: loops while a batch comes back full
    deletes = [c for c in d2.calls if c.query == cy.NEO4J_DELETE_EDGES_BATCH and c.tx == d2.calls[-1].tx]
    assert len(deletes) == 3 and all(c.params["batch_size"] == 5 for c in deletes)  # 5 + 5 + 2


def test_kind_labels() -> None:
    assert set(cy.NEO4J_KIND_LABELS) == set(KINDS)
    store, d = make()
    store.write_graph(sample_graph("k"))
    for c in d.calls:
        if c.query in cy.NEO4J_CREATE_NODES.values():
            kind = {r["kind"] for r in c.params["rows"]}
            assert len(kind) == 1
            label = cy.NEO4J_KIND_LABELS[kind.pop()]
            assert f":Node:`{label}`" in c.query
    labels = {n["props"]["key"]: n["labels"] for n in d.db.state.nodes.values()}
    assert labels["A0.1@1"] == ["Node", "Head"] and labels["F0:3@1"] == ["Node", "Feature"]
    assert labels["L:5@1"] == ["Node", "Logit"] and labels["ERR0@1"] == ["Node", "Error"]


def test_units_shared_across_graphs() -> None:
    store, d = make()
    store.write_graph(sample_graph("u1"))
    store.write_graph(sample_graph("u2"))
    assert set(d.db.state.units) == {"toy/A0.1", "toy/A1.0", "toy/M0", "toy/tc'0/F0:3"}
    assert len(d.db.state.instance_of) == 2 * 5  # per-position heads share a unit
    store.delete_graph("u1")
    assert len(d.db.state.units) == 4  # still used by u2
    store.delete_graph("u2")
    assert d.db.state.units == {}


def test_one_write_transaction_per_write_graph() -> None:
    store, d = make(batch_size=3)
    store.write_graph(sample_graph("t1"))
    store.write_graph(sample_graph("t1"))
    data_writes = [c for c in write_calls(d) if c.tx != "auto"]
    txs = sorted({c.tx for c in data_writes})
    assert len(txs) == 2
    for tx in txs:
        assert ("commit", tx) in d.events and ("rollback", tx) not in d.events
        assert sum(1 for e in d.events if e[:2] == ("begin", tx)) == 1
    assert [c.tx for c in d.calls if c.tx == "auto"] == ["auto"] * len(cy.NEO4J_SCHEMA)


@pytest.mark.parametrize("fail_at", ["edges", "nodes", "commit"])
def test_failure_mid_write_rolls_back_and_keeps_old_graph(fail_at: str) -> None:
    store, d = make(batch_size=3)
    old = sample_graph("atom")
    store.write_graph(old)
    new = sample_graph("atom", scale=3.0)
    seen = []

    def fail_on(query, params):
        if fail_at == "edges" and query == cy.NEO4J_CREATE_EDGES:
            seen.append(1)
            return len(seen) == 2  # the second edge batch
        return fail_at == "nodes" and query == cy.NEO4J_CREATE_NODES["feature"]

    d.fail_on = fail_on
    d.fail_commit = fail_at == "commit"
    with pytest.raises(StoreError, match="atom") as err:
        store.write_graph(new)
    assert isinstance(err.value.__cause__, (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError))
    tx = d.calls[-1].tx
    if fail_at == "commit":
        assert ("commit", tx) in d.events
    else:
        assert ("rollback", tx) in d.events and ("commit", tx) not in d.events
        assert any(c.query == cy.NEO4J_DELETE_NODES_BATCH and c.tx == tx for c in d.calls)  # old graph was deleted...
    d.fail_on, d.fail_commit = None, False
    assert old.diff(store.read_graph("atom")) == []  # ...but nothing of the failed transaction is visible


def test_first_write_failure_leaves_nothing() -> None:
    store, d = make()
    d.fail_on = lambda q, p: q == cy.NEO4J_CREATE_EDGES
    with pytest.raises(StoreError):
        store.write_graph(sample_graph("none"))
    d.fail_on = None
    assert store.list_graphs().empty and d.db.state.nodes == {}
    with pytest.raises(GraphNotFoundError, match="none"):
        store.read_graph("none")


def test_ids_with_quotes_braces_and_comments_are_parameters_only() -> None:
    store, d = make(batch_size=4)
    g = sample_graph(NASTY_ID)
    store.write_graph(g)
    assert g.diff(store.read_graph(NASTY_ID)) == []
    store.save_circuit("c'}//", NASTY_ID, ["A1.0@1"], method="m", params={}, scores={})
    assert store.read_circuit_record("c'}//")["node_keys"] == ["A1.0@1"]
    assert store.delete_graph(NASTY_ID) is True
    module_texts = {v for k, v in vars(cy).items() if isinstance(v, str)} | set(cy.NEO4J_SCHEMA) \
        | set(cy.NEO4J_CREATE_NODES.values()) | {cy.read_subgraph_edges(())}
    for c in d.calls:
        assert c.query in module_texts, c.query  # only fixed texts: nothing is spliced in
        for needle in (NASTY_ID, "c'}//", "tc'0", "quoted"):
            assert needle not in c.query


# ---------------------------------------------------------------------- reads
def test_reads_use_read_access() -> None:
    store, d = make()
    store.write_graph(sample_graph("r"))
    store.save_circuit("c", "r", ["A1.0@1"], method="m", params={}, scores={})
    n_sessions, n_calls = len(d.sessions), len(d.calls)
    store.read_graph("r")
    store.read_subgraph("r", min_abs_weight=0.5)
    store.list_graphs()
    store.has_graph("r")
    store.list_circuits()
    store.read_circuit_record("c")
    store.run("MATCH (n:Node) RETURN count(n) AS n")
    assert {s["default_access_mode"] for s in d.sessions[n_sessions:]} == {READ}
    assert {c.mode for c in d.calls[n_calls:]} == {READ}
    assert all(c.tx.startswith("managed-read") for c in d.calls[n_calls:])


def test_read_subgraph_filters_match_ground_truth() -> None:
    store, _ = make()
    g = sample_graph("s")
    store.write_graph(g)
    cases = [dict(min_abs_weight=0.5), dict(kinds=["head", "logit"]), dict(layers=[0]), dict(positions=[1]),
             dict(min_abs_weight=0.25, kinds=["head", "feature", "logit", "mlp"], positions=[1])]
    for f in cases:
        nd = g.nodes
        ok = np.ones(g.n_nodes, bool)
        ok &= nd["kind"].isin(f.get("kinds", KINDS)).to_numpy()
        ok &= nd["layer"].isin(f.get("layers", nd["layer"])).to_numpy()
        ok &= nd["pos"].isin(f.get("positions", nd["pos"])).to_numpy()
        emask = (g.abs_weight >= f.get("min_abs_weight", 0)) & ok[g.src] & ok[g.dst]
        touched = np.zeros(g.n_nodes, bool)
        touched[g.src[emask]] = touched[g.dst[emask]] = True
        want = g.subgraph(edge_mask=emask, node_mask=touched)
        got = store.read_subgraph("s", **f)
        assert want.diff(got, meta=False) == [], f
        assert got.n_edges == int(emask.sum()) > 0, f
    with pytest.raises(ConfigError, match="valid options"):
        store.read_subgraph("s", kinds=["heads"])


def test_not_found_and_driver_errors_are_wrapped() -> None:
    store, d = make()
    store.write_graph(sample_graph("exists"))
    with pytest.raises(GraphNotFoundError, match="'missing'.*'exists'"):
        store.read_graph("missing")
    assert store.delete_graph("missing") is False
    d.fail_on = lambda q, p: q == cy.LIST_GRAPHS
    with pytest.raises(StoreError, match="injected failure") as err:
        store.list_graphs()
    assert isinstance(err.value.__cause__, neo4j.exceptions.TransientError)
    d.fail_on = lambda q, p: True
    with pytest.raises(QueryError, match="injected failure"):
        store.run("RETURN 1 AS x")


# ---------------------------------------------------------------------- run()
def test_run_refuses_writes_unless_allowed() -> None:
    store, d = make()
    n = len(d.calls)
    for q in ("MATCH (n:Node) DETACH DELETE n", "CREATE (:Node {uid: 'x'})", "MATCH (n) SET n.x = 1",
              "MERGE (n:Unit {uid: $u})", "MATCH (n) REMOVE n:Head", "CALL apoc.create.node(['A'], {})",
              "DROP CONSTRAINT circuitdb_node_uid"):
        assert is_write_query(q)
        with pytest.raises(QueryError, match="write=True"):
            store.run(q, {"u": 1})
    assert len(d.calls) == n  # refused before reaching the driver
    d.db.canned["MATCH (n:Node {uid: $u}) SET n.label = $l RETURN n"] = [{"n": {"uid": "x", "label": "y"}}]
    out = store.run("MATCH (n:Node {uid: $u}) SET n.label = $l RETURN n", {"u": "x", "l": np.str_("y")}, write=True)
    assert d.calls[-1].mode == WRITE and d.calls[-1].tx.startswith("managed-write")
    assert d.sessions[-1]["default_access_mode"] == WRITE
    assert out.to_dict("records") == [{"n": {"uid": "x", "label": "y"}}]
    assert type(d.calls[-1].params["l"]) is str  # numpy values made plain


def test_run_returns_dataframe_with_columns_and_params() -> None:
    store, d = make()
    q = "MATCH (n:Node) WHERE n.graph_id = $g RETURN n.key AS key, n.layer AS layer"
    d.db.canned[q] = [{"key": "A0.1", "layer": np.int64(0)}, {"key": "M0", "layer": 0}]
    df = store.run(q, {"g": "x'}//", "layers": np.array([1, 2])})
    assert list(df.columns) == ["key", "layer"] and df["key"].tolist() == ["A0.1", "M0"]
    assert d.calls[-1].params == {"g": "x'}//", "layers": [1, 2]}
    assert "x'}//" not in d.calls[-1].query


# ---------------------------------------------------------------------- circuits
def test_circuits_save_list_read_replace() -> None:
    store, d = make(batch_size=2)
    store.write_graph(sample_graph("cg"))
    store.write_graph(sample_graph("cg2"))
    import pandas as pd

    edges = pd.DataFrame({"source": ["A0.1@1"], "target": ["L:5@1"], "weight": [0.5]})
    uid = store.save_circuit("ioi", "cg", ["L:5@1", "A0.1@1", "E@1"], method="topn", params={"n": 3},
                             scores={"cpr": 0.9}, edges=edges)
    assert uid == "cg/circuit/ioi"
    rec = store.read_circuit_record("ioi")
    assert rec["node_keys"] == ["E@1", "A0.1@1", "L:5@1"]  # node order of the graph
    assert (rec["params"], rec["scores"], rec["method"]) == ({"n": 3}, {"cpr": 0.9}, "topn")
    assert rec["edges"].to_dict("records") == edges.to_dict("records")
    store.save_circuit("ioi", "cg", ["A1.0@1"], method="topn", params={}, scores={})  # replace
    assert store.read_circuit_record("ioi", "cg")["node_keys"] == ["A1.0@1"]
    store.save_circuit("ioi", "cg2", ["A1.0@1"], method="x", params={}, scores={})
    with pytest.raises(ConfigError, match="several graphs"):
        store.read_circuit_record("ioi")
    assert store.list_circuits()["uid"].tolist() == ["cg/circuit/ioi", "cg2/circuit/ioi"]
    assert store.list_circuits("cg2")["graph_id"].tolist() == ["cg2"]
    with pytest.raises(ConfigError, match="'nope'"):
        store.read_circuit_record("nope")
    with pytest.raises(GraphNotFoundError, match="'ghost'"):
        store.save_circuit("c", "ghost", ["A"], method="m", params={}, scores={})
    before = store.read_circuit_record("ioi", "cg")
    with pytest.raises(ConfigError, match=r"\['NOPE'\] are not in graph 'cg' \(1 of 2 missing\)"):
        store.save_circuit("ioi", "cg", ["A1.0@1", "NOPE"], method="m", params={}, scores={})
    assert store.read_circuit_record("ioi", "cg")["node_keys"] == before["node_keys"]  # rolled back
    store.write_graph(sample_graph("cg"))  # rewriting a graph drops its circuits
    assert store.list_circuits("cg").empty


# ---------------------------------------------------------------------- against the embedded store
def test_same_answers_as_embedded_store(tmp_path) -> None:
    """Both stores share rows.py; the Neo4j side (double) and the embedded side (real Ladybug) must agree."""
    pytest.importorskip("ladybug")
    from circuitdb.store.embedded import EmbeddedStore

    g = sample_graph(NASTY_ID)
    neo, _ = make(batch_size=3)
    with EmbeddedStore(str(tmp_path / "db")) as emb:
        for s in (neo, emb):
            s.write_graph(g)
            s.save_circuit("c", NASTY_ID, ["L:5@1", "A0.1@1"], method="m", params={"a": [1, 2]}, scores={"s": 0.5})
        assert neo.read_graph(NASTY_ID).diff(emb.read_graph(NASTY_ID)) == []
        f = dict(min_abs_weight=0.25, kinds=["head", "feature", "logit", "mlp"], positions=[1])
        assert neo.read_subgraph(NASTY_ID, **f).diff(emb.read_subgraph(NASTY_ID, **f)) == []
        assert neo.list_graphs().equals(emb.list_graphs())
        assert neo.list_circuits().equals(emb.list_circuits())
        a, b = neo.read_circuit_record("c"), emb.read_circuit_record("c")
        assert {k: v for k, v in a.items() if k != "created_at"} == {k: v for k, v in b.items() if k != "created_at"}
