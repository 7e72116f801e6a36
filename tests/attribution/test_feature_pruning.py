"""Pruning before storing: the stored graph is exactly circuit-tracer-style influence pruning of the raw graph, the
raw adjacency goes to a side file, the meta says what produced the graph, and heads on a pruned graph stay exact."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from feature_fixtures import prompt, source_keys, tiny_model

from circuitdb.attribution.feature_edges import load_adjacency
from circuitdb.attribution.feature_heads import collapse_heads
from circuitdb.attribution.features import attribute_features
from circuitdb.pruning import influence_prune, prune_result
from circuitdb.dictionaries.train import random_dictionaries
from circuitdb.errors import ConfigError


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def tcs(model):
    return random_dictionaries(model, "transcoder", width=24, seed=3)


@pytest.fixture(scope="module")
def raw(model, tcs):
    return attribute_features(model, prompt(), tcs, heads=False, prune=None, progress=False, graph_id="g")


@pytest.mark.parametrize("nt, et", [(0.8, 0.98), (0.5, 0.9)])
def test_pruned_graph_equals_influence_pruning_of_the_raw_graph(model, tcs, raw, nt, et):
    g = attribute_features(model, prompt(), tcs, heads=False, progress=False, graph_id="g",
                           prune={"method": "influence", "node_threshold": nt, "edge_threshold": et})
    want = influence_prune(raw, nt, et).subgraph()
    assert g.diff(want, atol=1e-12, meta=False) == []
    assert 0 < g.n_edges < raw.n_edges / 2
    pr = g.meta["pruning"]
    assert pr["method"] == "influence" and pr["params"] == {"node_threshold": nt, "edge_threshold": et}
    assert (pr["unpruned_nodes"], pr["unpruned_edges"]) == (raw.n_nodes, raw.n_edges)
    assert (pr["kept_nodes"], pr["kept_edges"]) == (g.n_nodes, g.n_edges)
    assert g.meta["scores"] == pytest.approx(raw.meta["scores"])  # the unpruned graph's scores
    from circuitdb.circuits.evaluate import graph_scores
    assert pr["scores"] == pytest.approx(graph_scores(want))


def test_any_pruner_as_a_callable(model, tcs, raw):
    topn = functools.partial(prune_result, method="topn", n=40)
    g = attribute_features(model, prompt(), tcs, heads=False, progress=False, graph_id="g", prune=topn)
    assert g.diff(topn(raw).subgraph(), atol=1e-12, meta=False) == []
    assert g.meta["pruning"]["method"] == "topn" and g.meta["pruning"]["params"]["n"] == 40


def test_adjacency_side_file(model, tcs, raw, tmp_path):
    g = attribute_features(model, prompt(), tcs, heads=False, progress=False, adjacency=tmp_path / "full")
    side = g.meta["adjacency"]
    assert side["path"].endswith("full.npz") and side["n_edges"] == raw.n_edges
    a = load_adjacency(side["path"])
    got = dict(zip(zip(a["keys"][a["src"]], a["keys"][a["dst"]]), a["weight"]))
    want = dict(zip(zip(raw.keys[raw.src], raw.keys[raw.dst]), raw.weight))
    assert got == pytest.approx(want, abs=1e-15)
    with pytest.raises(ConfigError, match="cannot read adjacency"):
        load_adjacency(tmp_path / "missing.npz")


@pytest.mark.parametrize("bad", ["topn", {"method": "influence", "node_threshold": 2.0}, {"edge": 0.5}, 3])
def test_bad_prune_specs_are_named(model, tcs, bad):
    with pytest.raises(ConfigError, match="prune|threshold|parameter"):
        attribute_features(model, prompt(), tcs, heads=False, progress=False, prune=bad)


def test_heads_on_a_pruned_graph_are_exact(model, tcs):
    """Each stored pair s → t: direct edge + Σ over heads (s → head → t) = the plain pruned edge; head parts equal
    interventions (zeroing the head) in the frozen model."""
    g0 = attribute_features(model, prompt(), tcs, heads=False, progress=False, graph_id="g")
    gh = attribute_features(model, prompt(), tcs, heads=True, progress=False, graph_id="g")
    assert collapse_heads(gh).diff(g0, atol=1e-10, meta=False) == []
    kinds = gh.nodes["kind"].to_numpy()
    heads = np.flatnonzero(kinds == "head")
    assert len(heads) > 0
    for i in heads[:30]:  # a head node's value (its out-edge) is the sum of its in-edges
        assert np.isclose(gh.weight[gh.src == i].sum(), gh.weight[gh.dst == i].sum(), atol=1e-12)
    # only stored pairs are split: every head in-edge's (source, target) pair is a stored plain edge
    plain = set(zip(g0.keys[g0.src], g0.keys[g0.dst]))
    into_head = kinds[gh.dst] == "head"
    out_t = {int(h): int(t) for h, t in zip(gh.src[kinds[gh.src] == "head"], gh.dst[kinds[gh.src] == "head"])}
    pairs = {(gh.keys[s], gh.keys[out_t[int(h)]]) for s, h in zip(gh.src[into_head], gh.dst[into_head])}
    assert pairs <= plain


def test_float32_and_float64_graphs_agree(model, tcs):
    g64 = attribute_features(model, prompt(), tcs, heads=False, progress=False, prune=None)
    g32 = attribute_features(model, prompt(), tcs, heads=False, progress=False, prune=None, dtype="float32")
    assert g32.meta["params"]["dtype"] == "float32"
    w64 = dict(zip(zip(g64.keys[g64.src], g64.keys[g64.dst]), g64.weight))
    w32 = dict(zip(zip(g32.keys[g32.src], g32.keys[g32.dst]), g32.weight))
    assert set(w64) == set(w32)
    scale = max(abs(v) for v in w64.values())
    assert max(abs(w64[k] - w32[k]) for k in w64) <= 1e-4 * scale


@pytest.mark.parametrize("attn_only, norm", [(False, "LNPre"), (True, "RMS")])
def test_heads_through_sae_cuts_collapse_exactly(attn_only, norm):
    m = tiny_model(attn_only=attn_only, norm=norm, seed=2)
    dicts = random_dictionaries(m, "sae", width=24, seed=4, layers=[0, 2], sae_hook="hook_resid_post")
    g0 = attribute_features(m, prompt(seed=2), dicts, heads=False, prune=None, progress=False, graph_id="g")
    gh = attribute_features(m, prompt(seed=2), dicts, heads=True, prune=None, progress=False, graph_id="g")
    assert (gh.nodes.kind == "head").any()
    assert collapse_heads(gh).diff(g0, atol=1e-10, meta=False) == []


def test_each_head_part_equals_the_backward_per_head_rows(model, tcs):
    """The forward (per-source) decomposition gives the same part per (source, head, target) as the backward per-head
    rows of :func:`head_parts` (which the zero-a-head intervention test checks)."""
    from circuitdb.attribution.feature_heads import head_parts
    from circuitdb.attribution.replacement import ReplacementModel

    gh = attribute_features(model, prompt(), tcs, heads=True, prune=None, progress=False, graph_id="g",
                            min_head_share=0)
    rm = ReplacementModel.build(model, prompt(), tcs)
    lg = gh.nodes[gh.nodes.kind == "logit"].iloc[0]
    _, parts = head_parts(rm, [("logit", int(lg.pos), int(lg.token), -1)])
    col = {k: j for j, k in enumerate(source_keys(rm))}
    checked = 0
    for (l, h), row in parts.items():
        key = f"A{l}.{h}@{int(lg.pos)}>{lg.key}"
        if key not in set(gh.keys):
            assert row.abs().max() < 1e-12
            continue
        into = gh.dst == gh.node_index(key)
        for s, w in zip(gh.keys[gh.src[into]], gh.weight[into]):
            assert w == pytest.approx(float(row[0, col[s]]), abs=1e-11)
            checked += 1
    assert checked > 20


def test_heads_on_demand_for_a_stored_graph_and_a_subgraph(model, tcs, tmp_path):
    from circuitdb.attribution.feature_heads import add_heads
    from circuitdb.graph import AttributionGraph

    g0 = attribute_features(model, prompt(), tcs, heads=False, progress=False, graph_id="g")
    gh = attribute_features(model, prompt(), tcs, heads=True, progress=False, graph_id="g")
    g0.save(tmp_path / "g")
    again = add_heads(AttributionGraph.load(tmp_path / "g"), model, tcs)
    assert again.diff(gh, atol=1e-10, meta=False) == []
    feats = g0.keys[(g0.nodes.kind == "feature").to_numpy()][:6]
    keys = list(feats) + list(g0.keys[~g0.nodes.kind.isin(["feature"]).to_numpy()])
    sub = add_heads(g0, model, tcs, keys=keys)
    assert set(sub.keys[(sub.nodes.kind != "head").to_numpy()]) <= set(keys)
    assert collapse_heads(sub).diff(g0.subgraph(node_mask=np.isin(g0.keys, keys)), atol=1e-10, meta=False) == []
    with pytest.raises(ConfigError, match="not in graph"):
        add_heads(g0, model, tcs, keys=["F9:9@9"])


def _head_edges(g):  # noqa: ANN001, ANN202
    """``{(source key, head key): weight}`` for every source → head edge of a heads-on graph."""
    into = (g.nodes["kind"].to_numpy() == "head")[g.dst]
    return dict(zip(zip(g.keys[g.src[into]], g.keys[g.dst[into]]), g.weight[into]))


@pytest.mark.parametrize("share", [0.05, 0.25])
def test_minor_head_parts_fold_into_the_plain_edge_exactly(model, tcs, share):
    """With ``min_head_share`` the kept parts are exactly the full decomposition's, each carries at least that share of
    its pair's |mass|, the folded ones are added to the plain edge (so collapsing still gives the heads-off graph), and
    fewer rows are stored."""
    g0 = attribute_features(model, prompt(), tcs, heads=False, prune=None, progress=False, graph_id="g")
    full = attribute_features(model, prompt(), tcs, heads=True, prune=None, progress=False, min_head_share=0)
    gf = attribute_features(model, prompt(), tcs, heads=True, prune=None, progress=False, min_head_share=share)
    assert collapse_heads(gf).diff(g0, atol=1e-10, meta=False) == []
    parts_full, parts = _head_edges(full), _head_edges(gf)
    assert 0 < len(parts) < len(parts_full) and gf.n_edges < full.n_edges
    assert all(parts[k] == pytest.approx(parts_full[k], abs=1e-12) for k in parts)
    # the share rule, against the full decomposition: mass of a pair = |direct| + Σ |parts|
    kinds = full.nodes["kind"].to_numpy()
    head_target = {full.keys[h]: full.keys[t] for h, t in zip(full.src, full.dst) if kinds[h] == "head"}
    plain = {(full.keys[s], full.keys[t]): w for s, t, w in zip(full.src, full.dst, full.weight)
             if kinds[s] != "head" and kinds[t] != "head"}
    mass: dict = {}
    for (s, h), w in parts_full.items():
        mass[(s, head_target[h])] = mass.get((s, head_target[h]), 0.0) + abs(w)
    for pair, w in plain.items():
        mass[pair] = mass.get(pair, 0.0) + abs(w)
    for (s, h), w in parts_full.items():
        share_of_pair = abs(w) / mass[(s, head_target[h])]
        assert ((s, h) in parts) == (share_of_pair >= share), (s, h, share_of_pair)
    stats = gf.meta["head_decomposition"]
    assert stats["kept_parts"] == len(parts) and stats["nonzero_parts"] == len(parts_full)
    assert 0 < stats["folded_mass_share"] < 1 and gf.meta["params"]["min_head_share"] == share
    assert gf.id != full.id  # the share is part of the provenance


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x", True])
def test_bad_min_head_share_is_named(model, tcs, bad):
    with pytest.raises(ConfigError, match="min_head_share"):
        attribute_features(model, prompt(), tcs, progress=False, min_head_share=bad)


@pytest.mark.parametrize("square_bytes", [None, 0])
def test_row_block_influence_equals_the_series_over_the_rows(monkeypatch, square_bytes):
    """RowBlocks.influence runs the series on the square block among row nodes and reads the rows once: equal to
    stepping the series over the rows themselves (and the fallback, square_bytes=0, is that series)."""
    import torch

    from circuitdb.attribution import feature_edges as fe
    from circuitdb.pruning import propagate

    if square_bytes is not None:
        monkeypatch.setattr(fe, "SQUARE_BYTES", square_bytes)
    g = torch.Generator().manual_seed(0)
    n_src, n_log = 600, 3
    feat = torch.randperm(n_src, generator=g)[:150]
    rows = torch.randn(150, n_src, generator=g, dtype=torch.float64) * (torch.arange(n_src)[None] < feat[:, None])
    rows[rows.abs() < 1.0] = 0  # a sparse DAG: a feature reads only lower-numbered sources
    blocks = [(torch.randn(n_log, n_src, generator=g, dtype=torch.float64), torch.arange(n_log) + n_src),
              (rows[:100], feat[:100]), (rows[100:], feat[100:])]
    w = np.zeros(n_src + n_log)
    w[n_src:] = [0.5, 0.3, 0.2]
    rb = fe.RowBlocks(blocks, n_src + n_log)
    want = propagate(rb.step, w, n_src + n_log)
    got = rb.influence(w)
    assert (want > 0).sum() > 100 and np.isin(feat.numpy(), np.flatnonzero(want > 0)).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
