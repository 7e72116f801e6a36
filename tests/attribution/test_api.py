"""``circuitdb.attribute``: inputs it accepts, the graph and metadata it returns, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import circuitdb
from circuitdb.attribution.components import component_graph
from circuitdb.attribution.patching import exact_edge_scores
from circuitdb.errors import ConfigError
from circuitdb.models import load_model
from circuitdb.tasks.base import PromptPairs
from circuitdb.tasks.metrics import logit_diff


def tensors(model, n: int = 4, seq: int = 6, seed: int = 0) -> dict:  # noqa: ANN001
    g = torch.Generator().manual_seed(seed)
    V = model.cfg.d_vocab
    return {"clean": torch.randint(0, V, (n, seq), generator=g), "corrupted": torch.randint(0, V, (n, seq), generator=g),
            "answer": torch.randint(0, V, (n,), generator=g), "wrong": torch.randint(0, V, (n,), generator=g)}


def test_task_name_model_name_and_metadata() -> None:
    g = circuitdb.attribute("random-2l", "induction", method="eap-ig", ig_steps=2, n=6, progress=False,
                            graph_id="ind-test")
    comp = component_graph(load_model("random-2l"))
    assert g.id == "ind-test" and g.n_nodes == comp.n_nodes and g.n_edges == comp.n_edges
    m = g.meta
    assert (m["model"], m["granularity"], m["method"], m["metric"]) == ("random-2l", "component", "eap-ig", "logprob")
    assert m["params"]["ig_steps"] == 2 and m["params"]["n"] == 6 and m["params"]["dataset"] == "induction"
    assert m["params"]["ablation"] == "patch" and m["params"]["dtype"] == "float32"
    assert len(m["tokens"]) == 3 and len(m["tokens"][0]) == m["params"]["seq_len"]
    assert np.isfinite(m["scores"]["clean_metric"]) and np.isfinite(m["scores"]["corrupted_metric"])
    heads = g.nodes[g.nodes["kind"] == "head"]
    for col in ("prev_token_score", "induction_score", "duplicate_token_score", "direct_logit"):
        assert heads[col].notna().all(), col
    assert g.nodes.loc[g.nodes["kind"] == "logit", "prev_token_score"].isna().all()
    nodes, edges = g.to_frames()
    into_heads = nodes["kind"].to_numpy()[edges["target"]] == "head"
    assert set(edges["channel"][into_heads]) == {"q", "k", "v"} and set(edges["channel"][~into_heads]) == {""}


def test_dict_tuple_and_callable_metric_agree() -> None:
    model = load_model("random-attn-1l")
    d = tensors(model)
    a = circuitdb.attribute(model, d, method="eap", metric="logit_diff", progress=False, head_stats=False)
    b = circuitdb.attribute(model, (d["clean"], d["corrupted"], d["answer"], d["wrong"]), method="eap",
                            metric=logit_diff, progress=False, head_stats=False)
    c = circuitdb.attribute(model, PromptPairs(**d), method="eap", progress=False, head_stats=False)  # default metric
    np.testing.assert_allclose(a.weight, b.weight, atol=1e-7)
    np.testing.assert_allclose(a.weight, c.weight, atol=1e-7)
    assert b.meta["metric"] == "logit_diff" and c.meta["metric"] == "logit_diff"


def test_patching_method_and_float64_copy() -> None:
    model = load_model("random-attn-1l")
    ds = PromptPairs(**tensors(model))
    g = circuitdb.attribute(model, ds, method="patching", metric="logit_diff", dtype="float64", progress=False,
                            head_stats=False)
    assert model.cfg.dtype == torch.float32 and model.W_Q.dtype == torch.float32  # the user's model is untouched
    assert g.meta["params"]["dtype"] == "float64"
    from circuitdb.attribution.api import resolve_model

    want = exact_edge_scores(resolve_model(model, "float64"), ds, logit_diff, progress=False)
    np.testing.assert_allclose(g.weight, want.numpy(), atol=1e-5)
    assert not model.cfg.use_split_qkv_input  # engine settings restored


def test_per_position_graph_and_ablations() -> None:
    model = load_model("random-2l")
    ds = PromptPairs(**tensors(model, seq=5))
    comp = component_graph(model)
    g = circuitdb.attribute(model, ds, method="eap", metric="logit_diff", per_position=True, progress=False)
    assert g.n_nodes == 5 * comp.n_nodes and g.n_edges == 5 * comp.n_edges
    assert g.keys[comp.n_nodes + 1] == "A0.0@1"
    last = g.nodes["pos"].to_numpy() == 4
    heads = g.nodes["kind"].to_numpy() == "head"
    assert g.nodes["direct_logit"][heads & last].notna().all() and g.nodes["direct_logit"][heads & ~last].isna().all()
    whole = circuitdb.attribute(model, ds, method="eap", metric="logit_diff", progress=False, head_stats=False)
    np.testing.assert_allclose(g.weight.reshape(5, -1).sum(0), whole.weight, atol=1e-5)
    for ablation in ("zero", "mean"):
        ga = circuitdb.attribute(model, ds, method="eap-ig", metric="logit_diff", ablation=ablation, ig_steps=2,
                                 progress=False, head_stats=False)
        assert ga.meta["params"]["ablation"] == ablation and "corrupted_metric" not in ga.meta["scores"]
        assert not np.allclose(ga.weight, whole.weight)


def test_bad_input_gives_clear_errors() -> None:
    model = load_model("random-attn-1l")  # d_vocab 50, n_ctx 32
    d = tensors(model)
    with pytest.raises(ConfigError, match=r"clean \(4, 6\) and corrupted \(4, 5\)"):
        circuitdb.attribute(model, {**d, "corrupted": d["corrupted"][:, :5]}, progress=False)
    with pytest.raises(ConfigError, match=r"answer holds token id 50, outside the vocabulary \[0, 50\)"):
        circuitdb.attribute(model, {**d, "answer": torch.full((4,), 50)}, progress=False)
    with pytest.raises(ConfigError, match="empty"):
        circuitdb.attribute(model, {k: v[:0] for k, v in d.items()}, progress=False)
    long = {**d, "clean": torch.zeros(4, 40, dtype=torch.long), "corrupted": torch.zeros(4, 40, dtype=torch.long)}
    with pytest.raises(ConfigError, match="prompts have 40 tokens, the model's n_ctx is 32"):
        circuitdb.attribute(model, long, progress=False)
    with pytest.raises(ConfigError, match="unknown attribution method 'acdc'; valid options: eap, eap-ig, eap-ig\\+patching, patching"):
        circuitdb.attribute(model, d, method="acdc")
    with pytest.raises(ConfigError, match="unknown ablation 'resample'"):
        circuitdb.attribute(model, d, ablation="resample")
    with pytest.raises(ConfigError, match="unknown metric 'accuracy'"):
        circuitdb.attribute(model, d, metric="accuracy", progress=False)
    with pytest.raises(ConfigError, match="unknown dtype 'float8'"):
        circuitdb.attribute(model, d, dtype="float8")
    with pytest.raises(ConfigError, match="unknown keys \\['answers'\\]"):
        circuitdb.attribute(model, {**d, "answers": d["answer"]}, progress=False)
    with pytest.raises(ConfigError, match="integer token ids"):
        circuitdb.attribute(model, {**d, "clean": d["clean"].float()}, progress=False)
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        circuitdb.attribute(model, "nope", progress=False)
    with pytest.raises(ConfigError, match="answer_pos 9 outside the prompt length 6"):
        circuitdb.attribute(model, {**d, "answer_pos": torch.full((4,), 9)}, progress=False)
    # no hooks or engine settings leak out of failed runs
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())
    assert not model.cfg.use_split_qkv_input
