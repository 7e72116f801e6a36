"""Width independence: after the replacement model is built, a backward row touches only the active features'
decoder / encoder rows, so the graph (and its cost) does not depend on how many inactive features a dictionary has."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from feature_fixtures import prompt, rows_before_and_after_poisoning, tiny_model

from circuitdb.attribution.features import attribute_features
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries.base import Dictionary
from circuitdb.dictionaries.train import random_dictionaries


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def widen(d: Dictionary, width: int, seed: int = 0) -> Dictionary:
    """``d`` with ``width - d.width`` extra features that never fire (very negative bias, random weights)."""
    g = torch.Generator().manual_seed(seed)
    extra = width - d.width
    t = {"W_enc": torch.cat([d.W_enc, torch.randn(d.d_in, extra, generator=g, dtype=d.dtype)], 1),
         "b_enc": torch.cat([d.b_enc, torch.full((extra,), -1e6, dtype=d.dtype)]),
         "W_dec": torch.cat([d.W_dec, torch.randn(extra, d.d_out, generator=g, dtype=d.dtype)])}
    return dataclasses.replace(d, **t)


def test_rows_never_read_the_full_dictionary(model):
    """Poison W_enc / W_dec after build: rows (and the read vectors of feature targets) are unchanged."""
    dicts = random_dictionaries(model, "transcoder", width=24, seed=3)
    rm = ReplacementModel.build(model, prompt(), dicts)
    before, after = rows_before_and_after_poisoning(rm)
    assert torch.equal(before, after) and torch.isfinite(after).all()


def test_width_sweep_equal_active_features_gives_equal_graphs(model):
    base = random_dictionaries(model, "transcoder", width=24, seed=3)
    graphs = []
    for width in (24, 256, 4096):
        dicts = [widen(d, width, seed=i) if width > d.width else d for i, d in enumerate(base)]
        g = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, graph_id="w")
        graphs.append(g)
        rm = ReplacementModel.build(model, prompt(), dicts)
        # the gathered decoder rows are as many as the active features, whatever the width
        assert sum(int(a.pos.numel()) for a in rm.active) == int((rm.sources.kind == "feature").sum())
        assert max(a.dec.shape[1] for a in rm.active) <= 24
    n_feat = [(g.nodes.kind == "feature").sum() for g in graphs]
    assert n_feat[0] == n_feat[1] == n_feat[2] > 20
    for g in graphs[1:]:
        assert graphs[0].diff(g, atol=1e-10, meta=False) == []


def test_dtype_follows_the_model():
    """One dtype rule: dtype=None runs in the model's dtype (as attribute() does)."""
    m64 = tiny_model(dtype=torch.float64)
    dicts = random_dictionaries(m64, "transcoder", width=16, seed=1)
    g = attribute_features(m64, prompt(), dicts, heads=False, prune=None, progress=False)
    assert g.meta["params"]["dtype"] == "float64"
    m32 = tiny_model(dtype=torch.float32)
    g32 = attribute_features(m32, prompt(), random_dictionaries(m32, "transcoder", width=16, seed=1), heads=False,
                             prune=None, progress=False)
    assert g32.meta["params"]["dtype"] == "float32"


def test_bfloat16_runs_with_float32_accumulation(model):
    """A half-precision model: frozen values in bf16, the linear backward in float32; close to the float64 graph."""
    dicts = random_dictionaries(model, "transcoder", width=24, seed=3)
    rm = ReplacementModel.build(model, prompt(), dicts, dtype=torch.bfloat16)
    assert rm.model_dtype == torch.bfloat16 and rm.dtype == torch.float32 and rm.active[0].dec.dtype == torch.float32
    ref = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False)
    g = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, dtype="bfloat16")
    assert g.meta["params"]["dtype"] == "bfloat16"
    a = dict(zip(zip(ref.keys[ref.src], ref.keys[ref.dst]), ref.weight))
    b = dict(zip(zip(g.keys[g.src], g.keys[g.dst]), g.weight))
    common = set(a) & set(b)
    assert len(common) >= 0.8 * len(a)
    top = sorted(a, key=lambda k: -abs(a[k]))[:50]
    assert np.corrcoef([a[k] for k in top if k in b], [b[k] for k in top if k in b])[0, 1] > 0.95


def test_fingerprint_of_a_real_size_tensor():
    """GPT-2's embedding (38.6M values) and any tensor above 2^24 elements: the sampled indices stay in range (float32
    sampling positions ran past the end) and the fingerprint still sees the last value."""
    from circuitdb.identity import tensor_fingerprint

    t = torch.zeros(2 ** 24 + 7)
    a = tensor_fingerprint(t)
    t[-1] = 1.0
    assert tensor_fingerprint(t) != a
