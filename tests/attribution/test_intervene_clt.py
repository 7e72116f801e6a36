"""Interventions on cross-layer transcoder features: a feature of the transcoder at layer l writes the MLP outputs of
every layer it decodes into, so ablating, scaling, steering or patching it moves all of them. In the frozen
replacement model (float64) the intervention's effect on the logits equals the graph's edges."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from feature_fixtures import prompt, tiny_model

from circuitdb.attribution.features import attribute_features
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries import load_dictionaries
from circuitdb.dictionaries.train import random_dictionaries
from circuitdb.intervene import Intervention, graph_prediction, intervention_hooks, patch_check, steering_check


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    model = tiny_model()
    dicts = load_dictionaries(random_dictionaries(model, "transcoder", width=24, seed=3, cross_layer=True), model)
    assert [d.n_later for d in dicts] == [2, 1, 0]
    g = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, graph_id="clt-iv")
    return model, dicts, g


def _layer0_key(g) -> str:  # noqa: ANN001
    """The layer-0 feature with the largest edge into a logit (it writes MLPs 0, 1 and 2)."""
    keys, kinds = g.keys, g.nodes["kind"].to_numpy()
    into = kinds[g.dst] == "logit"
    best = {}
    for s, w in zip(g.src[into], g.weight[into]):
        if keys[s].startswith("F0:"):
            best[keys[s]] = max(best.get(keys[s], 0.0), abs(float(w)))
    return max(best, key=best.get)


def _frozen_delta(model, dicts, g, ivs, corrupted=None) -> dict[str, float]:  # noqa: ANN001
    """Centred-logit change of every logit node when ``ivs`` act on the frozen replacement model."""
    rm = ReplacementModel.build(model, prompt(), dicts)
    clean = rm.frozen_forward()["logits"]
    moved = rm.frozen_forward(extra_hooks=intervention_hooks(model, ivs, dicts, corrupted))["logits"]
    delta = (moved - moved.mean(-1, keepdim=True)) - (clean - clean.mean(-1, keepdim=True))
    nodes = g.nodes.set_index("key")
    return {k: float(delta[int(nodes.at[k, "pos"]), int(nodes.at[k, "token"])])
            for k in g.keys[g.nodes["kind"].to_numpy() == "logit"]}


@pytest.mark.parametrize("factor", [0.0, 2.5])
def test_scaled_clt_feature_moves_logits_as_its_edges(setup, factor: float) -> None:
    model, dicts, g = setup
    key = _layer0_key(g)
    res = steering_check(model, g, key, factor, tokens=prompt(), dictionaries=dicts)
    direct = np.array([v["direct"] for v in res["logits"].values()])
    assert np.abs(direct).max() > 1e-2  # a real effect, not a vanishing one
    assert res["frozen_vs_graph"] <= 1e-6 * max(1.0, np.abs(direct).max())


def test_steered_clt_feature_adds_every_decoder(setup) -> None:
    """``add`` (steering by ``value``) is the scaling ``1 + value / a`` of an active feature; the decoders into the
    later layers carry a large part of it (the same intervention through ``W_dec`` alone is far off)."""
    model, dicts, g = setup
    key = _layer0_key(g)
    a = float(g.nodes.set_index("key").at[key, "activation"])
    value = 1.7
    want = {k: v["direct"] for k, v in graph_prediction(g, key, 1.0 + value / a).items()}
    got = _frozen_delta(model, dicts, g, [Intervention(key, "add", value)])
    scale = max(1.0, max(abs(v) for v in want.values()))
    assert max(abs(got[k] - want[k]) for k in want) <= 1e-6 * scale
    own_only = [dataclasses.replace(d, W_dec_later=None) if d.layer == 0 else d for d in dicts]
    partial = _frozen_delta(model, own_only, g, [Intervention(key, "add", value)])
    assert max(abs(partial[k] - want[k]) for k in want) > 1e-3 * scale


def test_patched_clt_feature_moves_logits_as_its_edges(setup) -> None:
    model, dicts, g = setup
    key = _layer0_key(g)
    corrupted = torch.roll(prompt(), 1)
    res = patch_check(model, g, key, corrupted, tokens=prompt(), dictionaries=dicts)
    assert res["corrupted_activation"] != res["clean_activation"]
    direct = max(abs(v["direct"]) for v in res["logits"].values())
    assert direct > 1e-3 and res["frozen_vs_graph"] <= 1e-6 * max(1.0, direct)
