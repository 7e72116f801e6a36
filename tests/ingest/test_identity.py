"""Deterministic identity: model ids from config + weights + checkpoint, graph ids from provenance, not weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import circuitdb
from circuitdb.identity import checkpoint_of, dictionary_id, graph_id_for, model_id, slug, tokens_digest
from circuitdb.models.zoo import _build

CFG = dict(n_layers=1, n_heads=2, d_model=16, d_head=8, n_ctx=16, d_vocab=20, attn_only=True,
           normalization_type=None, act_fn="gelu")


def test_model_id_is_stable_across_loads_and_dtypes() -> None:
    a = circuitdb.load_model("toy-induction-2l")
    b = circuitdb.load_model("toy-induction-2l", dtype="float64")
    assert model_id(a) == model_id(b) == model_id(circuitdb.load_model("toy-induction-2l"))
    assert model_id(a).startswith("toy-induction-2l-")


def test_two_unrelated_models_named_custom_differ() -> None:
    a = _build(dict(CFG), "custom", "cpu", torch.float32, seed=1)
    b = _build(dict(CFG), "custom", "cpu", torch.float32, seed=2)  # same name, same config, other weights
    c = _build({**CFG, "d_vocab": 21}, "custom", "cpu", torch.float32, seed=1)  # same name, other config
    assert len({model_id(a), model_id(b), model_id(c)}) == 3
    assert model_id(a) == model_id(_build(dict(CFG), "custom", "cpu", torch.float32, seed=1))


def test_model_id_follows_weight_updates_and_checkpoints() -> None:
    m = _build(dict(CFG), "custom", "cpu", torch.float32, seed=1)
    before = model_id(m)
    with torch.no_grad():
        m.W_E.add_(0.5)  # in place: the memo must notice
    assert model_id(m) != before
    after = model_id(m)
    m.cfg = dataclasses.replace(m.cfg, checkpoint_value=200, checkpoint_label_type="step")
    assert checkpoint_of(m) == {"label": "step", "value": 200}
    assert model_id(m) != after


def test_graph_id_from_provenance_not_execution_params() -> None:
    tok = tokens_digest(torch.tensor([[0, 1, 2]]))
    base = dict(model_id="m-1", tokens=tok, method="eap", params={"ig_steps": None, "batch_size": 8})
    gid = graph_id_for(**base)
    assert gid == graph_id_for(**{**base, "params": {"ig_steps": None, "batch_size": 64}})
    assert gid != graph_id_for(**{**base, "tokens": tokens_digest(torch.tensor([[0, 1, 3]]))})
    assert gid != graph_id_for(**{**base, "method": "eap-ig"})
    assert gid != graph_id_for(**base, checkpoint={"label": "step", "value": 1})
    assert gid != graph_id_for(**base, job="other")
    assert gid != graph_id_for(**base, dictionaries=["d-1"])
    assert "/" not in graph_id_for(**base, prefix="a/b c")


def test_attribute_records_model_id_and_uses_the_provenance_id() -> None:
    m = circuitdb.load_model("toy-induction-2l")
    ds = circuitdb.load_task("induction", m, n=2, seed=0)
    g1 = circuitdb.attribute(m, ds, method="eap", progress=False, head_stats=False, batch_size=1)
    g2 = circuitdb.attribute(m, ds, method="eap", progress=False, head_stats=False, batch_size=2)
    g3 = circuitdb.attribute(m, circuitdb.load_task("induction", m, n=2, seed=1), method="eap", progress=False,
                             head_stats=False)
    assert g1.meta["model_id"] == model_id(m)
    assert g1.id == g2.id != g3.id  # batch size is not provenance; the prompts are
    assert g1.id != g1.content_hash()
    assert circuitdb.attribute(m, ds, method="eap", progress=False, head_stats=False, graph_id="mine").id == "mine"


def test_dictionary_id_is_a_content_hash() -> None:
    from circuitdb.dictionaries.load import load_dictionaries

    m = circuitdb.load_model("toy-ioi")
    d = load_dictionaries(None, m)[0]
    changed = dataclasses.replace(d, b_enc=d.b_enc + 1.0)
    assert dictionary_id(d) == dictionary_id(load_dictionaries(None, m)[0])
    assert dictionary_id(d) != dictionary_id(changed) and dictionary_id(d).startswith(slug(d.id))


@pytest.mark.slow
def test_attribute_features_records_dictionary_ids() -> None:
    m = circuitdb.load_model("toy-ioi")
    prompt = circuitdb.load_task("ioi", m, n=1, seed=0).clean[0]
    g = circuitdb.attribute_features(m, prompt, max_feature_nodes=8, heads=False, progress=False)
    again = circuitdb.attribute_features(m, prompt, max_feature_nodes=8, heads=False, progress=False, batch_size=3)
    assert g.meta["model_id"] == model_id(m) and len(g.meta["dictionary_ids"]) == 3
    assert g.id == again.id
