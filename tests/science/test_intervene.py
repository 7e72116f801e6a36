"""Interventions by node key, steering, the logit lens, and graph-predicted vs actual effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import circuitdb
from circuitdb.attribution.patching import exact_node_scores
from circuitdb.circuits.circuit import Circuit
from circuitdb.cli import app
from circuitdb.errors import ConfigError
from circuitdb.intervene import (
    Intervention, generate, logit_lens, logit_lens_metric, parse_key, patch_check, record_check, run_with_interventions,
    steering_check,
)
from circuitdb.store.base import open_store
from circuitdb.tasks.metrics import logit_diff


@pytest.fixture(scope="module")
def ioi():
    torch.set_num_threads(1)
    model = circuitdb.load_model("toy-ioi").to(torch.float64)
    return model, circuitdb.load_task("ioi", model, n=8, seed=0)


@pytest.fixture(scope="module")
def feature_graph(ioi):
    model, ds = ioi
    return circuitdb.attribute_features(model, ds.clean[0], prune=None, heads=False, progress=False,
                                        graph_id="fg-ioi0")


def test_keys_and_errors() -> None:
    assert parse_key("A1.2@5") == ("head", 1, 2, 5)
    assert parse_key("M0") == ("mlp", 0, -1, None)
    assert parse_key("F1:37@4") == ("feature", 1, 37, 4)
    with pytest.raises(ConfigError, match="keys look like"):
        parse_key("LOGITS")
    with pytest.raises(ConfigError, match="needs a position"):
        parse_key("F1:3")
    with pytest.raises(ConfigError, match="valid options"):
        Intervention("A0.0", "boost")
    with pytest.raises(ConfigError, match="decoder direction"):
        Intervention("A0.0", "add", 1.0)


@pytest.mark.parametrize("op,ablation", [("zero", "zero"), ("patch", "patch")])
def test_node_interventions_equal_exact_patching(ioi, op: str, ablation: str) -> None:
    """Zeroing / patching a head or MLP by key moves the metric exactly as the patching engine's node score."""
    model, ds = ioi
    keys = ["A2.1", "A1.3", "M0"]
    want = exact_node_scores(model, ds, logit_diff, ablation=ablation, nodes=keys, progress=False)
    clean = float(logit_diff(run_with_interventions(model, ds.clean, []), ds).mean())
    for k in keys:
        got = run_with_interventions(model, ds.clean, [Intervention(k, op)], corrupted=ds.corrupted)
        assert float(logit_diff(got, ds).mean()) - clean == pytest.approx(want[k], abs=1e-9)
    same = run_with_interventions(model, ds.clean, [Intervention("A2.1", "scale", 1.0)])
    assert torch.allclose(same, model(ds.clean), atol=1e-10)


def test_feature_steering_adds_the_decoder_direction(ioi) -> None:
    model, ds = ioi
    from circuitdb.dictionaries.load import load_dictionaries

    dicts = load_dictionaries(None, model, dtype=torch.float64)
    d = dicts[-1]
    grab = {}
    with model.hooks(fwd_hooks=[(d.hook_out, lambda t, hook: grab.__setitem__("clean", t.clone()))]):
        model(ds.clean[:1])
    from circuitdb.intervene import intervention_hooks

    hooks = intervention_hooks(model, [Intervention("F2:7@14", "add", 3.0)], dicts)
    with model.hooks(fwd_hooks=hooks + [(d.hook_out, lambda t, hook: grab.__setitem__("steered", t.clone()))]):
        model(ds.clean[:1])
    delta = grab["steered"] - grab["clean"]
    assert torch.allclose(delta[0, 14], 3.0 * d.W_dec[7], atol=1e-12)
    assert delta[0, :14].abs().max() == 0


def test_steering_prediction_frozen_exact_real_gap_named(ioi, feature_graph) -> None:
    model, _ = ioi
    feats = feature_graph.nodes[feature_graph.nodes.kind == "feature"].sort_values("influence", ascending=False)
    gaps = []
    for key in feats.key[:3]:
        res = steering_check(model, feature_graph, key, 0.0)
        assert res["frozen_vs_graph"] < 1e-6
        for v in res["logits"].values():
            assert v["frozen"] == pytest.approx(v["direct"], abs=1e-6)
            assert np.isfinite(v["real"]) and v["gap"] == pytest.approx(v["real"] - v["propagated"])
            gaps.append(abs(v["gap"]))
    assert max(gaps) > 1e-3  # the real model is not the frozen linearisation
    assert "attention patterns" in res["gap_cause"]
    c = record_check(Circuit(feature_graph, feature_graph.id, "none"), res)
    assert c.scores["steering_checks"][-1]["key"] == res["key"]


