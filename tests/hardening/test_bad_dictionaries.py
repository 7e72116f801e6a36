"""Bad dictionaries: every malformed weight, file or object is a ConfigError that names the dictionary (or file) and
the problem; SAELens objects load singly and in lists."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "attribution"))
from feature_fixtures import prompt, tiny_model  # noqa: E402

from circuitdb.dictionaries import load_dictionaries, load_dictionary_file, save_dictionary  # noqa: E402
from circuitdb.dictionaries.train import random_dictionaries  # noqa: E402
from circuitdb.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model(dtype=torch.float32)


@pytest.fixture()
def good(model):
    return random_dictionaries(model, "transcoder", width=8, seed=0)[1]


def _nan_at(t: torch.Tensor, value: float = float("nan")) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[3] = value
    return t


WEIGHT_CASES = {
    "nan W_enc": (lambda d: {"W_enc": _nan_at(d.W_enc)}, ["W_enc", "NaN/inf", "weights are broken"]),
    "inf W_dec": (lambda d: {"W_dec": _nan_at(d.W_dec, float("inf"))}, ["W_dec", "NaN/inf"]),
    "nan b_enc": (lambda d: {"b_enc": _nan_at(d.b_enc)}, ["b_enc", "NaN/inf"]),
    "nan threshold": (lambda d: {"activation": "jumprelu", "threshold": _nan_at(torch.zeros(d.width))},
                      ["threshold", "NaN/inf"]),
    "1-D W_enc": (lambda d: {"W_enc": d.W_enc.reshape(-1)}, ["W_enc", "2 dimension"]),
    "complex W_dec": (lambda d: {"W_dec": d.W_dec.to(torch.complex64)}, ["W_dec", "complex64", "real floating"]),
    "integer b_dec": (lambda d: {"b_dec": d.b_dec.long()}, ["b_dec", "int64"]),
    "numpy W_enc": (lambda d: {"W_enc": d.W_enc.numpy()}, ["W_enc", "torch.Tensor", "ndarray"]),
    "threshold shape": (lambda d: {"activation": "jumprelu", "threshold": torch.zeros(3)}, ["threshold of shape (8,)"]),
    "input_bias shape": (lambda d: {"input_bias": torch.zeros(5)}, ["input_bias", "(16,) = d_in"]),
    "W_skip shape": (lambda d: {"W_skip": torch.zeros(16, 5)}, ["W_skip", "(16, 16)"]),
    "topk k=True": (lambda d: {"activation": "topk", "k": True}, ["topk", "k=True"]),
    "topk k=0": (lambda d: {"activation": "topk", "k": 0}, ["topk", "k=0"]),
    "bad hook": (lambda d: {"hook_in": "mlp_out"}, ["'mlp_out'", "blocks.<layer>.<hook>"]),
    "ln convention": (lambda d: {"ln_convention": "tl4"}, ["ln_convention", "'tl4'", "tl2"]),
    "skip on an SAE": (lambda d: {"kind": "sae", "hook_in": "blocks.1.hook_resid_pre", "hook_out":
                                  "blocks.1.hook_resid_pre", "W_skip": torch.zeros(16, 16)}, ["SAE has no skip"]),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_bad_weights_name_the_dictionary_and_the_problem(good, case):
    changes, words = WEIGHT_CASES[case]
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(good, **changes(good))
    msg = str(e.value)
    assert good.id in msg and "edge" not in msg
    for w in words:
        assert w in msg


def test_nan_weights_in_a_file_are_refused_on_load(tmp_path, good, model):
    from safetensors.torch import save_file

    save_dictionary(good, tmp_path / "tc")
    tensors = {n: getattr(good, n) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    save_file({**tensors, "W_dec": _nan_at(good.W_dec)}, str(tmp_path / "tc.safetensors"))
    with pytest.raises(ConfigError, match=r"W_dec holds 1 NaN/inf"):
        load_dictionaries(str(tmp_path), model)


@pytest.mark.parametrize("content, words", [
    (b"{not json", ["not readable JSON"]),
    (b"\xff\xfe\x00garbage", ["not readable JSON"]),
    (b"[1, 2, 3]", ["JSON object", "list"]),
    (b"", ["not readable JSON"]),
])
def test_unreadable_json_in_a_folder_is_an_error_not_a_skip(tmp_path, good, model, content, words):
    save_dictionary(good, tmp_path / "tc")
    (tmp_path / "tc.json").write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_dictionaries(str(tmp_path), model)
    assert "tc.json" in str(e.value) and all(w in str(e.value) for w in words)


def test_wrong_types_in_the_json_are_named(tmp_path, good):
    js = save_dictionary(good, tmp_path / "tc")
    cfg = json.loads(js.read_text())
    js.write_text(json.dumps({**cfg, "hook_in": 5}))
    with pytest.raises(ConfigError, match="hook_in must be a string"):
        load_dictionary_file(js)


@pytest.mark.parametrize("cut", [0, 7, 100, -40])
def test_truncated_safetensors_is_a_named_error(tmp_path, good, model, cut):
    save_dictionary(good, tmp_path / "tc")
    st = tmp_path / "tc.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(ConfigError, match="cannot read safetensors file .*tc.safetensors.*truncated or corrupt"):
        load_dictionaries(str(tmp_path), model)


def test_missing_tensor_is_named(tmp_path, good):
    from safetensors.torch import save_file

    save_dictionary(good, tmp_path / "tc")
    save_file({"W_enc": good.W_enc, "b_enc": good.b_enc, "b_dec": good.b_dec}, str(tmp_path / "tc.safetensors"))
    with pytest.raises(ConfigError, match=r"lacks tensor\(s\) \['W_dec'\]"):
        load_dictionary_file(tmp_path / "tc.json")


def _saelens_sae(layer: int, seed: int):  # noqa: ANN202
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=16, d_sae=32, dtype="float32")
    cfg.metadata = SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_pre", sae_id=f"sae{layer}")
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.b_enc.normal_()
    return sae


def test_saelens_objects_load_singly_and_in_lists(model):
    """A SAELens SAE's __iter__ yields the SAE itself (a legacy tuple API): it must not recurse forever."""
    a, b = _saelens_sae(1, 0), _saelens_sae(2, 1)
    assert any(x is a for x in iter(a))  # the trap this guards against
    one = load_dictionaries(a, model)
    both = load_dictionaries([a, b], model)
    assert [d.hook_in for d in one] == ["blocks.1.hook_resid_pre"]
    assert [d.hook_in for d in both] == ["blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre"]
    x = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.allclose(both[1].encode(x), b.encode(x), atol=1e-6)


def test_a_spec_that_contains_itself_is_refused(model):
    class Loop(list):
        pass

    loop = Loop()
    loop.append(loop)
    with pytest.raises(ConfigError, match="contains itself"):
        load_dictionaries(loop, model)


def test_other_objects_are_refused_with_the_valid_forms(model):
    with pytest.raises(ConfigError, match="cannot read a dictionary spec of type int"):
        load_dictionaries(3, model)
    with pytest.raises(ConfigError, match="cannot read a dictionary spec of type ndarray"):
        load_dictionaries(np.zeros(3), model)


def test_a_good_dictionary_still_gives_a_graph(model, good):
    from circuitdb.attribution.features import attribute_features

    g = attribute_features(model, prompt(), random_dictionaries(model, "transcoder", width=8, seed=0),
                           heads=False, progress=False)
    assert g.n_edges > 0
