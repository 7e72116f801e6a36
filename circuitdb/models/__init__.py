"""Model loading and the toy model zoo.

``load_model(name_or_dir)`` returns a TransformerLens ``HookedTransformer`` (see :mod:`circuitdb.models.zoo` for
how names resolve); ``list_models()`` names the zoo. ``tokenize`` / ``detokenize`` work for models with a tokenizer
(HF tokenizers of pretrained models, the word-level tokenizers of toy zoo models); vocabulary-less random models
accept token ids only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from circuitdb.errors import ConfigError
from circuitdb.models.folder import load_dir
from circuitdb.models.zoo import ZOO, hub_reachable, list_models, load_model

if TYPE_CHECKING:  # pragma: no cover
    from jaxtyping import Int
    from torch import Tensor
    from transformer_lens import HookedTransformer

__all__ = ["ZOO", "load_model", "load_dir", "list_models", "tokenize", "detokenize", "hub_reachable"]


def _name(model: "HookedTransformer") -> str:
    return str(getattr(model.cfg, "model_name", "model"))


def tokenize(model: "HookedTransformer", text: str, *, prepend_bos: bool = True) -> "Int[Tensor, ' seq']":
    """Token ids of ``text`` (1-D, on the CPU), with BOS first when ``prepend_bos``.

    Raises ConfigError for models without a tokenizer, and for words outside a toy vocabulary (which the word-level
    tokenizer would map to ``<unk>``).
    """
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ConfigError(f"model {_name(model)!r} has no tokenizer (a random-init model): pass token ids, not text")
    if not isinstance(text, str):
        raise ConfigError(f"tokenize expects a string; got {type(text).__name__}")
    ids = model.to_tokens(text, prepend_bos=prepend_bos)[0].cpu()
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None and getattr(tok, "circuitdb_toy_vocab", False) and bool((ids == unk).any()):
        known = set(tok.get_vocab())
        bad = sorted({w for w in text.split() if w not in known})
        raise ConfigError(f"words {bad} are not in the vocabulary of {_name(model)!r}")
    return ids


def detokenize(model: "HookedTransformer", ids: "Sequence[int] | Int[Tensor, ' seq']") -> list[str]:
    """One string per token id: the decoded token (``" Mary"`` for GPT-2, ``"Mary"`` for toy vocabularies).

    For models without a tokenizer the labels are ``"#<id>"``. Ids outside ``[0, d_vocab)`` raise ConfigError.
    """
    vals = [int(i) for i in (ids.flatten().tolist() if hasattr(ids, "flatten") else ids)]
    d_vocab = model.cfg.d_vocab
    bad = [i for i in vals if i < 0 or i >= d_vocab]
    if bad:
        raise ConfigError(f"token ids {bad[:5]} are outside the vocabulary [0, {d_vocab}) of {_name(model)!r}")
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return [f"#{i}" for i in vals]
    return [tok.decode([i]) for i in vals]
