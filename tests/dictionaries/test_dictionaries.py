"""The dictionary protocol: formats round-trip, SAELens objects adapt exactly, mismatches are named, training works."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "attribution"))
from feature_fixtures import prompt, tiny_model  # noqa: E402

from circuitdb.dictionaries import (  # noqa: E402
    Dictionary, fraction_variance_explained, load_dictionaries, load_dictionary_file, save_dictionary,
)
from circuitdb.dictionaries.train import TrainConfig, random_dictionaries, train_dictionaries  # noqa: E402
from circuitdb.errors import AttributionError, ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model(dtype=torch.float32)


def test_safetensors_round_trip(tmp_path, model):
    d = random_dictionaries(model, "transcoder", width=24, seed=0)[1]
    save_dictionary(d, tmp_path / "tc1", stats={"fve": 0.9})
    e = load_dictionary_file(tmp_path / "tc1.json")
    x = torch.randn(5, 16)
    assert e.id == d.id and e.hook_in == d.hook_in and e.kind == "transcoder"
    assert torch.equal(e.encode(x), d.encode(x)) and torch.equal(e(x), d(x))
    got = load_dictionaries(str(tmp_path), model)
    assert [g.id for g in got] == [d.id]


def test_saelens_objects_and_folders(tmp_path, model):
    from sae_lens import SAE, StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.transcoder import Transcoder, TranscoderConfig

    cfg = StandardSAEConfig(d_in=16, d_sae=32, apply_b_dec_to_input=True)
    cfg.metadata = SAEMetadata(hook_name="blocks.1.hook_resid_pre")
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
    tcfg = TranscoderConfig(d_in=16, d_sae=32, d_out=16, apply_b_dec_to_input=False)
    tcfg.metadata = SAEMetadata(hook_name="blocks.2.ln2.hook_normalized", hook_name_out="blocks.2.hook_mlp_out")
    tc = Transcoder(tcfg)
    sae.save_model(tmp_path / "sae1")
    tc.save_model(tmp_path / "tc2")
    dicts = load_dictionaries(f"{tmp_path / 'sae1'},{tmp_path / 'tc2'}", model)
    assert [d.kind for d in dicts] == ["sae", "transcoder"]
    x = torch.randn(7, 16)
    with torch.no_grad():
        assert torch.allclose(dicts[0].encode(x), sae.encode(x), atol=1e-6)
        assert torch.allclose(dicts[0](x), sae(x), atol=1e-6)
        assert torch.allclose(dicts[1](x), tc(x), atol=1e-6)
    assert {d.id for d in load_dictionaries(str(tmp_path), model)} == {"sae1", "tc2"}
    assert isinstance(SAE.load_from_disk(str(tmp_path / "tc2")), Transcoder)


def test_saelens_from_pretrained_online():
    from circuitdb.models import hub_reachable

    if not hub_reachable():
        pytest.skip("Hugging Face hub not reachable (offline)")
    from circuitdb.dictionaries.saelens import from_pretrained

    d = from_pretrained("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
    assert d.kind == "sae" and d.d_in == 768 and d.hook_in == "blocks.8.hook_resid_pre"


def _one(model, **changes):  # noqa: ANN001, ANN003
    import dataclasses

    return dataclasses.replace(random_dictionaries(model, "transcoder", width=8)[0], **changes)


@pytest.mark.parametrize("changes, words", [
    ({"W_enc": torch.zeros(12, 8)}, ["d_in 12", "d_model 16"]),
    ({"W_dec": torch.zeros(8, 20), "b_dec": torch.zeros(20)}, ["d_out 20", "d_model 16"]),
    ({"hook_in": "blocks.7.ln2.hook_normalized", "hook_out": "blocks.7.hook_mlp_out"}, ["layer 7", "0..2"]),
    ({"hook_in": "blocks.0.attn.hook_z"}, ["not supported", "ln2.hook_normalized"]),
    ({"hook_in": "blocks.0.hook_nonsense"}, ["not a hook of model"]),
])
def test_mismatch_errors_name_the_problem(model, changes, words):
    with pytest.raises(ConfigError) as e:
        load_dictionaries(_one(model, **changes), model)
    for w in words:
        assert w in str(e.value)


def test_other_bad_specs(model, tmp_path):
    with pytest.raises(ConfigError, match="repeated"):
        load_dictionaries([_one(model), _one(model)], model)
    with pytest.raises(ConfigError, match="attention-only"):
        load_dictionaries(_one(model), tiny_model(attn_only=True))
    with pytest.raises(ConfigError, match="no dictionaries"):
        load_dictionaries(str(tmp_path), model)
    with pytest.raises(ConfigError, match="ships no dictionaries"):
        load_dictionaries(None, model)
    with pytest.raises(ConfigError, match="RELEASE/ID"):
        load_dictionaries("saelens:no-slash", model)
    with pytest.raises(ConfigError, match="kind"):
        Dictionary("x", "codec", "blocks.0.hook_resid_pre", "blocks.0.hook_resid_pre", torch.zeros(2, 3),
                   torch.zeros(3), torch.zeros(3, 2), torch.zeros(2))


def test_prompt_errors(model):
    from circuitdb.attribution.features import attribute_features

    dicts = random_dictionaries(model, "transcoder", width=8)
    with pytest.raises(ConfigError, match="empty prompt"):
        attribute_features(model, torch.zeros(0, dtype=torch.long), dicts, progress=False)
    with pytest.raises(ConfigError, match="n_ctx 12"):
        attribute_features(model, torch.zeros(13, dtype=torch.long), dicts, progress=False)
    with pytest.raises(ConfigError, match="vocabulary"):
        attribute_features(model, torch.tensor([0, 25]), dicts, progress=False)
    broken = tiny_model(dtype=torch.float32)
    with torch.no_grad():
        broken.blocks[1].attn.W_V[0, 0, 0] = float("nan")
    with pytest.raises(AttributionError, match="NaN"):
        attribute_features(broken, prompt(), dicts, progress=False)


def test_training_reaches_documented_fve(model):
    toks = torch.randint(0, 20, (200, 12), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(width=32, steps=300, batch=256, l1=1e-3)
    (d, stats), = train_dictionaries(model, toks, cfg, layers=[1])
    assert stats["fve"] >= 0.8 and 0 < stats["l0"] < 32
    assert d.hook_in == "blocks.1.ln2.hook_normalized" and d.hook_out == "blocks.1.hook_mlp_out"
    x = torch.randn(10, 16)
    assert fraction_variance_explained(x, x) == 1.0
