"""Every queries/*.cypher against a Python ground truth, on graphs of thousands of edges, on BOTH stores (the embedded
store and the live Neo4j server; tests/both_stores.py): each store giving the ground truth's rows is each giving the
same rows. test_parity.py also compares the two stores' rows directly, query by query."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from both_stores import STORE_KINDS, cached_store
from query_fixtures import all_paths, component_graph, edge_frame, random_dag, walks_by_depth

from circuitdb.circuits.query import get_query, list_queries, query
from circuitdb.errors import QueryError

LIBRARY = {"top_edges", "upstream", "downstream", "paths_between", "induction_pairs", "ioi_circuit",
           "recurring_units", "compare_graphs", "feature_paths", "circuit_edges"}


def _feature_graph(seed=0):
    """A feature-like graph with head nodes A{l}.{h}@{pos} on the way: random_dag with some nodes made heads."""
    g = random_dag(60, 1500, seed=seed, graph_id=f"feat-{seed}")
    nodes = g.nodes.copy()
    mid = np.flatnonzero(nodes["kind"].to_numpy() == "feature")[::7]
    nodes.loc[mid, "kind"] = "head"
    nodes.loc[mid, "key"] = [f"A{i}.0@0" for i in range(len(mid))]
    from circuitdb.graph import AttributionGraph

    return AttributionGraph(nodes, g.src, g.dst, g.weight, g.channel, g.meta)


GRAPHS: dict = {}


def library_graphs() -> dict:
    """The fixture graphs every library query runs on (both stores hold the same)."""
    graphs = {
        "big": component_graph(6, 12, seed=0, graph_id="big"),
        "big2": component_graph(6, 12, seed=1, graph_id="big2"),
        "feat": _feature_graph(0),
    }
    layers = graphs["big"].nodes["layer"].to_numpy()
    graphs["ioi"] = component_graph(6, 12, seed=2, graph_id="ioi", scale=(layers + 2.0) ** 2)
    for step, scale in ((0, 0.01), (100, 0.5), (200, 1.0)):  # a checkpoint sweep (circuit_emergence)
        g = component_graph(3, 4, seed=3, graph_id=f"sweep-{step:04d}")
        g.meta["checkpoint"] = {"kind": "step", "value": step}
        graphs[g.id] = type(g)(g.nodes, g.src, g.dst, g.weight * scale, g.channel, g.meta)
    return graphs


#: a saved circuit of "big": its 40 strongest edges, their nodes and one node without a circuit edge
CIRCUIT = ("big", "top40", 40)


def fill_library(s) -> None:
    GRAPHS.update(library_graphs())
    for g in GRAPHS.values():
        s.write_graph(g)
    gid, name, n = CIRCUIT
    top = edge_frame(GRAPHS[gid]).sort_values("abs_weight", ascending=False, kind="stable").head(n)
    keys = list(dict.fromkeys([*top.source, *top.target, "E"]))
    s.save_circuit(name, gid, keys, method="topn", params={"n": n}, scores={},
                   edges=top[["source", "target", "channel", "weight"]])


@pytest.fixture(scope="module", params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


@pytest.fixture()
def store(store_kind, request, tmp_path_factory):
    """The library graphs in one store of each kind (written once per kind; the queries only read)."""
    s = cached_store(store_kind, request, "library", tmp_path_factory.mktemp("qlib"), fill_library)
    s.graphs = GRAPHS
    return s


def test_library_is_complete_and_headers_parse():
    assert LIBRARY <= set(list_queries())
    for name in list_queries():
        q = get_query(name)
        assert q.purpose, name
        assert ":params {" in q.text, f"{name} lacks a Neo4j Browser example"
        for p in q.params:
            assert p.description, f"{name}.{p.name} has no description"


def test_top_edges(store):
    g = store.graphs["big"]
    assert g.n_edges > 3000
    ef = edge_frame(g)
    df = query(store, "top_edges", graph_id="big", limit=2000)
    exp = ef.sort_values("abs_weight", ascending=False).head(2000)
    assert len(df) == 2000
    np.testing.assert_allclose(df["abs_weight"].to_numpy(), exp["abs_weight"].to_numpy())
    assert list(zip(df.source, df.target, df.channel)) == list(zip(exp.source, exp.target, exp.channel))
    df = query(store, "top_edges", graph_id="big", limit=5000, source_kind="head", target_kind="head", channel="k",
               layer=2, min_weight=0.5)
    sel = ef[(ef.source_kind == "head") & (ef.target_kind == "head") & (ef.channel == "k") & (ef.abs_weight >= 0.5)
             & ((ef.source_layer == 2) | (ef.target_layer == 2))]
    assert len(df) == len(sel) > 100
    assert set(zip(df.source, df.target)) == set(zip(sel.source, sel.target))
    mx = query(store, "max_abs_weight", graph_id="big")
    assert mx["max_abs_weight"].iat[0] == pytest.approx(ef.abs_weight.max()) and mx["n_edges"].iat[0] == len(ef)


@pytest.mark.parametrize("params", [{"limit": 25}, {"limit": 7, "source_kind": "mlp"}, {"limit": 50, "channel": "v"},
                                    {"limit": 10, "min_weight": 2.0}, {"limit": 30, "target_kind": "logit"}])
def test_top_edges_floor_shortcut_gives_the_same_rows(store, params):
    q = get_query("top_edges")
    assert q.top_k == "min_weight"
    fast = query(store, "top_edges", graph_id="big", **params)
    plain = store.run(q.text, q.bind({"graph_id": "big", **params}))
    pd.testing.assert_frame_equal(fast, plain)
    assert len(fast) == params["limit"]


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_upstream_downstream(store, direction):
    g = store.graphs["big"]
    node = "LOGITS" if direction == "upstream" else "A0.3"
    df = query(store, direction, graph_id="big", node=node, depth=3, min_weight=1.5, limit=10_000)
    exp = walks_by_depth(g, node, 3, 1.5, up=direction == "upstream")
    assert len(df) == len(exp) > 50
    got = df.set_index(["key", "depth"]).sort_index()
    exp = exp.set_index(["key", "depth"]).sort_index()
    assert (got.index == exp.index).all()
    np.testing.assert_allclose(got["strength"], exp["strength"])
    assert (got["n_paths"].to_numpy() == exp["n_paths"].to_numpy()).all()
    assert list(df["depth"]) == sorted(df["depth"]), "merged by depth first"


@pytest.mark.parametrize("rank_by", ["product", "min"])
def test_paths_between(store, rank_by):
    g = store.graphs["big"]
    paths = all_paths(g, "E", "LOGITS", 3, 0.8)
    assert len(paths) > 1000, "enough paths to trigger Ladybug's large-result bugs"
    score = [np.prod(w) if rank_by == "product" else min(w) for _, _, w in paths]
    order = np.argsort(score)[::-1][:200]
    df = query(store, "paths_between", graph_id="big", source="E", target="LOGITS", max_hops=3, min_weight=0.8,
               rank_by=rank_by, limit=200)
    assert len(df) == 200
    np.testing.assert_allclose(df["score"].to_numpy(), np.asarray(score)[order])
    got = {(tuple(p), tuple(c)) for p, c in zip(df["path"], df["channels"])}
    exp = {(paths[i][0], paths[i][1]) for i in order}
    assert len(got & exp) >= 195  # ties at the cut may swap
    one = query(store, "paths_between", graph_id="big", source="E", target="LOGITS", max_hops=1)
    assert list(one["path"]) == [["E", "LOGITS"]] * len(one) and len(one) == 1


def test_feature_paths(store):
    g = store.graphs["feat"]
    ef = edge_frame(g)
    ok = ef.abs_weight >= 0.05
    # ground truth: all ≤3-hop paths from any embed to any logit
    exp = []
    for s in g.keys[g.nodes["kind"].to_numpy() == "embed"]:
        for t in g.keys[g.nodes["kind"].to_numpy() == "logit"]:
            exp += [(p, np.prod(w)) for p, _, w in all_paths(g, s, t, 3, 0.05)]
    assert 600 < len(exp) < 50_000
    df = query(store, "feature_paths", graph_id=g.id, max_hops=3, min_weight=0.05, limit=100_000)
    assert (df["hops"] <= 3).all() and len(df) > 500
    assert len(df) == len(exp)
    assert sorted(map(tuple, df["path"])) == sorted(p for p, _ in exp)
    # every path's score is the product of its |weights| (Ladybug 0.22 returned the bottleneck instead when the
    # branches ran as one UNION ALL statement)
    want = dict(exp)
    got = dict(zip(map(tuple, df["path"]), df["product"]))
    np.testing.assert_allclose([got[p] for p in want], [want[p] for p in want], rtol=1e-5)
    heads = query(store, "feature_paths", graph_id=g.id, max_hops=3, min_weight=0.05, through_heads=True,
                  limit=100_000)
    exp_h = [p for p, _ in exp if any(k.startswith("A") for k in p[1:-1])]
    assert sorted(map(tuple, heads["path"])) == sorted(exp_h) and len(exp_h) > 0
    assert ok.any()
    one = query(store, "feature_paths", graph_id=g.id, source="E@1", max_hops=2, min_weight=0.05)
    assert all(p[0] == "E@1" for p in one["path"])


def test_compare_graphs(store):
    a, b = edge_frame(store.graphs["big"]), edge_frame(store.graphs["big2"])
    df = query(store, "compare_graphs", graph_a="big", graph_b="big2", min_weight=1.0, max_ratio=0.5, limit=100_000)
    m = a[a.abs_weight >= 1.0].merge(b[["source", "target", "channel", "weight"]], how="left",
                                     on=["source", "target", "channel"], suffixes=("", "_b"))
    m["abs_b"] = m["weight_b"].abs().fillna(0.0)
    exp = m[m.abs_b <= 0.5 * m.abs_weight]
    assert len(df) == len(exp) > 100
    assert set(zip(df.source, df.target, df.channel)) == set(zip(exp.source, exp.target, exp.channel))
    assert df["absent_in_b"].sum() == exp["weight_b"].isna().sum()


def test_induction_pairs_on_fixture(store):
    g = store.graphs["big"]
    ef = edge_frame(g)
    nd = g.nodes.set_index("key")
    sel = ef[(ef.channel == "k") & (ef.source_kind == "head") & (ef.target_kind == "head")
             & (ef.source_layer < ef.target_layer)].copy()
    sel["score"] = sel.abs_weight * nd.loc[sel.source, "prev_token_score"].to_numpy() * \
        nd.loc[sel.target, "induction_score"].to_numpy()
    sel = sel[(nd.loc[sel.source, "prev_token_score"].to_numpy() >= 0.1)
              & (nd.loc[sel.target, "induction_score"].to_numpy() >= 0.1)]
    df = query(store, "induction_pairs", graph_id="big", min_prev_token_score=0.1, min_induction_score=0.1,
               limit=50)
    exp = sel.sort_values("score", ascending=False).head(50)
    assert list(zip(df.prev_token_head, df.induction_head)) == list(zip(exp.source, exp.target))

def _ioi_reference(ef, n_nm, n_si, n_f):
    to_logit = ef[(ef.target_kind == "logit") & (ef.source_kind == "head")].groupby("source")["weight"].sum().abs()
    nm = to_logit[to_logit > 0].sort_values(ascending=False).head(n_nm)
    q = ef[(ef.channel == "q") & ef.target.isin(nm.index) & (ef.source_kind == "head")]
    si = q.groupby("source")["abs_weight"].sum().sort_values(ascending=False).head(n_si)
    f = ef[ef.target.isin(si.index) & (ef.source_kind == "head")]
    fe = f.groupby("source")["abs_weight"].sum().sort_values(ascending=False).head(n_f)
    return nm, si, fe


@pytest.mark.parametrize("gid,n_nm,n_si,n_f", [("big", 3, 2, 2), ("big2", 2, 3, 2), ("ioi", 3, 3, 3), ("ioi", 1, 4, 2), ("ioi", 5, 1, 4)])
def test_ioi_circuit_on_fixture(store, gid, n_nm, n_si, n_f):
    ef = edge_frame(store.graphs[gid])
    nm, si, fe = _ioi_reference(ef, n_nm, n_si, n_f)
    roles = query(store, "ioi_circuit", graph_id=gid, n_name_movers=n_nm, n_s_inhibition=n_si, n_feeders=n_f)
    assert list(roles[roles.role == "name_mover"]["head"]) == list(nm.index)
    assert list(roles[roles.role == "s_inhibition"]["head"]) == list(si.index)
    feeders = roles[roles.role.isin(["induction", "duplicate_token"])]
    assert list(feeders["head"]) == list(fe.index)
    np.testing.assert_allclose(feeders["score"], fe.to_numpy())


def test_ioi_circuit_feeders_exist_somewhere(store):
    nm, si, fe = _ioi_reference(edge_frame(store.graphs["ioi"]), 3, 3, 3)
    assert len(fe) == 3 and len(si) == 3


def test_recurring_units(store):
    df = query(store, "recurring_units", min_weight=2.5, kind="head", graph_ids=["big", "big2"], limit=1000)
    rows = []
    for gid in ("big", "big2"):
        ef = edge_frame(store.graphs[gid])
        ef = ef[ef.abs_weight >= 2.5]
        both = pd.concat([ef[ef.source_kind == "head"][["source", "abs_weight"]].rename(columns={"source": "k"}),
                          ef[ef.target_kind == "head"][["target", "abs_weight"]].rename(columns={"target": "k"})])
        rows.append(both.groupby("k")["abs_weight"].max().rename(gid))
    exp = pd.concat(rows, axis=1)
    n = exp.notna().sum(axis=1)
    assert len(df) == len(exp) > 20
    got = df.assign(k=df["unit"].str.split("/").str[-1]).set_index("k")
    assert (got.loc[n.index, "n_graphs"].to_numpy() == n.to_numpy()).all()
    np.testing.assert_allclose(got.loc[n.index, "mean_strength"], exp.mean(axis=1))
    assert (query(store, "recurring_units", min_weight=2.5, kind="head", min_graphs=2)["n_graphs"] >= 2).all()


def test_circuit_edges_follow_the_saved_membership(store):
    gid, name, n = CIRCUIT
    exp = edge_frame(store.graphs[gid]).sort_values(["abs_weight", "source", "target", "channel"],
                                                    ascending=[False, True, True, True]).head(n)
    df = query(store, "circuit_edges", graph_id=gid, name=name)
    assert list(zip(df.source, df.target, df.channel)) == list(zip(exp.source, exp.target, exp.channel))
    np.testing.assert_allclose(df["weight"], exp["weight"])
    assert len(query(store, "circuit_edges", graph_id=gid, name=name, limit=7)) == 7
    assert len(query(store, "circuit_edges", graph_id="big2", name=name)) == 0


def test_parameter_checks(store):
    with pytest.raises(QueryError, match="needs parameter 'graph_id'"):
        query(store, "top_edges")
    with pytest.raises(QueryError, match="no parameter"):
        query(store, "top_edges", graph_id="big", bogus=1)
    with pytest.raises(QueryError, match="must be integer"):
        query(store, "top_edges", graph_id="big", limit="10")
    with pytest.raises(QueryError, match="valid options"):
        query(store, "no_such_query")
    with pytest.raises(QueryError):
        query(store, "MATCH (n:Node) DETACH DELETE n")
    assert len(query(store, "MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", g="big")) == 1


@pytest.mark.parametrize("evil", [
    "big' OR 1=1 //", "big\" }) MATCH (n) DETACH DELETE n //", "big */ MATCH (x) RETURN x /*", "{graph_id: 'big'}",
    "big`) RETURN 1 //", "big\nUNION ALL MATCH (n) RETURN n", "$graph_id", "big'}) RETURN 1 AS x UNION ALL //",
])
def test_injection_cannot_change_a_query(store, evil):
    n_before = int(store.run("MATCH (n:Node) RETURN count(n) AS n")["n"].iat[0])
    for name, params in [("top_edges", {"graph_id": evil}), ("upstream", {"graph_id": "big", "node": evil}),
                         ("paths_between", {"graph_id": "big", "source": evil, "target": "LOGITS"}),
                         ("top_edges", {"graph_id": "big", "source_kind": evil}),
                         ("recurring_units", {"kind": evil, "model": evil, "graph_ids": [evil]})]:
        df = query(store, name, **params)
        assert len(df) == 0, (name, evil)
    assert int(store.run("MATCH (n:Node) RETURN count(n) AS n")["n"].iat[0]) == n_before


def test_union_queries_with_empty_branches(store):
    # every UNION ALL branch empty, or only some: Ladybug 0.22 crashed on a LIMIT inside such a union
    assert len(query(store, "upstream", graph_id="big", node="E", depth=4)) == 0
    assert len(query(store, "downstream", graph_id="big", node="LOGITS", depth=4)) == 0
    assert len(query(store, "paths_between", graph_id="big", source="LOGITS", target="E", max_hops=4)) == 0
    some = query(store, "paths_between", graph_id="big", source="A4.0", target="LOGITS", max_hops=4, limit=5)
    assert 0 < len(some) <= 5 and some["hops"].between(1, 4).all()
    g = store.graphs["feat"]
    assert len(query(store, "feature_paths", graph_id=g.id, source="nope", max_hops=4)) == 0


def test_query_files_and_typos(store, tmp_path):
    f = tmp_path / "mine.cypher"
    f.write_text("// mine: count a graph's nodes\n// @param graph_id: string   the graph\n"
                 "MATCH (n:Node {graph_id: $graph_id}) RETURN count(n) AS n\n")
    assert int(query(store, str(f), graph_id="big")["n"].iat[0]) == store.graphs["big"].n_nodes
    with pytest.raises(QueryError, match="valid options: circuit_edges, circuit_emergence, compare_graphs"):
        query(store, "top-edges", graph_id="big")
    bad = tmp_path / "bad.cypher"
    bad.write_text("// bad: uses an undeclared parameter\nMATCH (n:Node {graph_id: $gid}) RETURN n\n")
    with pytest.raises(QueryError, match="undeclared"):
        query(store, str(bad))
