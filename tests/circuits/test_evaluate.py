"""Evaluation helpers without a model: ROC AUC against brute force, curve areas, feature-graph scores."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fixture_graphs import random_dag, tiny_graph

from circuitdb.circuits.evaluate import (
    Baselines, CurvePoint, FaithfulnessCurve, graph_scores, roc_auc, roc_auc_edges, roc_auc_nodes,
)
from circuitdb.errors import ConfigError
from circuitdb.graph import AttributionGraph


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=60), 1)  # ties on purpose
    y = rng.random(60) < 0.3
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in itertools.product(s[y], s[~y])]
    assert roc_auc(s, y) == pytest.approx(np.mean(pairs))
    assert roc_auc([3, 2, 1], [True, False, False]) == 1.0
    with pytest.raises(ConfigError, match="positives and negatives"):
        roc_auc([1, 2], [True, True])


def test_roc_auc_on_graphs():
    g = tiny_graph()
    assert roc_auc_edges(g, [("A0.0", "LOGITS"), ("E", "A0.0")]) == 1.0
    assert roc_auc_nodes(g, ["A0.0"]) == 1.0  # A0.0 carries the most |weight|
    with pytest.raises(ConfigError, match="not nodes of graph"):
        roc_auc_nodes(g, ["nope"])


def test_curve_areas():
    pts = tuple(CurvePoint(p, p / 100, 0, f, 0.0) for p, f in [(0.1, 0.0), (50, 1.0), (100, 1.0)])
    c = FaithfulnessCurve(pts, Baselines(1.0, 0.0), "topn")
    assert c.cpr == pytest.approx((0.5 - 0.001) * 0.5 + 0.5)
    assert c.cmd == pytest.approx((0.5 - 0.001) * 0.5)
    assert c.scores()["curve"][1] == [50, 0.5, 1.0]
    with pytest.raises(ConfigError, match="undefined"):
        Baselines(1.0, 1.0).faithfulness(0.5)


def test_graph_scores_hand_computed():
    # E → F (1), ERR → F (1), F → L (2), ERR → L (2): each input of F and L is half error
    nodes = pd.DataFrame({"key": ["E", "ERR0", "F0:1", "L:1"], "kind": ["embed", "error", "feature", "logit"],
                          "probability": [np.nan, np.nan, np.nan, 1.0]})
    edges = pd.DataFrame({"source": [0, 1, 2, 1], "target": [2, 2, 3, 3], "weight": [1.0, 1.0, 2.0, -2.0]})
    sc = graph_scores(AttributionGraph.from_frames(nodes, edges))
    # influence: F .5, ERR .5 + .25 = .75, E .25 → replacement = .25 / (.25 + .75)
    assert sc["replacement"] == pytest.approx(0.25)
    # completeness: non-error share .5 (F), .5 (L), 1 (sources); weights I + w = F .5, L 1, ERR .75, E .25
    assert sc["completeness"] == pytest.approx((0.5 * 0.5 + 0.5 * 1 + 0.75 + 0.25) / 2.5)
    g = random_dag(200, 2000, seed=1)
    s = graph_scores(g)
    assert 0 <= s["replacement"] <= 1 and 0 <= s["completeness"] <= 1


def test_feature_ablation_effect_hand_computed():
    from circuitdb.circuits.evaluate import feature_ablation_effect

    # E → F1 (2.0), E → F2 (1.0), F1 → F2 (1.0), F1 → L (3.0), F2 → L (2.0), ERR → L (0.5); a(F1) = 2, a(F2) = 2
    nodes = pd.DataFrame({"key": ["E", "ERR", "F1", "F2", "L"], "kind": ["embed", "error", "feature", "feature", "logit"],
                          "activation": [np.nan, np.nan, 2.0, 2.0, np.nan], "probability": [np.nan] * 4 + [1.0]})
    edges = pd.DataFrame({"source": [0, 0, 2, 2, 3, 1], "target": [2, 3, 3, 4, 4, 4],
                          "weight": [2.0, 1.0, 1.0, 3.0, 2.0, 0.5]})
    g = AttributionGraph.from_frames(nodes, edges)
    full = feature_ablation_effect(g, g.keys)
    assert full["clean"].iat[0] == pytest.approx(5.5) and full["retained"].iat[0] == pytest.approx(1.0)
    # drop F1: F2 loses 1.0 of its 2.0 pre-activation (δ = −0.5) → L loses 3.0 + 0.5 · 2.0 = 4.0
    no_f1 = feature_ablation_effect(g, ["E", "ERR", "F2", "L"])
    assert no_f1["ablated"].iat[0] == pytest.approx(1.5)
    # drop the error node only: L loses 0.5
    assert feature_ablation_effect(g, ["E", "F1", "F2", "L"])["ablated"].iat[0] == pytest.approx(5.0)
    # drop the token: F1 → δ −1, F2 → (−1·1 + −1·1)/2 = −1 → L keeps only the error's 0.5
    assert feature_ablation_effect(g, ["ERR", "F1", "F2", "L"])["ablated"].iat[0] == pytest.approx(0.5)


def test_feature_graph_scores_match_the_engine(tmp_path):
    pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attribution"))
    from feature_fixtures import prompt, tiny_model

    import circuitdb
    from circuitdb.circuits.evaluate import feature_ablation_effect
    from circuitdb.circuits.prune import prune
    from circuitdb.circuits.query import query
    from circuitdb.dictionaries.train import random_dictionaries
    from circuitdb.store.base import open_store

    model = tiny_model()
    g = circuitdb.attribute_features(model, prompt(), random_dictionaries(model, "transcoder", width=24, seed=3),
                                     prune=None)
    assert (g.nodes["kind"] == "head").any()
    sc = graph_scores(g)
    assert sc["replacement"] == pytest.approx(g.meta["scores"]["replacement"], rel=1e-5)
    assert sc["completeness"] == pytest.approx(g.meta["scores"]["completeness"], rel=1e-5)
    full = feature_ablation_effect(g, g.keys)
    np.testing.assert_allclose(full["retained"], 1.0)
    none = feature_ablation_effect(g, [])
    np.testing.assert_allclose(none["ablated"], 0.0, atol=1e-9)
    c = prune(g, "influence")
    part = feature_ablation_effect(g, c)
    assert np.isfinite(part["ablated"]).all() and len(part) == (g.nodes["kind"] == "logit").sum()
    with open_store(f"embedded:{tmp_path}/f") as s:
        s.write_graph(g)
        paths = query(s, "feature_paths", graph_id=g.id, through_heads=True, max_hops=2, limit=10)
    assert len(paths) and all(any(k.startswith("A") for k in p[1:-1]) for p in paths["path"])
