"""The dictionaries shipped with the zoo load by default, are small, and reach the documented FVE (≥ 0.8) on fresh
prompts; if a zoo model is retrained, retrain its dictionaries (see :mod:`circuitdb.dictionaries.train`)."""

from __future__ import annotations

import pytest
import torch

from circuitdb.dictionaries import fraction_variance_explained, load_dictionaries, zoo_dictionary_dir
from circuitdb.dictionaries.safetensors import dictionary_stats
from circuitdb.dictionaries.train import MIN_FVE, zoo_tokens


def _zoo_model(name: str):  # noqa: ANN202
    from circuitdb.models.zoo import ZOO_DIR

    if not (ZOO_DIR / name / "model.safetensors").is_file() or not zoo_dictionary_dir(name).is_dir():
        pytest.skip(f"{name} weights or dictionaries are not in the zoo")
    from circuitdb.models import load_model

    return load_model(name)


@pytest.mark.parametrize("name, kind", [("toy-ioi", "transcoder"), ("toy-ioi-circuit", "transcoder"),
                                        ("toy-induction-2l", "sae")])
def test_shipped_dictionaries_fit_and_reach_fve(name, kind):
    model = _zoo_model(name)
    folder = zoo_dictionary_dir(name)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 1_500_000, f"shipped dictionaries take {size} bytes"
    dicts = load_dictionaries(None, model)
    assert [d.layer for d in dicts] == list(range(model.cfg.n_layers))
    assert all(d.kind == kind for d in dicts)
    for js in sorted(folder.glob("*.json")):
        assert dictionary_stats(js)["fve"] >= MIN_FVE
    toks = zoo_tokens(model, 64, seed=12345)  # fresh prompts: a seed the training never used
    hooks = [h for d in dicts for h in (d.hook_in, d.hook_out)]
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names_filter=lambda n: n in hooks)
        for d in dicts:
            x = cache[d.hook_in].reshape(-1, d.d_in)
            y = cache[d.hook_out].reshape(-1, d.d_out)
            fve = fraction_variance_explained(y, d(x))
            assert fve >= MIN_FVE, f"{d.id}: FVE {fve:.3f}; retrain with python -m circuitdb.dictionaries.train {name}"


def test_toy_ioi_feature_graph_by_name():
    from circuitdb.attribution.features import attribute_features
    from circuitdb.tasks.ioi import ioi_task

    model = _zoo_model("toy-ioi")
    task = ioi_task(model, n=1, seed=0)
    g = attribute_features("toy-ioi", task.clean[0], heads=False, progress=False)
    top = g.nodes[g.nodes.kind == "logit"].iloc[0]
    assert top["token"] == int(task.answer[0])  # the model answers the IOI prompt
    assert g.meta["dictionaries"] == [d.id for d in load_dictionaries(None, model)]
    assert g.meta["scores"]["completeness"] > 0.8


def test_toy_ioi_replacement_reproduces_logits():
    from circuitdb.attribution.replacement import ReplacementModel
    from circuitdb.tasks.ioi import ioi_task

    model = _zoo_model("toy-ioi")
    toks = ioi_task(model, n=1, seed=1).clean[0]
    rm = ReplacementModel.build(model, toks, load_dictionaries(None, model))
    with torch.no_grad():
        assert (rm.frozen_forward()["logits"] - model(toks[None])[0]).abs().max().item() <= 1e-4
