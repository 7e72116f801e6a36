"""Pruning: exact masks on a hand-computed graph, a dense reference of circuit-tracer's algorithm on random graphs,
and invariants (tokens/logits kept, no dead ends, kept influence reaches the threshold)."""

from __future__ import annotations

import numpy as np
import pytest
from fixture_graphs import component_graph, random_dag, tiny_graph

from circuitdb.circuits.circuit import Circuit
from circuitdb.circuits.prune import (
    find_threshold, greedy_prune, influence_prune, prune, prune_result, threshold_prune, topn_prune,
)
from circuitdb.errors import ConfigError


def _kept(res):
    g = res.graph
    keys = g.keys
    return (sorted(keys[res.node_mask]),
            sorted(f"{keys[s]}>{keys[t]}" for s, t in zip(g.src[res.edge_mask], g.dst[res.edge_mask])))


def test_influence_hand_computed():
    # L in-edges |w| 3, 1.5, 1 → Â .545/.273/.182; I(A0.0)=.545, I(A0.1)=.273, I(E)=1.0 → 0.8 threshold keeps E, A0.0
    res = influence_prune(tiny_graph())
    np.testing.assert_allclose(res.node_influence, [1.0, 3 / 5.5, 1.5 / 5.5, 0.0, 0.0])
    nodes, edges = _kept(res)
    assert nodes == ["A0.0", "E", "LOGITS"]
    assert edges == ["A0.0>LOGITS", "E>A0.0", "E>LOGITS"]
    # pruned edge scores .75, .75, .25 (of 1.75): 0.8 of the total needs only the first two
    nodes, edges = _kept(influence_prune(tiny_graph(), edge_threshold=0.8))
    assert edges == ["A0.0>LOGITS", "E>A0.0"]
    # cumulative node scores as circuit-tracer: E first (1/1.818), then A0.0
    np.testing.assert_allclose(res.node_scores[:2], [1 / (1 + 4.5 / 5.5), 1.0 - (1.5 / 5.5) / (1 + 4.5 / 5.5)])


def test_topn_threshold_greedy_hand_computed():
    g = tiny_graph()
    assert _kept(topn_prune(g, n=2))[1] == ["A0.0>LOGITS", "E>A0.0"]
    # |w| ≥ 1 drops E→A0.1 (0.1), so A0.1 has no input and A1.0 follows it out as a dead end
    nodes, edges = _kept(threshold_prune(g, threshold=1.0))
    assert nodes == ["A0.0", "E", "LOGITS"] and edges == ["A0.0>LOGITS", "E>A0.0", "E>LOGITS"]
    # greedy: A0.0→L (3), E→A0.0 (2), A0.1→L (1.5); A0.1 has no input yet → dead end
    assert _kept(greedy_prune(g, n=3))[1] == ["A0.0>LOGITS", "E>A0.0"]
    assert _kept(greedy_prune(g, n=4))[1] == ["A0.0>LOGITS", "E>A0.0", "E>LOGITS"]
    nodes, edges = _kept(greedy_prune(g, n=5))
    assert edges == ["A0.0>LOGITS", "A0.1>LOGITS", "E>A0.0", "E>A0.1", "E>LOGITS"]
    assert "A1.0" not in nodes  # never reachable from the logits


def _dense_reference(g, node_threshold=0.8, edge_threshold=0.98):
    """circuit-tracer's prune_graph on a dense matrix (rows = targets), written independently of prune.py."""
    n = g.n_nodes
    A = np.zeros((n, n))
    np.add.at(A, (g.dst, g.src), g.weight)
    kinds = g.nodes["kind"].to_numpy()
    always = np.isin(kinds, ["embed", "logit"])
    w = np.zeros(n)
    p = g.nodes["probability"].to_numpy()
    w[kinds == "logit"] = np.nan_to_num(p[kinds == "logit"], nan=1.0 / (kinds == "logit").sum())

    def norm(M):
        M = np.abs(M)
        return M / np.maximum(M.sum(1, keepdims=True), 1e-10)

    def infl(M):
        return w @ (np.linalg.inv(np.eye(n) - M) - np.eye(n))

    I = infl(norm(A))
    node = (I >= find_threshold(I, node_threshold)) | always
    P = A * node[:, None] * node[None, :]
    Pn = norm(P)
    scores = Pn * (infl(Pn) + w)[:, None]
    edge = scores >= find_threshold(scores.ravel(), edge_threshold)
    edge &= P != 0
    needs_in = np.isin(kinds, ["head", "mlp", "feature"])
    while True:
        new = node & (always | (edge.any(0) & (edge.any(1) | ~needs_in)))
        edge = edge & new[:, None] & new[None, :]
        if (new == node).all():
            break
        node = new
    return node, edge


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_influence_matches_dense_reference(seed):
    g = random_dag(300, 3000, seed=seed)
    res = influence_prune(g)
    node, edge = _dense_reference(g)
    assert (res.node_mask == node).all()
    assert (res.edge_mask == edge[g.dst, g.src]).all()


