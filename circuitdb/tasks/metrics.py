"""Metrics: ``metric(logits, batch) -> Float[Tensor, "batch"]``, read at ``batch.answer_pos`` (higher = task done).

- ``"logit_diff"``: ``logits[answer] - logits[wrong]`` (needs ``batch.wrong``).
- ``"logprob"``: ``log_softmax(logits)[answer]``.
- ``"kl"``: ``-KL(p_clean || p_patched)`` over the vocabulary at the answer position. It needs the clean output:
  ``get_metric("kl")`` returns an *unprepared* :class:`KLMetric`; the attribution engine (or the user) calls
  ``metric.prepare(clean_logits, batch)`` once per batch with the clean run's logits and uses the returned, prepared
  metric (``kl_metric(clean_logits, batch)`` does both at once). Any metric with ``needs_clean = True`` follows this
  protocol. On the clean logits themselves the prepared metric is 0, its maximum.
- Any callable ``(logits, batch) -> [batch]`` passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.errors import ConfigError, one_of
from circuitdb.tasks.base import MetricLike, PromptPairs


def _at_answer(logits: Tensor, batch: PromptPairs) -> Float[Tensor, "batch vocab"]:
    if logits.ndim == 2:  # already [batch, vocab]
        return logits
    if logits.ndim != 3 or logits.shape[0] != len(batch):
        raise ConfigError(f"metric expects logits [batch={len(batch)}, seq, vocab]; got {tuple(logits.shape)}")
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, batch.answer_pos.to(logits.device)]


def logit_diff(logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]:
    """``logits[answer] - logits[wrong]`` at the answer position."""
    if batch.wrong is None:
        raise ConfigError(f"metric 'logit_diff' needs wrong tokens, dataset {batch.name!r} has none; use 'logprob'")
    x = _at_answer(logits, batch)
    a = x.gather(1, batch.answer.to(x.device)[:, None])
    w = x.gather(1, batch.wrong.to(x.device)[:, None])
    return (a - w).squeeze(1)


def logprob(logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]:
    """Log-probability of the answer token at the answer position."""
    x = _at_answer(logits, batch).log_softmax(-1)
    return x.gather(1, batch.answer.to(x.device)[:, None]).squeeze(1)


@dataclass(frozen=True)
class KLMetric:
    """``-KL(p_clean || p)`` at the answer position; call :meth:`prepare` with the clean logits first."""

    clean_logprobs: Tensor | None = None  # [batch, vocab], set by prepare
    needs_clean: bool = True

    def prepare(self, clean_logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> "KLMetric":
        """A prepared copy holding the clean log-probabilities at ``batch.answer_pos`` (detached)."""
        return KLMetric(_at_answer(clean_logits, batch).detach().log_softmax(-1), needs_clean=False)

    def __call__(self, logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]:
        if self.clean_logprobs is None:
            raise ConfigError("metric 'kl' is not prepared: call metric.prepare(clean_logits, batch) first "
                              "(or build it with kl_metric(clean_logits, batch))")
        lp = _at_answer(logits, batch).log_softmax(-1)
        ref = self.clean_logprobs.to(lp.device, lp.dtype)
        if ref.shape != lp.shape:
            raise ConfigError(f"metric 'kl' was prepared for logits {tuple(ref.shape)}, called with {tuple(lp.shape)}")
        return -(ref.exp() * (ref - lp)).sum(-1)


def kl_metric(clean_logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> KLMetric:
    """A prepared KL metric for this batch."""
    return KLMetric().prepare(clean_logits, batch)


METRICS: dict[str, Callable] = {"logit_diff": logit_diff, "logprob": logprob, "kl": KLMetric()}
_ALIASES = {"logit-diff": "logit_diff", "logitdiff": "logit_diff", "log_prob": "logprob", "log-prob": "logprob",
            "kl_div": "kl", "kl-div": "kl"}


def get_metric(name_or_callable: MetricLike) -> Callable:
    """A metric by name (``logit_diff``, ``logprob``, ``kl``) or any callable unchanged."""
    if callable(name_or_callable):
        return name_or_callable
    if isinstance(name_or_callable, str):
        key = name_or_callable.strip().lower()
        key = _ALIASES.get(key, key)
        if key in METRICS:
            return METRICS[key]
    raise ConfigError(one_of(name_or_callable, list(METRICS), "metric") + " (or any callable (logits, batch) -> [batch])")


def default_metric_name(dataset: PromptPairs) -> str:
    """The dataset's ``meta["metric"]``, else logit difference when it has wrong tokens, else log-prob."""
    return str(dataset.meta.get("metric") or ("logit_diff" if dataset.wrong is not None else "logprob"))


def resolve_metric(metric: MetricLike | None, dataset: PromptPairs) -> Callable:
    """A metric callable from a name or callable; ``None`` → :func:`default_metric_name` of the dataset."""
    return get_metric(default_metric_name(dataset) if metric is None else metric)


def metric_name(metric: MetricLike | None, dataset: PromptPairs) -> str:
    """The name recorded in a graph's metadata for ``metric``."""
    if metric is None:
        return default_metric_name(dataset)
    if isinstance(metric, str):
        return metric
    return str(getattr(metric, "__name__", type(metric).__name__))
