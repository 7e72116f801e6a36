"""The store suite, run on BOTH stores (embedded Ladybug and the live Neo4j server): round trips, subgraph reads
against numpy ground truth, listing and deletes, shared units, idempotent rewrites, read-only ``run``, values as
parameters, circuits, batched writes. One test per behaviour, parametrised by the module-scoped ``store_kind``
(tests/both_stores.py: each test gets an empty store; read-only tests share one filled once per store kind).
Embedded-only mechanics (journal, COPY failures, buffer pool, file locks) are in test_embedded.py / test_crash.py;
Neo4j-only ones (chunk kills, gc, concurrent writer processes, access modes) in test_neo4j_live.py.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from both_stores import STORE_KINDS, cached_store, count, open_empty_store, row_counts
from synthetic_graphs import NASTY, expected_subgraph, mixed_graph

from circuitdb.errors import ConfigError, GraphNotFoundError, QueryError
from circuitdb.graph import AttributionGraph
from circuitdb.store.base import GraphStore


@pytest.fixture(scope="module", params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def graph() -> AttributionGraph:
    return mixed_graph("g-mixed")


@pytest.fixture()
def store(store_kind, request, tmp_path):
    s = open_empty_store(store_kind, request, tmp_path)
    yield s
    s.close()


@pytest.fixture()
def filled(store_kind, request, tmp_path_factory, graph):
    """One store holding ``graph`` and a second graph of the same model, shared by the read-only tests."""
    def fill(s: GraphStore) -> None:
        s.write_graph(graph)
        s.write_graph(mixed_graph("g-other", seed=1, n_edges=3000))

    return cached_store(store_kind, request, "test_stores.filled", tmp_path_factory.mktemp("filled"), fill)


# ============================================================================ read-only tests (one filled store)
def test_round_trip_is_identical_including_node_order_and_meta(filled, graph):
    back = filled.read_graph("g-mixed")
    assert back.diff(graph) == []
    pd.testing.assert_frame_equal(back.nodes, graph.nodes)  # node order and every column, NaN included
    assert back.meta == graph.meta
    assert np.isnan(back.nodes["influence"]).sum() == np.isnan(graph.nodes["influence"]).sum() > 0


SUBGRAPH_CASES = [
    dict(min_abs_weight=1.5),
    dict(min_abs_weight=0.5, kinds=["head", "feature"]),
    dict(kinds=["feature"], layers=[0, 2]),
    dict(min_abs_weight=0.1, positions=[0, 3], layers=[1]),
    dict(min_abs_weight=0.2, kinds=["head", "mlp", "embed", "logit"], layers=[-1, 0, 1, 3], positions=[1, 2, 4]),
    dict(kinds="error"),
    dict(min_abs_weight=99.0),
    dict(kinds=[]),
]


@pytest.mark.parametrize("filters", SUBGRAPH_CASES, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_read_subgraph_matches_numpy_ground_truth(filled, graph, filters):
    got = filled.read_subgraph("g-mixed", **filters)
    want = expected_subgraph(graph, **filters)
    assert got.diff(want) == []
    assert list(got.keys) == list(want.keys)  # node order kept


def test_read_subgraph_without_filters_is_the_whole_graph(filled, graph):
    assert filled.read_subgraph("g-mixed").diff(graph) == []


def test_subgraph_bad_filter_values(filled):
    with pytest.raises(ConfigError, match="layers"):
        filled.read_subgraph("g-mixed", layers=["x"])
    with pytest.raises(ConfigError, match="min_abs_weight"):
        filled.read_subgraph("g-mixed", min_abs_weight="big")


def test_units_are_position_independent_and_shared_across_graphs(filled, graph):
    unit = filled.run("MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE n.graph_id = $g AND n.key = $k "
                      "RETURN u.uid AS u, u.kind AS k", {"g": "g-mixed", "k": "A1.3@4"})
    assert unit.values.tolist() == [["toy/A1.3", "head"]]
    feat = filled.run("MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE n.graph_id = $g AND n.key = $k "
                      "RETURN u.uid AS u", {"g": "g-mixed", "k": "F2:7@0"})
    assert feat["u"].tolist() == ["toy/tc-L2/F2:7"]
    kinds = graph.nodes["kind"]
    n_units = (3 * 4) + 3 + 3 * 20  # heads + MLPs + features, over all positions
    assert count(filled, "MATCH (u:Unit) RETURN count(u)") == n_units
    per_graph = int(kinds.isin(["head", "mlp", "feature"]).sum())
    assert count(filled, "MATCH ()-[r:INSTANCE_OF]->() RETURN count(r)") == 2 * per_graph
    # one hop across graphs: every unit has instances in both graphs
    both = filled.run("MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE u.uid = $u RETURN DISTINCT n.graph_id AS g "
                      "ORDER BY g", {"u": "toy/A0.0"})
    assert both["g"].tolist() == ["g-mixed", "g-other"]


@pytest.mark.parametrize("cypher", [
    "MATCH (n:Node) DELETE n",
    "MATCH (n:Node) DETACH DELETE n",
    "MATCH (n:Node) SET n.label = 'x'",
    "CREATE (:Graph {id: 'evil'})",
    "MERGE (g:Graph {id: 'evil'})",
    "MATCH (n:Node) REMOVE n.label",
    "DROP TABLE Node",
    "COPY Node FROM 'x.csv'",
    "match (n:Node)\nwith n /* comment */ detach\ndelete n",
])
def test_run_refuses_writes(filled, cypher):
    before = row_counts(filled)
    with pytest.raises(QueryError, match="write=True"):
        filled.run(cypher)
    assert row_counts(filled) == before


def test_run_allows_write_words_inside_strings_and_comments(filled):
    df = filled.run("MATCH (n:Node) WHERE n.key = 'CREATE (x) DELETE x' // SET n.a = 1\n"
                    "RETURN count(n) AS c /* MERGE */")
    assert df["c"].tolist() == [0]
    df = filled.run("MATCH (n:Node {key: $k}) WHERE n.graph_id = $g RETURN n.kind AS kind",
                    {"k": "M1@2", "g": "g-mixed"})
    assert df["kind"].tolist() == ["mlp"]


def test_read_only_transaction_is_a_second_wall(filled, monkeypatch):
    """With the text check turned off, the store's read-only transaction (Ladybug: BEGIN TRANSACTION READ ONLY;
    Neo4j: a READ-access session, enforced by the server) still refuses the write."""
    monkeypatch.setattr(sys.modules[type(filled).__module__], "assert_read_only", lambda cypher: None)
    before = row_counts(filled)
    with pytest.raises(QueryError, match="read-only|read access mode"):
        filled.run("CREATE (:Graph {id: 'slipped'})")
    assert row_counts(filled) == before and not filled.has_graph("slipped")


# ============================================================================ tests that write (an empty store each)
def test_round_trip_store_to_graph_to_store(store):
    """The other direction: what a store returns, written back under another id, reads back identical."""
    store.write_graph(mixed_graph("g-other", seed=1, n_edges=3000))
    first = store.read_graph("g-other")
    store.write_graph(first, graph_id="copy")
    again = store.read_graph("copy")
    assert again.id == "copy" and again.diff(first, meta=False) == []


def test_empty_and_edgeless_graphs_round_trip(store):
    nodes = pd.DataFrame({"key": ["E", "LOGITS"], "kind": ["embed", "logit"], "layer": [-1, 2]})
    edgeless = AttributionGraph(nodes, [], [], [], meta={"id": "edgeless", "model": "toy"})
    store.write_graph(edgeless)
    assert store.read_graph("edgeless").diff(edgeless) == []
    empty = AttributionGraph(pd.DataFrame({"key": [], "kind": []}), [], [], [], meta={"id": "empty"})
    store.write_graph(empty)
    assert store.read_graph("empty").diff(empty) == []


def test_list_has_delete_and_not_found(store, graph):
    assert list(store.list_graphs().columns) == ["id", "model", "granularity", "method", "metric", "prompt",
                                                 "n_nodes", "n_edges", "created_at"]
    store.write_graph(graph)
    store.write_graph(mixed_graph("g-b", seed=2, n_edges=500))
    lg = store.list_graphs()
    assert lg["id"].tolist() == ["g-b", "g-mixed"]
    row = lg.set_index("id").loc["g-mixed"]
    assert (row["n_nodes"], row["n_edges"], row["model"]) == (graph.n_nodes, graph.n_edges, "toy")
    assert store.has_graph("g-b") and not store.has_graph("g-c")
    assert store.delete_graph("g-b") is True
    assert store.delete_graph("g-b") is False
    assert not store.has_graph("g-b")
    assert count(store, "MATCH (n:Node) WHERE n.graph_id = $g RETURN count(n)", g="g-b") == 0
    with pytest.raises(GraphNotFoundError, match="'g-b'.*g-mixed"):
        store.read_graph("g-b")
    assert store.read_graph("g-mixed").diff(graph) == []


def test_delete_removes_only_units_no_other_graph_uses(store):
    store.write_graph(mixed_graph("a", n_edges=500, n_feat=4))
    store.write_graph(mixed_graph("b", n_edges=500, n_feat=6))
    store.write_graph(mixed_graph("c", n_edges=500, model="m2", n_feat=2))
    units = "MATCH (u:Unit) WHERE u.model = $m RETURN count(u)"
    assert (count(store, units, m="toy"), count(store, units, m="m2")) == (12 + 3 + 3 * 6, 12 + 3 + 3 * 2)
    store.delete_graph("b")  # features 4, 5 were b's alone
    assert (count(store, units, m="toy"), count(store, units, m="m2")) == (12 + 3 + 3 * 4, 12 + 3 + 3 * 2)
    store.delete_graph("c")
    assert count(store, units, m="m2") == 0
    assert count(store, "MATCH (:Node)-[r:INSTANCE_OF]->(:Unit) RETURN count(r)") == 5 * (12 + 3 + 3 * 4)


def test_rewrite_is_idempotent_and_replaces(store, graph):
    store.write_graph(graph)
    before = row_counts(store)
    store.write_graph(graph)
    assert row_counts(store) == before
    smaller = mixed_graph("g-mixed", seed=5, n_edges=800, n_feat=3, key_suffix="x")
    store.write_graph(smaller)
    assert store.read_graph("g-mixed").diff(smaller) == []
    assert count(store, "MATCH (n:Node) RETURN count(n)") == smaller.n_nodes
    assert count(store, "MATCH ()-[r:ATTRIBUTES]->() RETURN count(r)") == smaller.n_edges


@pytest.mark.parametrize("kw", [{}, {"full": True}, {"lease_seconds": 0}, {"full": True, "lease_seconds": 60}])
def test_gc_has_one_signature_and_leaves_current_versions(store, graph, kw):
    """Both stores take the same gc keywords; after rewrites nothing current is collected and the graph reads whole."""
    store.write_graph(graph)
    store.write_graph(graph)
    assert isinstance(store.gc(**kw), int)  # the rewrite's own collection may already have taken the old version
    assert store.gc(**kw) == 0  # nothing left to collect
    assert store.read_graph("g-mixed").diff(graph) == []


def test_run_with_write_true_writes_and_errors_are_query_errors(store):
    store.run("CREATE (:Graph {sid: $id, id: $id, current: true, meta: $m})", {"id": "manual", "m": "{}"},
              write=True)
    assert store.has_graph("manual")
    with pytest.raises(QueryError, match="failed"):
        store.run("MATCH (n:Node RETURN n")
    with pytest.raises(QueryError, match="one statement"):
        store.run("RETURN 1 AS a; RETURN 2 AS b")
    with pytest.raises(QueryError):
        store.run("   ")


def test_hostile_ids_keys_and_labels_round_trip_and_stay_values(store):
    bad_id = "x' OR 1=1 //\n}) MATCH (n) DETACH DELETE n /* \"evil\" */"
    nodes = pd.DataFrame({"key": ["E", "A0.0'}//", "L\n*/\"x"], "kind": ["embed", "head", "logit"],
                          "layer": [-1, 0, 1], "head": [-1, 0, -1], "label": [NASTY, "a'b", "c\"d"]})
    g = AttributionGraph(nodes, [0, 1, 0], [1, 2, 2], [0.5, -1.0, 2.0], [3, 0, 0], {"id": bad_id, "model": "m'}"})
    other = mixed_graph("bystander", n_edges=300)
    store.write_graph(other)
    store.write_graph(g)
    assert store.read_graph(bad_id).diff(g) == []
    assert set(store.list_graphs()["id"]) == {bad_id, "bystander"}
    got = store.run("MATCH (n:Node) WHERE n.graph_id = $g AND n.label = $l RETURN n.key AS key",
                    {"g": bad_id, "l": NASTY})
    assert got["key"].tolist() == ["E"]
    sub = store.read_subgraph(bad_id, min_abs_weight=0.9, kinds=["head", "logit", "x' OR 'a'='a"])
    assert sub.diff(expected_subgraph(g, min_abs_weight=0.9, kinds=["head", "logit"])) == []
    store.save_circuit("c'}//", bad_id, ["A0.0'}//"], method="m", params={"q": "'"}, scores={})
    assert store.read_circuit_record("c'}//")["node_keys"] == ["A0.0'}//"]
    assert store.delete_graph(bad_id)
    assert store.read_graph("bystander").diff(other) == []


def test_circuits_save_list_read_replace(store, graph):
    store.write_graph(graph)
    edges = pd.DataFrame({"source": ["A0.1@0", "M0@0"], "target": ["M0@0", "L:7@4"], "channel": ["", ""],
                          "weight": [0.125, -2.5]})
    uid = store.save_circuit("ioi", graph.id, ["M0@0", "A0.1@0", "L:7@4"], method="topn", params={"n": 3},
                             scores={"cpr": 0.75}, edges=edges)
    assert uid == f"{graph.id}/circuit/ioi"
    rec = store.read_circuit_record("ioi")
    assert rec["node_keys"] == ["A0.1@0", "M0@0", "L:7@4"]  # graph node order
    assert rec["params"] == {"n": 3} and rec["scores"] == {"cpr": 0.75} and rec["method"] == "topn"
    pd.testing.assert_frame_equal(rec["edges"], edges)
    store.save_circuit("ioi", graph.id, ["E@0"], method="x", params={}, scores={})  # replaces
    assert store.read_circuit_record("ioi", graph.id)["node_keys"] == ["E@0"]
    assert store.list_circuits()["name"].tolist() == ["ioi"]
    assert store.read_circuit_record("ioi")["edges"] is None
    with pytest.raises(ConfigError, match="not in graph"):
        store.save_circuit("bad", graph.id, ["E@0", "nope"], method="m", params={}, scores={})
    with pytest.raises(GraphNotFoundError):
        store.save_circuit("bad", "no-graph", ["E@0"], method="m", params={}, scores={})
    with pytest.raises(ConfigError, match="no circuit 'zzz'.*ioi"):
        store.read_circuit_record("zzz")
    store.write_graph(graph, graph_id="g2")
    store.save_circuit("ioi", "g2", ["E@1"], method="m", params={}, scores={})
    with pytest.raises(ConfigError, match="several graphs"):
        store.read_circuit_record("ioi")
    assert store.list_circuits("g2")["graph_id"].tolist() == ["g2"]
    store.write_graph(graph)  # rewriting a graph keeps its circuits, re-linked to the new version by key
    assert store.list_circuits()["graph_id"].tolist() == ["g-mixed", "g2"]
    assert store.read_circuit_record("ioi", graph.id)["node_keys"] == ["E@0"]
    store.delete_graph("g2")
    assert store.list_circuits()["graph_id"].tolist() == ["g-mixed"]


def test_rewrite_relinks_circuits_or_refuses_naming_them(store, graph):
    store.write_graph(graph)
    store.save_circuit("keep", graph.id, ["A0.1@0", "L:7@4"], method="m", params={}, scores={})
    store.save_circuit("empty", graph.id, [], method="m", params={}, scores={})
    smaller = graph.subgraph(node_mask=graph.keys != "A0.1@0")
    before = row_counts(store)
    with pytest.raises(ConfigError, match=r"circuit\(s\) \['keep'\].*A0\.1@0"):
        store.write_graph(smaller)
    assert row_counts(store) == before and store.read_graph(graph.id).diff(graph) == []
    store.write_graph(mixed_graph(graph.id, seed=5))  # same keys, new weights: re-linked
    assert store.read_circuit_record("keep")["node_keys"] == ["A0.1@0", "L:7@4"]
    assert store.read_circuit_record("empty")["node_keys"] == []
    assert count(store, "MATCH (:Circuit)-[r:INCLUDES]->() RETURN count(r)") == 2  # old links went with the old nodes


def test_circuit_edges_are_a_membership_the_queries_follow(store, graph):
    """A saved circuit's edges are listed on its INCLUDES links (``channel:target``) and followed in the graph by
    queries/circuit_edges.cypher; a rewrite of the graph re-links them (same edges, the new weights)."""
    from circuitdb.circuits.query import query
    from circuitdb.graph import CHANNELS

    store.write_graph(graph)
    top = np.argsort(-graph.abs_weight, kind="stable")[:6]
    edges = pd.DataFrame({"source": graph.keys[graph.src[top]], "target": graph.keys[graph.dst[top]],
                          "channel": np.asarray(CHANNELS, dtype=object)[graph.channel[top]],
                          "weight": graph.weight[top]})
    keys = list(dict.fromkeys([*edges.source, *edges.target, "E@0"]))
    store.save_circuit("c", graph.id, keys, method="topn", params={}, scores={}, edges=edges)
    want = list(zip(edges.source, edges.target, edges.channel))
    df = query(store, "circuit_edges", graph_id=graph.id, name="c")
    assert list(zip(df.source, df.target, df.channel)) == want  # strongest first, as saved
    np.testing.assert_allclose(df["weight"], edges["weight"])
    doubled = AttributionGraph(graph.nodes, graph.src, graph.dst, graph.weight * 2, graph.channel, graph.meta)
    store.write_graph(doubled)
    df = query(store, "circuit_edges", graph_id=graph.id, name="c")
    assert list(zip(df.source, df.target, df.channel)) == want
    np.testing.assert_allclose(df["weight"], 2 * edges["weight"])
    assert store.read_circuit_record("c")["node_keys"] == [k for k in graph.keys if k in set(keys)]
    before = row_counts(store)
    with pytest.raises(ConfigError, match="not among the circuit's nodes"):
        store.save_circuit("bad", graph.id, keys[:1], method="m", params={}, scores={}, edges=edges)
    with pytest.raises(ConfigError, match="channel 'x'"):
        store.save_circuit("bad", graph.id, keys, method="m", params={}, scores={}, edges=edges.assign(channel="x"))
    assert row_counts(store) == before


def test_graph_ids_that_prefix_each_other_do_not_collide(store):
    """uids are ``sid/key`` with a fresh sid per version: graph 'a' key 'b/c' and graph 'a/b' key 'c' (the same
    ``graph_id/key`` string) are both stored, each intact."""
    a = AttributionGraph(pd.DataFrame({"key": ["b/c", "E"], "kind": ["head", "embed"]}), [1], [0], [1.0],
                         meta={"id": "a"})
    ab = AttributionGraph(pd.DataFrame({"key": ["c"], "kind": ["head"]}), [], [], [], meta={"id": "a/b"})
    store.write_graph(a)
    store.write_graph(ab)
    assert store.list_graphs()["id"].tolist() == ["a", "a/b"]
    assert store.read_graph("a").diff(a) == [] and store.read_graph("a/b").diff(ab) == []


def test_write_graphs_in_one_flip_and_complete_ids(store, store_kind, monkeypatch):
    from circuitdb.store import versions as vs

    graphs = [mixed_graph(f"batch-{i}", n_edges=200, seed=i) for i in range(5)]
    phases: list[str] = []
    monkeypatch.setattr(vs, "phase_hook", phases.append)
    assert store.write_graphs(graphs) == [g.id for g in graphs]
    assert phases.count("flip") == 1  # one flip makes all of them visible
    if store_kind == "embedded":
        assert phases.count("commit") == 1  # and one COPY transaction holds all their rows
    for g in graphs:
        assert store.read_graph(g.id).diff(g) == []
    assert store.complete_ids(["batch-0", "batch-4", "nope"]) == {"batch-0", "batch-4"}
    assert store.write_graphs([]) == []
    with pytest.raises(ConfigError, match="graph ids"):
        store.write_graphs(graphs[:2], ["x"])
    with pytest.raises(ConfigError, match="more than once"):
        store.write_graphs([graphs[0], graphs[0]])


def test_unit_uid_keyed_by_model_identity(store):
    a = mixed_graph("a", n_edges=50)
    a.meta["model_id"] = "cfg-hash-1"
    b = mixed_graph("b", n_edges=50)  # same model name, no identity: keyed by the name
    store.write_graph(a)
    store.write_graph(b)
    units = store.run("MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE n.key = 'A0.0@0' RETURN n.graph_id AS g, "
                      "u.uid AS u, u.model AS m ORDER BY g")
    assert units.values.tolist() == [["a", "cfg-hash-1/A0.0", "toy"], ["b", "toy/A0.0", "toy"]]