def test_feature_patch_sets_the_corrupted_activation(ioi) -> None:
    """Patching F{l}:{i}@p adds (a_corrupted − a_clean) · W_dec[i] at the dictionary's output hook, only at p."""
    model, ds = ioi
    from circuitdb.dictionaries.load import load_dictionaries
    from circuitdb.intervene import intervention_hooks

    dicts = load_dictionaries(None, model, dtype=torch.float64)
    d = dicts[-1]
    grab = {}
    put = lambda name: (lambda t, hook: grab.__setitem__(name, t.clone()))  # noqa: E731
    with model.hooks(fwd_hooks=[(d.hook_in, put("in_clean")), (d.hook_out, put("clean"))]):
        model(ds.clean[:2])
    with model.hooks(fwd_hooks=[(d.hook_in, put("in_bad"))]):
        model(ds.corrupted[:2])
    pos = ds.seq_len - 1
    a_clean, a_bad = (d.encode(grab[k])[:, pos].detach() for k in ("in_clean", "in_bad"))
    f = int((a_bad - a_clean).abs().sum(0).argmax())  # the feature the corruption moves most at the last position
    assert float((a_bad - a_clean)[:, f].abs().max()) > 1e-3
    hooks = intervention_hooks(model, [Intervention(f"F2:{f}@{pos}", "patch")], dicts, ds.corrupted[:2])
    with model.hooks(fwd_hooks=hooks + [(d.hook_out, put("patched"))]):
        model(ds.clean[:2])
    delta = grab["patched"] - grab["clean"]
    want = (a_bad[:, f] - a_clean[:, f])[:, None] * d.W_dec[f]
    assert torch.allclose(delta[:, pos], want, atol=1e-12)
    assert delta[:, :pos].abs().max() == 0
    with pytest.raises(ConfigError, match="needs corrupted tokens"):
        run_with_interventions(model, ds.clean[:1], [Intervention(f"F2:{f}@{pos}", "patch")], dictionaries=dicts)


def test_patch_check_frozen_exact_real_gap_named(ioi, feature_graph) -> None:
    """A feature patched from the corrupted prompt: the graph predicts the change (frozen model: to 1e-6), the real
    model's is reported with the gap named; the check is stored on the circuit."""
    model, ds = ioi
    feats = feature_graph.nodes[feature_graph.nodes.kind == "feature"].sort_values("influence", ascending=False)
    moved = []
    for key in feats.key[:40]:
        res = patch_check(model, feature_graph, key, ds.corrupted[0])
        if abs(res["factor"] - 1.0) > 0.05:
            moved.append(res)
        assert res["factor"] == pytest.approx(res["corrupted_activation"] / res["clean_activation"])
        assert res["frozen_vs_graph"] < 1e-6
        for v in res["logits"].values():
            assert v["frozen"] == pytest.approx(v["direct"], abs=1e-6)
            assert v["gap"] == pytest.approx(v["real"] - v["propagated"])
        if len(moved) >= 3:
            break
    assert len(moved) >= 3  # the corruption (S2 → C) changes features downstream of S2
    assert max(abs(v["real"]) for r in moved for v in r["logits"].values()) > 1e-3
    assert "attention patterns" in moved[0]["gap_cause"] and moved[0]["op"] == "patch"
    c = record_check(Circuit(feature_graph, feature_graph.id, "none"), moved[0])
    assert c.scores["steering_checks"][-1]["corrupted_activation"] == moved[0]["corrupted_activation"]
    with pytest.raises(ConfigError, match="equal lengths"):
        patch_check(model, feature_graph, moved[0]["key"], ds.corrupted[0][:-1])


def test_logit_lens_and_generation(ioi) -> None:
    model, ds = ioi
    ll = logit_lens(model, ds.clean[:2])
    assert ll.shape == (model.cfg.n_layers + 1, 2, ds.seq_len, model.cfg.d_vocab_out)
    assert torch.allclose(ll[-1], model(ds.clean[:2]), atol=1e-10)
    emb = model.unembed(model.ln_final(model.embed(ds.clean[:2]) + model.pos_embed(ds.clean[:2])))
    assert torch.allclose(ll[0], emb, atol=1e-10)
    lm = logit_lens_metric(model, ds)
    assert lm.shape == (model.cfg.n_layers + 1,)
    with torch.no_grad():
        full = float(logit_diff(model(ds.clean), ds).mean())
    assert float(lm[-1]) == pytest.approx(full, abs=1e-9)
    assert float(lm[-1]) > float(lm[0])  # the IO name is decoded late, not from the embeddings
    toks = ds.clean[0]
    out = generate(model, toks, max_new_tokens=2)
    assert out[0] == int(model(toks[None])[0, -1].argmax())


def test_steer_cli(ioi, feature_graph, tmp_path) -> None:
    uri = f"embedded:{tmp_path / 'db'}"
    with open_store(uri) as st:
        st.write_graph(feature_graph)
        Circuit(feature_graph, feature_graph.id, "none").save(st, "all")
    key = feature_graph.nodes[feature_graph.nodes.kind == "feature"].sort_values("influence").key.iloc[-1]
    r = CliRunner().invoke(app, ["steer", "-m", "toy-ioi", "-g", feature_graph.id, "--ablate", "A2.1",
                                 "--generate", "2", "--check", f"{key}=0", "--save-check", "all", "--store", uri])
    assert r.exit_code == 0, r.output
    assert "change" in r.output and "intervened:" in r.output and "frozen vs graph" in r.output
    with open_store(uri) as st:
        c = Circuit.load(st, "all", feature_graph.id)
    assert c.scores["steering_checks"][0]["key"] == key
    ds = circuitdb.load_task("ioi", circuitdb.load_model("toy-ioi"), n=8, seed=0)
    bad = " ".join(circuitdb.detokenize(circuitdb.load_model("toy-ioi"), ds.corrupted[0][1:]))
    r = CliRunner().invoke(app, ["steer", "-m", "toy-ioi", "-g", feature_graph.id, "--corrupted", bad, "--patch", "A2.1",
                                 "--check", f"{key}=patch", "--save-check", "all", "--store", uri])
    assert r.exit_code == 0, r.output
    assert "patching" in r.output and "from the corrupted prompt" in r.output
    with open_store(uri) as st:
        c = Circuit.load(st, "all", feature_graph.id)
    assert [x.get("op") for x in c.scores["steering_checks"]] == ["scale", "patch"]
