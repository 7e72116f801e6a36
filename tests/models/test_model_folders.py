"""A user's own model folder: TransformerLens 2.x / 3.x style configs, weights as safetensors or torch files, a
Hugging Face tokenizer, circuitdb's word list or none, and hook flags that only slow the model down switched off."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from circuitdb.errors import ConfigError
from circuitdb.models import detokenize, load_model, tokenize

ARCH = dict(n_layers=2, d_model=16, n_ctx=12, d_head=4, n_heads=4, d_mlp=32, d_vocab=20, act_fn="gelu",
            normalization_type="LN")


def _user_model(**flags):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    return HookedTransformer(HookedTransformerConfig(**ARCH, **flags, seed=0))


def _save(model, folder, style: str) -> None:
    folder.mkdir(exist_ok=True)
    d = model.cfg.to_dict()
    if style == "tl2":  # what `json.dumps(cfg.to_dict(), default=str)` writes: dtype/device as strings, extras
        d = {**d, "dtype": "torch.float32", "device": "cuda:0", "n_params": 12345, "some_tl2_only_field": True}
        text = json.dumps(d, default=str)
    else:  # a hand-written, minimal config (architecture fields only)
        text = json.dumps({k: d[k] for k in ARCH} | {k: d[k] for k in ("use_attn_result",) if k in d})
    (folder / "config.json").write_text(text)
    torch.save(model.state_dict(), folder / "model.pt")


@pytest.mark.parametrize("style", ["tl2", "minimal"])
def test_user_folder_loads_with_same_outputs_and_slow_flags_off(tmp_path, style, caplog) -> None:
    src = _user_model(use_attn_result=True, use_split_qkv_input=True)
    _save(src, tmp_path / "m", style)
    with caplog.at_level(logging.INFO):
        m = load_model(tmp_path / "m")
    assert not m.cfg.use_attn_result and not m.cfg.use_split_qkv_input
    assert m.tokenizer is None and m.cfg.device in ("cpu", torch.device("cpu"))
    toks = torch.randint(0, ARCH["d_vocab"], (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(m(toks), src(toks), atol=1e-5, rtol=1e-5)
    if style == "tl2":
        assert "some_tl2_only_field" in caplog.text  # dropped, but named
    kept = load_model(tmp_path / "m", keep_hook_flags=True)
    assert kept.cfg.use_attn_result == src.cfg.use_attn_result


def test_token_ids_only_without_a_tokenizer(tmp_path) -> None:
    _save(_user_model(), tmp_path / "m", "minimal")
    m = load_model(tmp_path / "m")
    assert detokenize(m, [1, 2]) == ["#1", "#2"]
    with pytest.raises(ConfigError, match="no tokenizer"):
        tokenize(m, "hello")


def test_circuitdb_word_list(tmp_path) -> None:
    from circuitdb.models.vocab import save_vocab

    _save(_user_model(), tmp_path / "m", "minimal")
    words = ["<bos>"] + [f"w{i}" for i in range(18)] + ["<unk>"]
    save_vocab(words, tmp_path / "m" / "vocab.json")
    m = load_model(tmp_path / "m")
    assert tokenize(m, "w3 w4").tolist() == [0, 4, 5]


def test_hugging_face_tokenizer_folder(tmp_path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    _save(_user_model(), tmp_path / "m", "minimal")
    vocab = {"<s>": 0, **{f"t{i}": i + 1 for i in range(15)}, "<unk>": 16}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", unk_token="<unk>").save_pretrained(
        str(tmp_path / "m" / "tokenizer"))
    m = load_model(tmp_path / "m")
    assert m.tokenizer is not None
    assert tokenize(m, "t2 t5", prepend_bos=False).tolist() == [3, 6]


def test_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path) -> None:
    from circuitdb.models.vocab import save_vocab

    _save(_user_model(), tmp_path / "m", "minimal")
    save_vocab(["<bos>"] + [f"w{i}" for i in range(30)] + ["<unk>"], tmp_path / "m" / "vocab.json")
    with pytest.raises(ConfigError, match="d_vocab is 20"):
        load_model(tmp_path / "m")
