"""Feature graphs: the replacement model is exact, every edge equals an intervention, the output graph is sound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from feature_fixtures import check_interventions as _check_interventions
from feature_fixtures import prompt, source_keys, tiny_model
from feature_fixtures import targets_of as _targets

from circuitdb.attribution.feature_heads import collapse_heads
from circuitdb.attribution.features import attribute_features, salient_logits
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries.train import random_dictionaries


@pytest.fixture(scope="module")
def model64():
    return tiny_model()


@pytest.fixture(scope="module")
def tcs(model64):
    return random_dictionaries(model64, "transcoder", width=24, seed=3)


def test_replacement_reproduces_logits_float32():
    model = tiny_model(dtype=torch.float32)
    dicts = random_dictionaries(model, "transcoder", width=24, seed=3)
    toks = prompt()
    rm = ReplacementModel.build(model, toks, dicts)
    rec = rm.frozen_forward()
    clean = model(toks[None])[0]
    assert (rec["logits"] - clean).abs().max().item() <= 1e-4
    # the errors are real: without them the logits move
    assert max(e.abs().max().item() for e in rm.errors) > 1e-2


def test_edges_equal_interventions_transcoders(model64, tcs):
    rng = np.random.default_rng(0)
    rm = ReplacementModel.build(model64, prompt(), tcs)
    targets = _targets(rm, 20, rng)
    worst, n = _check_interventions(rm, targets, 70, rng)
    assert n >= 200  # a few hundred non-zero edges, across positions and layers
    assert worst <= 1e-5


@pytest.mark.parametrize("attn_only, norm, hook", [(False, "LNPre", "hook_resid_post"), (True, "RMS", "hook_resid_post"),
                                                    (True, None, "hook_resid_pre")])
def test_edges_equal_interventions_saes(attn_only, norm, hook):
    """Residual SAEs cut the stream at their hook; MLPs without a transcoder become frozen `mlp` sources."""
    model = tiny_model(attn_only=attn_only, norm=norm, seed=2)
    dicts = random_dictionaries(model, "sae", width=24, seed=4, layers=[0, 2], sae_hook=hook)
    if not attn_only:
        dicts += random_dictionaries(model, "sae", width=24, seed=5, layers=[1], sae_hook="hook_resid_mid")
    rng = np.random.default_rng(1)
    rm = ReplacementModel.build(model, prompt(seed=2), dicts)
    assert ("mlp" in set(rm.sources.kind)) != attn_only
    worst, n = _check_interventions(rm, _targets(rm, 14, rng), 40, rng)
    assert n >= 60 and worst <= 1e-5


def test_rows_are_complete(model64, tcs):
    """Ablating every source at once moves each target by exactly the sum of its row: no source is missing."""
    rm = ReplacementModel.build(model64, prompt(), tcs)
    targets = _targets(rm, 10, np.random.default_rng(3))
    rows = rm.rows(targets).sum(1).numpy()
    clean, none = rm.frozen_forward(), rm.frozen_forward(source=np.arange(len(rm.sources)), factor=0.0)
    measured = np.array([rm.target_value(clean, t) - rm.target_value(none, t) for t in targets])
    assert np.allclose(rows, measured, rtol=1e-9, atol=1e-9)


def test_graph_edges_match_rows_and_metadata(model64, tcs):
    toks = prompt()
    g = attribute_features(model64, toks, tcs, heads=False, dtype="float64", progress=False, batch_size=7,
                           prune=None)
    rm = ReplacementModel.build(model64, toks, tcs)
    keys = source_keys(rm)
    lg = g.nodes[g.nodes.kind == "logit"]
    assert abs(lg["probability"].sum() - 0.95) < 0.2 or len(lg) == 10
    assert np.all(np.diff(lg["probability"].to_numpy()) <= 0)
    row = g.nodes.iloc[g.node_index(lg["key"].iat[0])]
    pred = rm.rows([("logit", int(row.pos), int(row.token), -1)])[0].numpy()
    into = g.dst == g.node_index(lg["key"].iat[0])
    got = dict(zip(g.keys[g.src[into]], g.weight[into]))
    assert np.allclose([got.get(k, 0.0) for k in keys], pred, atol=1e-12)
    f = g.nodes[g.nodes.kind == "feature"]
    assert (f["activation"] > 0).all() and (f["dictionary"] != "").all()
    assert set(g.meta["scores"]) == {"replacement", "completeness"}
    assert 0 < g.meta["scores"]["replacement"] <= 1 and 0 < g.meta["scores"]["completeness"] <= 1
    assert g.meta["granularity"] == "feature" and g.meta["tokens"] == toks.tolist()


def test_head_parts_sum_and_collapse(model64, tcs):
    from circuitdb.attribution.feature_heads import head_parts

    rm = ReplacementModel.build(model64, prompt(), tcs)
    targets = _targets(rm, 8, np.random.default_rng(2))
    full = rm.rows(targets)
    direct, parts = head_parts(rm, targets)
    total = direct + sum(parts.values())
    assert (total - full).abs().max().item() <= 1e-6 * max(1.0, full.abs().max().item())
    g_h = attribute_features(model64, prompt(), tcs, heads=True, dtype="float64", progress=False)
    g_0 = attribute_features(model64, prompt(), tcs, heads=False, dtype="float64", progress=False)
    assert collapse_heads(g_h).diff(g_0, atol=1e-9, meta=False) == []
    heads = g_h.nodes[g_h.nodes.kind == "head"]
    assert len(heads) and heads["key"].str.match(r"^A\d+\.\d+@\d+>").all()
    # a head node's out-edge is its value = the sum of its in-edges
    hi = np.flatnonzero((g_h.nodes.kind == "head").to_numpy())[:20]
    for i in hi:
        assert np.isclose(g_h.weight[g_h.src == i].sum(), g_h.weight[g_h.dst == i].sum(), atol=1e-12)


def test_zeroing_a_head_removes_its_part(model64, tcs):
    """Source at transcoder 0 (writes post0), target at transcoder 1 (reads mid1): one attention layer between."""
    from circuitdb.attribution.feature_heads import head_parts

    rm = ReplacementModel.build(model64, prompt(), tcs)
    S = rm.sources
    t_idx = np.flatnonzero((S.kind == "feature") & (S.layer == 1) & (S.pos == rm.P - 1))[0]
    target = ("feature", int(S.pos[t_idx]), int(S.feature[t_idx]), int(S.dictionary[t_idx]))
    _, parts = head_parts(rm, [target])
    srcs = np.flatnonzero((S.kind == "feature") & (S.layer == 0) & (S.pos < rm.P - 1))[:8]
    checked = 0
    for h in range(rm.cfg.n_heads):
        on, off = rm.frozen_forward(zero_head=None), rm.frozen_forward(zero_head=(1, h))
        for j in srcs:
            d_on = rm.target_value(on, target) - rm.target_value(rm.frozen_forward(source=int(j)), target)
            d_off = rm.target_value(off, target) - rm.target_value(
                rm.frozen_forward(source=int(j), zero_head=(1, h)), target)
            part = parts[(1, h)][0, j].item()
            assert abs((d_on - d_off) - part) <= 1e-9 * max(1.0, abs(part))
            checked += abs(part) > 1e-6
    assert checked > 0


def test_max_feature_nodes_visits_influential_features(model64, tcs):
    g_all = attribute_features(model64, prompt(), tcs, heads=False, dtype="float64", progress=False, prune=None)
    g_cap = attribute_features(model64, prompt(), tcs, heads=False, dtype="float64", progress=False, prune=None,
                               max_feature_nodes=12, batch_size=4)
    feats = g_cap.nodes[g_cap.nodes.kind == "feature"]
    assert len(feats) == 12
    infl = g_all.nodes.set_index("key")["influence"]
    ranked = infl[g_all.nodes.set_index("key")["kind"] == "feature"].sort_values(ascending=False)
    # the greedy queue finds most of the globally most influential features
    assert len(set(feats["key"]) & set(ranked.index[:12])) >= 8


def test_salient_logits():
    ids, p = salient_logits(torch.tensor([5.0, 4.0, 0.0, -9.0]), 0.95, 10)
    assert ids.tolist() == [0, 1] and p.sum() > 0.95
    ids, _ = salient_logits(torch.zeros(100), 0.95, 10)
    assert len(ids) == 10
