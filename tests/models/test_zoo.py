"""The model zoo: every name loads offline, random inits are seeded, folders round-trip, bad input fails clearly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from circuitdb.errors import ConfigError
from circuitdb.models import ZOO, detokenize, list_models, load_dir, load_model, tokenize
from circuitdb.models.zoo import ZOO_DIR

TRAINED = [n for n, e in ZOO.items() if e.trained]
RANDOM = [n for n, e in ZOO.items() if not e.trained]


def test_list_models_documents_every_name() -> None:
    models = list_models()
    assert {"toy-induction-2l", "toy-ioi", "random-attn-1l", "random-2l", "random-4l", "random-gqa",
            "random-parallel"} <= set(models)
    assert all(isinstance(d, str) and len(d) > 20 and "\n" not in d for d in models.values())


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_loads_offline_and_runs(name: str) -> None:
    model = load_model(name)
    cfg = model.cfg
    toks = torch.randint(1, cfg.d_vocab - 1, (2, 8))
    with torch.no_grad():
        logits = model(toks)
    assert logits.shape == (2, 8, cfg.d_vocab)
    assert torch.isfinite(logits).all()
    assert not cfg.use_attn_result and not cfg.use_split_qkv_input and not cfg.use_hook_mlp_in


def test_random_models_have_the_documented_shapes() -> None:
    m = load_model("random-attn-1l")
    assert m.cfg.n_layers == 1 and m.cfg.attn_only and m.cfg.normalization_type is None
    m = load_model("random-4l")
    assert (m.cfg.n_layers, m.cfg.d_model, m.cfg.attn_only) == (4, 64, False) and m.cfg.n_ctx >= 64
    m = load_model("random-gqa")
    _, cache = m.run_with_cache(torch.zeros(1, 4, dtype=torch.long))
    assert m.cfg.n_key_value_heads < m.cfg.n_heads
    assert cache["blocks.0.attn.hook_k"].shape[2] == m.cfg.n_key_value_heads
    assert cache["blocks.0.attn.hook_z"].shape[2] == m.cfg.n_heads
    assert load_model("random-parallel").cfg.parallel_attn_mlp


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b = load_model("random-2l"), load_model("random-2l")
    assert torch.equal(torch.get_rng_state(), state)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert load_model("random-2l", dtype=torch.float64).W_E.dtype == torch.float64


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_files_are_small_and_documented(name: str) -> None:
    folder = ZOO_DIR / name
    assert (folder / "model.safetensors").stat().st_size <= 2 * 1024 * 1024
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["use_attn_result"] is False and cfg["use_split_qkv_input"] is False and cfg["use_hook_mlp_in"] is False
    log = json.loads((folder / "train_log.json").read_text())
    assert {"seed", "steps", "scores", "retrain", "torch"} <= set(log)
    assert log["retrain"] == f"python -m circuitdb.models.train {name}"


def test_local_folder_round_trip(tmp_path) -> None:
    src = load_model("random-2l")
    cfg = {k: v for k, v in src.cfg.to_dict().items()
           if k in {"n_layers", "n_heads", "d_model", "d_head", "d_mlp", "n_ctx", "d_vocab", "act_fn",
                    "normalization_type", "attn_only"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = load_model(tmp_path)
    toks = torch.randint(0, cfg["d_vocab"], (2, 6))
    with torch.no_grad():
        assert torch.allclose(loaded(toks), src(toks), atol=1e-6)
    assert loaded.tokenizer is None
    with pytest.raises(ConfigError, match="d_vocab"):
        (tmp_path / "vocab.json").write_text(json.dumps({"words": ["<bos>", "a", "<unk>"]}))
        load_dir(tmp_path)


def test_bad_names_and_folders_raise_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="toy-induction-2l"):
        load_model("no-such-model-xyz")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="lacks the HookedTransformerConfig field.*d_model"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(n_layers=1, d_model=8, n_ctx=8, d_head=4, d_vocab=10,
                                                          act_fn="gelu", attn_only=True)))
    with pytest.raises(ConfigError, match="has no weights"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_model(tmp_path)
    with pytest.raises(ConfigError, match="dtype"):
        load_model("random-2l", dtype="float8")


@pytest.mark.parametrize("name,text", [("toy-ioi", "When Mary and John went to the store , John gave a drink to"),
                                       ("toy-induction-2l", "A b c Q 0 A b")])
def test_tokenize_detokenize_round_trip(name: str, text: str) -> None:
    model = load_model(name)
    ids = tokenize(model, text)
    assert ids[0].item() == 0 and ids.ndim == 1 and len(ids) == len(text.split()) + 1
    words = detokenize(model, ids)
    assert words[0] == "<bos>" and words[1:] == text.split()
    assert model.to_string(ids[1:]) == text  # the HF tokenizer is attached to the model
    assert torch.equal(model.to_tokens(text)[0], ids)
    with pytest.raises(ConfigError, match="Zebedee"):
        tokenize(model, "Mary Zebedee")
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        detokenize(model, [0, model.cfg.d_vocab])


def test_vocabless_random_model_accepts_ids_only() -> None:
    model = load_model("random-attn-1l")
    with pytest.raises(ConfigError, match="no tokenizer"):
        tokenize(model, "hello")
    assert detokenize(model, torch.tensor([0, 7])) == ["#0", "#7"]


def test_random_init_weights_do_not_depend_on_dtype() -> None:
    import torch

    a = load_model("random-2l")
    b = load_model("random-2l", dtype="float64")
    sa = dict(a.named_parameters())
    for k, v in b.named_parameters():
        assert v.dtype == torch.float64, k
        assert torch.equal(sa[k].double(), v), k
