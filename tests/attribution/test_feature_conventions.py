"""circuit-tracer's conventions as switches: position 0 zeroed (no nodes there but the token) and token nodes that
are ``W_E[tok]`` only. Edges stay equal to interventions; defaults are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from feature_fixtures import check_interventions, prompt, targets_of, tiny_model

from circuitdb.attribution.features import attribute_features
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries.train import random_dictionaries
from circuitdb.errors import ConfigError


@pytest.fixture(scope="module")
def setup():
    model = tiny_model()
    return model, random_dictionaries(model, "transcoder", width=24, seed=3)


@pytest.mark.parametrize("zero, tv", [(True, "embed+pos"), (False, "embed"), (True, "embed")])
def test_conventions_keep_edges_exact(setup, zero, tv):
    model, dicts = setup
    rm = ReplacementModel.build(model, prompt(), dicts, zero_first_pos=zero, token_vectors=tv)
    S = rm.sources
    assert (S.pos[S.kind != "embed"] >= (1 if zero else 0)).all() and (S.kind == "embed").sum() == rm.P
    if tv == "embed":
        assert torch.allclose(rm.embed, model.W_E[prompt()])
    rng = np.random.default_rng(4)
    worst, n = check_interventions(rm, targets_of(rm, 12, rng), 40, rng)
    assert n >= 60 and worst <= 1e-5


def test_graph_records_the_conventions_and_defaults_are_unchanged(setup):
    model, dicts = setup
    g = attribute_features(model, prompt(), dicts, heads=False, progress=False, zero_first_pos=True,
                           token_vectors="embed")
    assert g.meta["params"]["zero_first_pos"] and g.meta["params"]["token_vectors"] == "embed"
    nodes = g.nodes[g.nodes.kind.isin(["feature", "error"])]
    assert (nodes["pos"] >= 1).all()
    d = attribute_features(model, prompt(), dicts, heads=False, progress=False, prune=None)
    assert (d.nodes[d.nodes.kind == "error"]["pos"] == 0).any() and d.meta["params"]["token_vectors"] == "embed+pos"
    with pytest.raises(ConfigError, match="token_vectors"):
        attribute_features(model, prompt(), dicts, progress=False, token_vectors="W_E")
