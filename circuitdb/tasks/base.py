"""Prompt-pair datasets and the metric convention shared by every attribution method.

Conventions (stated once):
- A dataset is ``n`` clean/corrupted prompt pairs of one common length ``seq`` (token ids, BOS included where the
  model uses one). Corrupted prompts have the same length as their clean twin.
- ``answer[i]`` is the correct next token at position ``answer_pos[i]`` of clean prompt ``i``; ``wrong[i]`` (optional)
  the distractor for logit-difference metrics (IOI: the subject name; induction: the corrupted continuation).
- A metric maps logits ``[batch, seq, vocab]`` plus the batch to one value per example ``[batch]``; methods take the
  mean. Higher means "the model does the task".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError


@dataclass(frozen=True)
class PromptPairs:
    """``n`` clean/corrupted prompt pairs of one length, with answer tokens."""

    clean: Int[Tensor, "n seq"]
    corrupted: Int[Tensor, "n seq"]
    answer: Int[Tensor, " n"]
    wrong: Int[Tensor, " n"] | None = None
    answer_pos: Int[Tensor, " n"] | None = None  # default: last position
    name: str = "custom"
    texts: tuple[str, ...] | None = None  # clean prompts as text, where known
    meta: dict = field(default_factory=dict)  # task parameters (seed, template, ...), JSON-serialisable

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape[0] == 0 or self.clean.shape[1] == 0:
            raise ConfigError(f"dataset {self.name!r} is empty or not [n, seq]: clean has shape {tuple(self.clean.shape)}")
        if self.corrupted.shape != self.clean.shape:
            raise ConfigError(
                f"dataset {self.name!r}: clean {tuple(self.clean.shape)} and corrupted "
                f"{tuple(self.corrupted.shape)} prompts must have the same shape"
            )
        n = self.clean.shape[0]
        for nm in ("answer", "wrong", "answer_pos"):
            t = getattr(self, nm)
            if t is not None and tuple(t.shape) != (n,):
                raise ConfigError(f"dataset {self.name!r}: {nm} has shape {tuple(t.shape)}, expected ({n},)")
        if self.answer_pos is None:
            object.__setattr__(self, "answer_pos", torch.full((n,), self.clean.shape[1] - 1, dtype=torch.long))

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
            self.clean[idx], self.corrupted[idx], self.answer[idx], pick(self.wrong), pick(self.answer_pos),
            self.name, texts, self.meta,
        )

    def check_model(self, d_vocab: int, n_ctx: int) -> None:
        """Raise ConfigError if the dataset does not fit a model's vocabulary or context."""
        if self.seq_len > n_ctx:
            raise ConfigError(f"dataset {self.name!r}: prompts have {self.seq_len} tokens, the model's n_ctx is {n_ctx}")
        for nm in ("clean", "corrupted", "answer", "wrong"):
            t = getattr(self, nm)
            if t is None:
                continue
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= d_vocab):
                bad = int(t.max()) if int(t.max()) >= d_vocab else int(t.min())
                raise ConfigError(f"dataset {self.name!r}: {nm} holds token id {bad}, outside the vocabulary [0, {d_vocab})")


class Metric(Protocol):
    """``metric(logits, batch) -> per-example values [batch]``; higher = the model does the task."""

    def __call__(self, logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]: ...


MetricLike = str | Callable[[Tensor, PromptPairs], Tensor]