def _assert_invariants(res):
    g = res.graph
    kinds = g.nodes["kind"].to_numpy()
    always = np.isin(kinds, ["embed", "logit"])
    assert res.node_mask[always].all(), "tokens and logits are always kept"
    e = res.edge_mask
    assert (res.node_mask[g.src[e]] & res.node_mask[g.dst[e]]).all(), "edges only between kept nodes"
    has_out = np.bincount(g.src[e], minlength=g.n_nodes) > 0
    has_in = np.bincount(g.dst[e], minlength=g.n_nodes) > 0
    inner = res.node_mask & ~always
    assert has_out[inner].all(), "no kept node without an outgoing edge"
    needs_in = inner & np.isin(kinds, ["head", "mlp", "feature"])
    assert has_in[needs_in].all(), "no kept head/mlp/feature without an incoming edge"


@pytest.mark.parametrize("seed", range(4))
def test_invariants_on_random_graphs(seed):
    g = random_dag(500, 6000, seed=seed) if seed % 2 else component_graph(3, 6, seed=seed, density=0.5)
    for method, params in [("influence", {}), ("topn", {"n": 200}), ("threshold", {"threshold": 0.5}),
                           ("greedy", {"n": 150}), ("dead_ends", {})]:
        _assert_invariants(prune_result(g, method, **params))
    res = influence_prune(g, node_threshold=0.7)
    I = res.node_influence
    kept_before = I >= find_threshold(I, 0.7)
    assert I[kept_before].sum() >= 0.7 * I.sum() - 1e-12, "the kept set holds the threshold fraction of influence"
    inner = res.node_mask & ~np.isin(g.nodes["kind"].to_numpy(), ["embed", "logit"])
    assert (I[inner] >= find_threshold(I, 0.7)).all()
    assert (res.node_scores[inner] <= res.node_scores.max()).all()


def test_greedy_grows_from_logits():
    g = component_graph(3, 6, seed=3)
    res = greedy_prune(g, n=40)
    assert res.n_edges <= 40
    # every kept edge lies on a path to the logits: reverse reachability inside the circuit
    keys = g.keys
    c = Circuit.from_prune(res).to_networkx()
    import networkx as nx

    assert set(c.nodes) - {"E"} <= nx.ancestors(c, "LOGITS") | {"LOGITS"}
    assert all(keys[s] in c for s in g.src[res.edge_mask])


def test_prune_dispatch_and_errors():
    g = tiny_graph()
    c = prune(g, "topn", n=2)
    assert c.method == "topn" and c.params == {"n": 2, "absolute": True} and c.n_edges == 2
    assert c.scores["n_edges"] == 2 and c.source_graph_id == "tiny"
    with pytest.raises(ConfigError, match="valid options: auto, dead_ends, greedy, influence, threshold, topn"):
        prune(g, "bogus")
    with pytest.raises(ConfigError, match="unknown parameter"):
        prune(g, "topn", k=3)
    with pytest.raises(ConfigError, match="node_threshold"):
        influence_prune(g, node_threshold=1.5)
    with pytest.raises(ConfigError, match="non-negative integer"):
        topn_prune(g, n=-1)


def test_circuit_from_store_roundtrip(tmp_path):
    from circuitdb.circuits.circuit import Circuit
    from circuitdb.store.base import open_store

    g = component_graph(3, 4, seed=5, graph_id="cs")
    with open_store(f"embedded:{tmp_path}/db") as s:
        s.write_graph(g)
        c = s.circuit("cs", prune={"method": "greedy", "n": 20})
        assert c.source_graph_id == "cs" and c.method == "greedy" and c.n_edges <= 20
        sub = s.circuit("cs", prune="topn", n=10, min_abs_weight=0.5)
        assert sub.source_graph_id == "cs" and sub.params["min_abs_weight"] == 0.5
        assert (sub.edges["abs_weight"] >= 0.5).all()
        whole = s.circuit("cs", prune=None)
        assert whole.n_edges == g.n_edges
        c.with_scores(faithfulness=0.9).save(s, "g20")
        back = Circuit.load(s, "g20")
        assert back.scores["faithfulness"] == 0.9 and back.params == c.params
        assert back.edges.sort_values(["source", "target", "channel"]).reset_index(drop=True).equals(
            c.edges.sort_values(["source", "target", "channel"]).reset_index(drop=True))
        nx_g = back.to_networkx()
        assert set(nx_g.nodes) == set(c.node_keys) and nx_g.number_of_edges() <= c.n_edges
