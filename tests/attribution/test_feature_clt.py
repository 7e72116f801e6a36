"""Cross-layer transcoders: a feature at layer l writes the MLP outputs of every layer l' >= l. Every edge equals an
intervention in the frozen replacement model (float64), with pruning and heads on and off; the cost stays independent
of the dictionary width; an incomplete set is refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from feature_fixtures import (
    check_interventions, prompt, rows_before_and_after_poisoning, source_keys, targets_of, tiny_model,
)

from circuitdb.attribution.feature_heads import add_heads, collapse_heads
from circuitdb.attribution.features import attribute_features
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries import load_dictionaries
from circuitdb.dictionaries.train import random_dictionaries
from circuitdb.errors import ConfigError


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def clt(model, width: int = 24, **kw):  # noqa: ANN001, ANN201
    return random_dictionaries(model, "transcoder", width=width, seed=3, cross_layer=True, **kw)


@pytest.mark.parametrize("act", ["relu", "jumprelu"])
def test_clt_edges_equal_interventions(model, act):
    rng = np.random.default_rng(0)
    dicts = clt(model)
    if act == "jumprelu":
        g = torch.Generator().manual_seed(7)
        dicts = [dataclasses.replace(d, activation="jumprelu", b_enc=d.b_enc + 0.8,
                                     threshold=0.3 + 0.3 * torch.rand(d.width, generator=g, dtype=d.dtype))
                 for d in dicts]
    dicts = load_dictionaries(dicts, model)
    assert [d.n_later for d in dicts] == [2, 1, 0]
    rm = ReplacementModel.build(model, prompt(), dicts)
    rec = rm.frozen_forward()
    assert (rec["logits"] - model(prompt()[None])[0]).abs().max() < 1e-9  # errors keep the model exact
    worst, n = check_interventions(rm, targets_of(rm, 16, rng), 50, rng)
    assert n >= 100 and worst <= 1e-5


def test_cross_layer_decoders_are_in_the_edges(model):
    """The same encoders without the later decoders give other layer-0 → layer-2 edges (the test above would pass
    for an engine that ignored W_dec_later only if the interventions ignored it too — they run the real model)."""
    dicts = clt(model)
    plain = [dataclasses.replace(d, W_dec_later=None) for d in dicts]
    a = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, graph_id="g")
    b = attribute_features(model, prompt(), plain, heads=False, prune=None, progress=False, graph_id="g")
    wa = dict(zip(zip(a.keys[a.src], a.keys[a.dst]), a.weight))
    wb = dict(zip(zip(b.keys[b.src], b.keys[b.dst]), b.weight))
    far = [k for k in wa if k[0].startswith("F0:") and k[1].startswith("F2:")]
    assert len(far) > 10 and max(abs(wa[k] - wb.get(k, 0.0)) for k in far) > 1e-3
    # the frozen forward reproduces the model in both cases; the errors differ by exactly the cross-layer decoders
    rm_a, rm_b = ReplacementModel.build(model, prompt(), dicts), ReplacementModel.build(model, prompt(), plain)
    cross = rm_a.acts[0] @ dicts[0].W_dec_later[:, 1] + rm_a.acts[1] @ dicts[1].W_dec_later[:, 0]
    assert torch.allclose(rm_b.errors[2] - rm_a.errors[2], cross, atol=1e-10)


def test_clt_pruning_and_heads_stay_exact(model):
    dicts = clt(model)
    raw = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, graph_id="g")
    g0 = attribute_features(model, prompt(), dicts, heads=False, progress=False, graph_id="g")
    gh = attribute_features(model, prompt(), dicts, heads=True, progress=False, graph_id="g")
    assert 0 < g0.n_edges < raw.n_edges
    assert collapse_heads(gh).diff(g0, atol=1e-10, meta=False) == []
    assert (gh.nodes.kind == "head").sum() > 0
    w_raw = dict(zip(zip(raw.keys[raw.src], raw.keys[raw.dst]), raw.weight))
    assert all(np.isclose(w_raw[(a, b)], w, rtol=1e-12, atol=0)
               for a, b, w in zip(g0.keys[g0.src], g0.keys[g0.dst], g0.weight))
    # heads on demand on the stored pruned graph = heads computed inline
    assert add_heads(g0, model, dicts).diff(gh, atol=1e-10, meta=False) == []
    # raw rows against the engine's rows, one entry per pair: the graph is the engine's adjacency
    rm = ReplacementModel.build(model, prompt(), dicts)
    keys = source_keys(rm)
    S = rm.sources
    f = np.flatnonzero((S.kind == "feature") & (S.layer == 2))[:4]
    rows = rm.rows([("feature", int(S.pos[i]), int(S.feature[i]), int(S.dictionary[i])) for i in f]).numpy()
    for r, i in zip(rows, f):
        for j in np.flatnonzero(r):
            assert np.isclose(w_raw[(keys[j], keys[i])], r[j], rtol=1e-12, atol=0)


def _widen(d, width: int, seed: int):  # noqa: ANN001, ANN202
    g = torch.Generator().manual_seed(seed)
    extra = width - d.width
    t = {"W_enc": torch.cat([d.W_enc, torch.randn(d.d_in, extra, generator=g, dtype=d.dtype)], 1),
         "b_enc": torch.cat([d.b_enc, torch.full((extra,), -1e6, dtype=d.dtype)]),
         "W_dec": torch.cat([d.W_dec, torch.randn(extra, d.d_out, generator=g, dtype=d.dtype)])}
    if d.W_dec_later is not None:
        t["W_dec_later"] = torch.cat([d.W_dec_later, torch.randn(extra, d.n_later, d.d_out, generator=g,
                                                                 dtype=d.dtype)])
    return dataclasses.replace(d, **t)


def test_clt_cost_is_width_independent(model):
    base = clt(model)
    ref = attribute_features(model, prompt(), base, heads=False, prune=None, progress=False, graph_id="w")
    wide = [_widen(d, 4096, i) for i, d in enumerate(base)]
    g = attribute_features(model, prompt(), wide, heads=False, prune=None, progress=False, graph_id="w")
    assert ref.diff(g, atol=1e-10, meta=False) == []
    rm = ReplacementModel.build(model, prompt(), wide)
    n_feat = int((rm.sources.kind == "feature").sum())
    assert sum(int(a.pos.numel()) for a in rm.active) == n_feat
    assert [a.later.shape[0] for a in rm.active[:2]] == [2, 1] and rm.active[2].later is None
    assert max(a.dec.shape[1] for a in rm.active) <= 24
    before, after = rows_before_and_after_poisoning(rm)  # the full-width weights are never read after the build
    assert torch.equal(before, after) and torch.isfinite(after).all()


def test_incomplete_or_overlong_clt_is_refused(model):
    dicts = clt(model)
    with pytest.raises(ConfigError, match="no transcoder of the set replaces"):
        load_dictionaries(dicts[:2], model)
    long = dataclasses.replace(dicts[1], W_dec_later=torch.zeros(24, 2, 16, dtype=torch.float64))
    with pytest.raises(ConfigError, match="later layer"):
        load_dictionaries([dicts[0], long, dicts[2]], model)
    with pytest.raises(ConfigError, match="W_dec_later has shape"):
        dataclasses.replace(dicts[0], W_dec_later=torch.zeros(24, 2, 15, dtype=torch.float64))
    sae = random_dictionaries(model, "sae", width=8, seed=1)[0]
    with pytest.raises(ConfigError, match="an SAE writes only its own hook"):
        dataclasses.replace(sae, W_dec_later=torch.zeros(8, 1, 16, dtype=torch.float64))
