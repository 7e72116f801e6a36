"""circuit-tracer's transcoder files load into the same dictionaries (transposes, skip, JumpReLU, the TL-2 LayerNorm
convention folded) and give the same graph; so do cross-layer transcoder folders (circuit-tracer's to_safetensors
layout)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parents[1] / "attribution"))
from feature_fixtures import prompt, tiny_model  # noqa: E402

from circuitdb.attribution.features import attribute_features  # noqa: E402
from circuitdb.dictionaries import load_dictionaries  # noqa: E402
from circuitdb.dictionaries.train import random_dictionaries  # noqa: E402
from circuitdb.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def model():
    m = tiny_model()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for b in m.blocks:
            b.ln2.w.mul_(1 + 0.5 * torch.randn(b.ln2.w.shape, generator=g, dtype=b.ln2.w.dtype))
            b.ln2.b.add_(0.3 * torch.randn(b.ln2.b.shape, generator=g, dtype=b.ln2.b.dtype))
    return m


def _tl2(d, model):  # noqa: ANN001, ANN202
    ln = model.blocks[d.layer].ln2
    W = d.W_enc / ln.w.detach()[:, None]
    skip = None if d.W_skip is None else d.W_skip / ln.w.detach()[:, None]
    b_dec = d.b_dec if d.W_skip is None else d.b_dec - ln.b.detach() @ skip
    return dataclasses.replace(d, W_enc=W, b_enc=d.b_enc - ln.b.detach() @ W, W_skip=skip, b_dec=b_dec)


def test_transcoder_set_yaml_relu_skip_and_gemma_scope(tmp_path, model):
    g = torch.Generator().manual_seed(1)
    ours = random_dictionaries(model, "transcoder", width=24, seed=3)
    ours[0] = dataclasses.replace(ours[0], W_skip=torch.randn(16, 16, generator=g, dtype=torch.float64) / 4)
    ours[2] = dataclasses.replace(ours[2], activation="jumprelu", b_enc=ours[2].b_enc + 0.8,
                                  threshold=torch.full((24,), 0.4, dtype=torch.float64))
    lines = ["model_name: tiny", "feature_input_hook: ln2.hook_normalized", "feature_output_hook: mlp.hook_out",
             "transcoders:"]
    for d in ours:
        f = _tl2(d, model)  # the files hold what circuit-tracer (TransformerLens 2.x) trained against
        if d.activation == "jumprelu":
            name = f"layer_{d.layer}.npz"
            np.savez(tmp_path / name, W_enc=f.W_enc.numpy(), W_dec=f.W_dec.numpy(), b_enc=f.b_enc.numpy(),
                     b_dec=f.b_dec.numpy(), threshold=f.threshold.numpy())
        else:
            name = f"layer_{d.layer}.safetensors"
            t = {"W_enc": f.W_enc.T.contiguous(), "W_dec": f.W_dec.T.contiguous(), "b_enc": f.b_enc, "b_dec": f.b_dec}
            if f.W_skip is not None:
                t["W_skip"] = f.W_skip.T.contiguous()
            save_file(t, str(tmp_path / name))
        lines += [f"  - id: {d.id}", f"    layer: {d.layer}", f"    filepath: {name}"]
    (tmp_path / "set.yaml").write_text("\n".join(lines) + "\n")
    got = load_dictionaries(str(tmp_path / "set.yaml"), model)
    assert [d.id for d in got] == [d.id for d in ours] and got[0].W_skip is not None
    assert got[2].activation == "jumprelu" and all(d.ln_convention == "tl3" for d in got)  # folded on load
    a = attribute_features(model, prompt(), ours, heads=False, prune=None, progress=False, graph_id="g")
    b = attribute_features(model, prompt(), got, heads=False, prune=None, progress=False, graph_id="g")
    assert a.diff(b, atol=1e-9, meta=False) == []


def _write_clt(folder, dicts) -> None:  # noqa: ANN001
    """circuit-tracer's CrossLayerTranscoder.to_safetensors layout: per layer i, W_enc_i [d_sae, d_model], b_enc_i,
    b_dec_i (layer i's output bias), threshold_i (JumpReLU) and W_dec_i [d_sae, n - i, d_model]."""
    folder.mkdir()
    for i, d in enumerate(dicts):
        enc = {f"W_enc_{i}": d.W_enc.T.contiguous(), f"b_enc_{i}": d.b_enc, f"b_dec_{i}": d.b_dec}
        if d.threshold is not None:
            enc[f"threshold_{i}"] = d.threshold
        save_file(enc, str(folder / f"W_enc_{i}.safetensors"))
        dec = d.W_dec[:, None] if d.W_dec_later is None else torch.cat([d.W_dec[:, None], d.W_dec_later], 1)
        save_file({f"W_dec_{i}": dec.contiguous()}, str(folder / f"W_dec_{i}.safetensors"))


@pytest.mark.parametrize("act", ["relu", "jumprelu"])
def test_cross_layer_transcoder_folder_loads_to_the_same_graph(tmp_path, model, act):
    ours = [dataclasses.replace(d, id=f"clt-{i}") for i, d in enumerate(random_dictionaries(
        model, "transcoder", width=24, seed=3, cross_layer=True, transcoder_in="hook_resid_mid"))]
    if act == "jumprelu":
        ours = [dataclasses.replace(d, activation="jumprelu", b_enc=d.b_enc + 0.8,
                                    threshold=torch.full((24,), 0.4, dtype=torch.float64)) for d in ours]
    _write_clt(tmp_path / "clt", ours)
    got = load_dictionaries(str(tmp_path / "clt"), model)
    assert [d.id for d in got] == ["clt-0", "clt-1", "clt-2"] and [d.n_later for d in got] == [2, 1, 0]
    assert all(d.hook_in == f"blocks.{i}.hook_resid_mid" and d.activation == act for i, d in enumerate(got))
    a = attribute_features(model, prompt(), ours, heads=False, prune=None, progress=False, graph_id="g")
    b = attribute_features(model, prompt(), got, heads=False, prune=None, progress=False, graph_id="g")
    assert a.diff(b, atol=1e-9, meta=False) == []
    # circuitdb's own file format keeps the later decoders too
    from circuitdb.dictionaries.safetensors import load_dictionary_file, save_dictionary

    back = load_dictionary_file(save_dictionary(got[0], tmp_path / "own" / "c0"))
    assert back.n_later == 2 and torch.equal(back.W_dec_later, got[0].W_dec_later)


def test_bad_clt_folders_and_sets_are_named(tmp_path, model):
    clt = tmp_path / "clt"
    clt.mkdir()
    save_file({"W_enc_0": torch.zeros(8, 16), "b_enc_0": torch.zeros(8), "b_dec_0": torch.zeros(16)},
              str(clt / "W_enc_0.safetensors"))
    with pytest.raises(ConfigError, match="lacks 'W_dec_0.safetensors'"):
        load_dictionaries(str(clt), model)
    save_file({"W_dec_0": torch.zeros(8, 16)}, str(clt / "W_dec_0.safetensors"))
    with pytest.raises(ConfigError, match=r"W_dec_0 has shape \(8, 16\)"):
        load_dictionaries(str(clt), model)
    save_file({"W_dec_0": torch.zeros(8, 3, 16)}, str(clt / "W_dec_0.safetensors"))
    with pytest.raises(ConfigError, match=r"expected \(d_sae, 1, d_model\)"):
        load_dictionaries(str(clt), model)
    bad = tmp_path / "bad.yaml"
    bad.write_text("transcoders:\n  - layer: 0\n    filepath: hf://google/gemma-scope/x.npz\n"
                   "feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n")
    with pytest.raises(ConfigError, match="Hugging Face hub"):
        load_dictionaries(str(bad), model)
    bad.write_text("feature_input_hook: [1\n")
    with pytest.raises(ConfigError, match="cannot read circuit-tracer transcoder set"):
        load_dictionaries(str(bad), model)
    bad.write_text("transcoders:\n  - layer: 0\n    filepath: missing.safetensors\n"
                   "feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_dictionaries(str(bad), model)
