"""Each dictionary kind's edges equal interventions in the frozen model (JumpReLU, skip transcoders, a transcoder
trained on the TransformerLens-2 LayerNorm convention after the loader folds it), float64, pruning and heads on/off."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from feature_fixtures import check_interventions, prompt, targets_of, tiny_model

from circuitdb.attribution.feature_heads import collapse_heads
from circuitdb.attribution.features import attribute_features
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries import load_dictionaries
from circuitdb.dictionaries.train import random_dictionaries
from circuitdb.errors import ConfigError


@pytest.fixture(scope="module")
def model():
    m = tiny_model()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a LayerNorm with a real weight and bias: the two hook conventions differ
        for b in m.blocks:
            b.ln2.w.mul_(1 + 0.5 * torch.randn(b.ln2.w.shape, generator=g, dtype=b.ln2.w.dtype))
            b.ln2.b.add_(0.3 * torch.randn(b.ln2.b.shape, generator=g, dtype=b.ln2.b.dtype))
    return m


def jumprelu(model):  # noqa: ANN001, ANN201
    g = torch.Generator().manual_seed(7)
    return [dataclasses.replace(d, activation="jumprelu", b_enc=d.b_enc + 0.8,
                                threshold=0.3 + 0.3 * torch.rand(d.width, generator=g, dtype=d.dtype))
            for d in random_dictionaries(model, "transcoder", width=24, seed=3)]


def skip(model):  # noqa: ANN001, ANN201
    g = torch.Generator().manual_seed(8)
    return [dataclasses.replace(d, W_skip=torch.randn(d.d_in, d.d_out, generator=g, dtype=d.dtype) / 4)
            for d in random_dictionaries(model, "transcoder", width=24, seed=3)]


@pytest.mark.parametrize("make", [jumprelu, skip], ids=["jumprelu", "skip"])
def test_edges_equal_interventions(model, make):
    rng = np.random.default_rng(0)
    dicts = load_dictionaries(make(model), model)
    rm = ReplacementModel.build(model, prompt(), dicts)
    rec = rm.frozen_forward()
    assert (rec["logits"] - model(prompt()[None])[0]).abs().max() < 1e-9  # errors keep the model exact
    worst, n = check_interventions(rm, targets_of(rm, 16, rng), 50, rng)
    assert n >= 100 and worst <= 1e-5


@pytest.mark.parametrize("make", [jumprelu, skip], ids=["jumprelu", "skip"])
def test_pruning_and_heads_stay_exact(model, make):
    dicts = make(model)
    raw = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, graph_id="g")
    g0 = attribute_features(model, prompt(), dicts, heads=False, progress=False, graph_id="g")
    gh = attribute_features(model, prompt(), dicts, heads=True, progress=False, graph_id="g")
    assert collapse_heads(gh).diff(g0, atol=1e-10, meta=False) == []
    w_raw = dict(zip(zip(raw.keys[raw.src], raw.keys[raw.dst]), raw.weight))
    assert all(np.isclose(w_raw[(a, b)], w) for a, b, w in zip(g0.keys[g0.src], g0.keys[g0.dst], g0.weight))


def _as_tl2(d, model):  # noqa: ANN001, ANN202
    """The same transcoder expressed for a hook that includes the LayerNorm weight and bias (TransformerLens 2.x)."""
    ln = model.blocks[d.layer].ln2
    W = d.W_enc / ln.w.detach()[:, None]
    return dataclasses.replace(d, W_enc=W, b_enc=d.b_enc - ln.b.detach() @ W, ln_convention="tl2")


def test_tl2_convention_is_folded_to_the_same_graph(model):
    tl3 = random_dictionaries(model, "transcoder", width=24, seed=3)
    tl2 = [_as_tl2(d, model) for d in tl3]
    a = attribute_features(model, prompt(), tl3, heads=False, prune=None, progress=False, graph_id="g")
    b = attribute_features(model, prompt(), tl2, heads=False, prune=None, progress=False, graph_id="g")
    assert a.diff(b, atol=1e-9, meta=False) == []
    # read unfolded (as if it were the 3.x convention), the graph would be different: the fold matters
    wrong = attribute_features(model, prompt(), [dataclasses.replace(d, ln_convention="tl3") for d in tl2],
                               heads=False, prune=None, progress=False, graph_id="g")
    assert a.diff(wrong, atol=1e-6, meta=False) != []


def test_unknown_convention_is_refused_where_it_matters(model):
    d = dataclasses.replace(random_dictionaries(model, "transcoder", width=8, seed=1)[0], ln_convention=None)
    with pytest.raises(ConfigError, match="ln_convention"):
        load_dictionaries([d], model)
    plain = tiny_model()  # LayerNorm weight 1, bias 0: both conventions read the same vector, nothing to refuse
    assert load_dictionaries([d], plain)[0].ln_convention == "tl3"
