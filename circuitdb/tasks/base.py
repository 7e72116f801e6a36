"""Prompt-pair datasets and the metric convention shared by every attribution method.

Conventions (stated once):
- A dataset is ``n`` clean/corrupted prompt pairs of one common length ``seq`` (token ids, BOS included where the
  model uses one). Corrupted prompts have the same length as their clean twin.
- ``answer[i]`` (optional: only metrics that read it need it) is the correct next token at position ``answer_pos[i]``
  of clean prompt ``i``, or a row of several acceptable tokens (``answer`` of shape ``[n, k]``); ``wrong[i]``
  (optional, ``[n]`` or ``[n, k]``) the distractor(s) for logit-difference metrics (IOI: the subject name; induction:
  the corrupted continuation). Answers are ids of the model's *output* vocabulary (``d_vocab_out``), prompts of its
  input vocabulary (``d_vocab``).
- ``index[i]`` is example ``i``'s position in the dataset it was drawn from; sub-datasets (:meth:`PromptPairs.batch`)
  keep it, so a metric holding per-example data reads ``data[batch.index]``.

The metric protocol (the one place it is written down; :mod:`circuitdb.tasks.metrics` implements the built-ins):

- A metric is a callable ``metric(logits, batch) -> Float[Tensor, "batch"]``: ``logits`` are the model's outputs
  ``[batch, seq, d_vocab_out]`` on ``batch.clean`` (under whatever intervention the method applies), ``batch`` is the
  :class:`PromptPairs` of exactly those examples, in the same order, with ``batch.index`` naming them. Every method
  (EAP, EAP-IG, exact patching, faithfulness) calls it on the real batch: patching many configurations at once never
  repeats or reshapes the batch a metric sees. One value per example; methods take the mean; higher = the model does
  the task.
- A metric that compares with the clean run sets ``needs_clean = True`` and has ``prepare(clean_logits, batch)``
  returning a ready metric (``needs_clean`` False). Engines call ``prepare`` once per batch with the clean logits of
  that batch, then call the prepared metric on intervened logits of the same batch.
- By name: ``logit_diff``, ``logprob``, ``kl``, ``l2`` / ``mse`` (:func:`circuitdb.tasks.metrics.get_metric`), or
  ``"module:function"`` for a metric in an importable module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer


@dataclass(frozen=True)
class PromptPairs:
    """``n`` clean/corrupted prompt pairs of one length, with answer tokens."""

    clean: Int[Tensor, "n seq"]
    corrupted: Int[Tensor, "n seq"]
    answer: Int[Tensor, "n *k"] | None = None
    wrong: Int[Tensor, "n *k"] | None = None
    answer_pos: Int[Tensor, " n"] | None = None  # default: last position
    name: str = "custom"
    texts: tuple[str, ...] | None = None  # clean prompts as text, where known
    meta: dict = field(default_factory=dict)  # task parameters (seed, template, ...), JSON-serialisable
    index: Int[Tensor, " n"] | None = None  # position of each example in its source dataset; default 0..n-1

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape[0] == 0 or self.clean.shape[1] == 0:
            raise ConfigError(f"dataset {self.name!r} is empty or not [n, seq]: clean has shape {tuple(self.clean.shape)}")
        if self.corrupted.shape != self.clean.shape:
            raise ConfigError(
                f"dataset {self.name!r}: clean {tuple(self.clean.shape)} and corrupted "
                f"{tuple(self.corrupted.shape)} prompts must have the same shape"
            )
        n = self.clean.shape[0]
        for nm in ("clean", "corrupted", "answer", "wrong", "answer_pos", "index"):
            t = getattr(self, nm)
            if t is not None and (not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex()
                                  or t.dtype == torch.bool):
                what = f"dtype {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
                raise ConfigError(f"dataset {self.name!r}: {nm} must be an integer tensor, got {what}")
        for nm in ("answer_pos", "index"):
            t = getattr(self, nm)
            if t is not None and tuple(t.shape) != (n,):
                raise ConfigError(f"dataset {self.name!r}: {nm} has shape {tuple(t.shape)}, expected ({n},)")
        for nm in ("answer", "wrong"):
            t = getattr(self, nm)
            if t is not None and (t.ndim not in (1, 2) or t.shape[0] != n or (t.ndim == 2 and t.shape[1] == 0)):
                raise ConfigError(f"dataset {self.name!r}: {nm} has shape {tuple(t.shape)}, expected ({n},) or "
                                  f"({n}, k) for k answers per example")
        if self.answer_pos is None:
            object.__setattr__(self, "answer_pos", torch.full((n,), self.clean.shape[1] - 1, dtype=torch.long))
        if self.index is None:
            object.__setattr__(self, "index", torch.arange(n))

    def __len__(self) -> int:
        return self.clean.shape[0]

    @property
    def seq_len(self) -> int:
        return self.clean.shape[1]

    def batch(self, idx: slice | Tensor) -> "PromptPairs":
        """A sub-dataset (slice or index tensor)."""
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        texts = None
        if self.texts is not None:
            ids = range(len(self))[idx] if isinstance(idx, slice) else idx.tolist()
            texts = tuple(self.texts[i] for i in ids)
        return PromptPairs(
            self.clean[idx], self.corrupted[idx], pick(self.answer), pick(self.wrong), pick(self.answer_pos),
            self.name, texts, self.meta, pick(self.index),
        )

    def answers(self, which: str = "answer") -> Int[Tensor, "n k"]:
        """``answer`` (or ``wrong``) as ``[n, k]``; ConfigError when the dataset has none."""
        t = getattr(self, which)
        if t is None:
            raise ConfigError(f"dataset {self.name!r} has no {which} tokens; this metric needs them (metrics that "
                              "need none: kl, l2, mse)")
        return t[:, None] if t.ndim == 1 else t

    def check_model(self, d_vocab: int, n_ctx: int, d_vocab_out: int | None = None) -> None:
        """Raise ConfigError if the dataset does not fit a model: prompts within ``n_ctx`` and the input vocabulary
        ``d_vocab``, answers within the output vocabulary ``d_vocab_out`` (default ``d_vocab``)."""
        if self.seq_len > n_ctx:
            raise ConfigError(f"dataset {self.name!r}: prompts have {self.seq_len} tokens, the model's n_ctx is "
                              f"{n_ctx} (shorten them, or truncate explicitly: --truncate on the CLI, "
                              "truncate=True in jsonl_task)")
        d_out = d_vocab if d_vocab_out is None or d_vocab_out <= 0 else d_vocab_out
        for nm, hi, what in (("clean", d_vocab, "input vocabulary"), ("corrupted", d_vocab, "input vocabulary"),
                             ("answer", d_out, "output vocabulary"), ("wrong", d_out, "output vocabulary")):
            t = getattr(self, nm)
            if t is None or not t.numel():
                continue
            if int(t.min()) < 0 or int(t.max()) >= hi:
                bad = int(t.max()) if int(t.max()) >= hi else int(t.min())
                raise ConfigError(f"dataset {self.name!r}: {nm} holds token id {bad}, outside the vocabulary "
                                  f"[0, {hi}) (the model's {what})")

    def check_fits(self, model: "HookedTransformer") -> None:
        """:meth:`check_model` with ``model``'s ``d_vocab``, ``n_ctx`` and ``d_vocab_out``."""
        cfg = model.cfg
        self.check_model(int(cfg.d_vocab), int(cfg.n_ctx), int(getattr(cfg, "d_vocab_out", -1) or -1))


class Metric(Protocol):
    """``metric(logits, batch) -> per-example values [batch]``; higher = the model does the task."""

    def __call__(self, logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]: ...


MetricLike = str | Callable[[Tensor, PromptPairs], Tensor]
