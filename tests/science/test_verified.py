"""The verified method against compiled ground truth (tracr programs, fixtures/make_tracr.py), and the all-zero
warning. Edge ROC AUC is tie-aware: scores within 1e-5 · max of zero are ties (float32 noise is no ranking)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import circuitdb
from circuitdb.attribution.verified import candidates

from tracr_fixtures import PROGRAMS, dataset, edge_auc, load_tracr, meta, support_edges, true_edges

ATTR = {"ablation": "zero", "metric": "logit_diff", "progress": False, "head_stats": False}


@pytest.mark.parametrize("name", PROGRAMS)
def test_converted_model_computes_the_program(name: str) -> None:
    model, m = load_tracr(name), meta(name)
    out = model(torch.tensor([e["ids"] for e in m["examples"]])).argmax(-1)
    for i, e in enumerate(m["examples"]):
        assert out[i, 1:e["n_real"]].tolist() == e["output_ids"][1:e["n_real"]], e["input"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_true_edges_follow_the_weights(name: str) -> None:
    """The JSON's structural edges are exactly the weight-support overlaps; true edges are a subset of them."""
    structural = {tuple(e) for e in meta(name)["structural_edges"]}
    assert support_edges(load_tracr(name), name) == structural
    assert true_edges(name) <= structural and len(true_edges(name)) >= 6


@pytest.mark.parametrize("name", PROGRAMS)
def test_verified_method_recovers_the_compiled_circuit(name: str) -> None:
    model, ds = load_tracr(name), dataset(name)
    auc = {m: edge_auc(circuitdb.attribute(model, ds, method=m, **ATTR), name)
           for m in ("eap", "eap-ig", "patching", "eap-ig+patching")}
    assert auc["patching"] == 1.0, auc
    assert auc["eap-ig+patching"] >= 0.95, auc


def test_verification_fixes_what_the_gradient_misses() -> None:
    """On sort_unique EAP-IG ties true edges with absent ones at zero; re-scoring them by patching gives the
    exact patching score on exactly those edges and the EAP-IG score on the others."""
    model, ds = load_tracr("sort_unique"), dataset("sort_unique")
    ig = circuitdb.attribute(model, ds, method="eap-ig", **ATTR)
    ver = circuitdb.attribute(model, ds, method="eap-ig+patching", **ATTR)
    ex = circuitdb.attribute(model, ds, method="patching", **ATTR)
    assert edge_auc(ig, "sort_unique") < 0.9 <= 0.95 <= edge_auc(ver, "sort_unique")
    idx = candidates(ig.weight)
    assert ver.meta["scores"]["n_verified"] == idx.size > 0
    np.testing.assert_allclose(ver.weight[idx], ex.weight[idx], atol=1e-9)
    rest = np.setdiff1d(np.arange(ig.n_edges), idx)
    np.testing.assert_allclose(ver.weight[rest], ig.weight[rest], atol=1e-12)
    assert ver.meta["params"]["verify"] == {"near_zero": 1e-5, "top_k": None}


def test_top_k_boundary_is_rescored() -> None:
    g = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.0])
    assert candidates(g, top_k=2).tolist() == [1, 2, 3, 6]
    assert candidates(g).tolist() == [6]


@pytest.mark.parametrize("metric", ["kl", "l2"])
def test_all_zero_warning_names_the_metric_gradient(caplog: pytest.LogCaptureFixture, metric: str) -> None:
    """KL / L2 to the clean output have their minimum at the clean run: EAP's gradient there is zero everywhere."""
    model, ds = load_tracr("hist"), dataset("hist")
    with caplog.at_level(logging.WARNING, logger="circuitdb.attribution.verified"):
        g = circuitdb.attribute(model, ds, method="eap", metric=metric, ablation="zero", progress=False,
                                head_stats=False)
    assert np.abs(g.weight).max() < 1e-6
    msgs = [r.getMessage() for r in caplog.records]
    assert any("vanishes at the clean run" in m and f"'{metric}'" in m for m in msgs), msgs
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="circuitdb.attribution.verified"):
        g = circuitdb.attribute(model, ds, method="eap-ig+patching", metric=metric, ablation="zero", progress=False,
                                head_stats=False)
    assert not caplog.records and edge_auc(g, "hist") >= 0.95


def test_attribute_cli_runs_the_verified_method(tmp_path) -> None:
    from typer.testing import CliRunner

    from circuitdb.cli import app
    from circuitdb.store.base import open_store

    uri = f"embedded:{tmp_path / 'db'}"
    r = CliRunner().invoke(app, ["attribute", "--model", "toy-induction-2l", "--task", "induction", "--n", "4",
                                 "--method", "eap-ig+patching", "--graph-id", "ver", "--store", uri])
    assert r.exit_code == 0, r.output
    with open_store(uri) as st:
        g = st.read_graph("ver")
    assert g.meta["method"] == "eap-ig+patching" and g.meta["scores"]["n_verified"] > 0
