"""Built-in metrics, read at ``batch.answer_pos``; the protocol every metric follows is stated once in
:mod:`circuitdb.tasks.base` (``metric(logits, batch) -> [batch]``, ``needs_clean`` / ``prepare``, ``batch.index``).

- ``"logit_diff"``: mean logit of the answer tokens minus mean logit of the wrong tokens (needs both).
- ``"logprob"``: log-probability that the next token is one of the answers (``logsumexp`` of their log-probs; the
  answer's log-prob for one answer per example).
- ``"kl"``: ``-KL(p_clean || p)`` over the output vocabulary (needs the clean run; no answers).
- ``"l2"``: ``-‖y - y_clean‖²`` and ``"mse"``: ``-mean((y - y_clean)²)`` of the raw outputs (logits, or a
  regression model's outputs) at the answer position (need the clean run; no answers). Their gradient at the clean
  point is 0, so EAP scores every edge 0 under them: use exact patching or EAP-IG.
- ``"module:function"``: a metric importable from your own code (``mypkg.metrics:my_metric``).
- Any callable ``(logits, batch) -> [batch]`` passes through unchanged.
"""

from __future__ import annotations

import importlib
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
    """Mean logit of the answers minus mean logit of the wrong tokens, at the answer position."""
    if batch.wrong is None:
        raise ConfigError(f"metric 'logit_diff' needs wrong tokens, dataset {batch.name!r} has none; use 'logprob'")
    x = _at_answer(logits, batch)
    a = x.gather(1, batch.answers("answer").to(x.device)).mean(1)
    return a - x.gather(1, batch.answers("wrong").to(x.device)).mean(1)


def logprob(logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]:
    """Log-probability of the answer (of any of the answers) at the answer position."""
    x = _at_answer(logits, batch).log_softmax(-1)
    return x.gather(1, batch.answers("answer").to(x.device)).logsumexp(1)


@dataclass(frozen=True)
class CleanReferenceMetric:
    """A metric against the clean run (``kind``: ``kl``, ``l2`` or ``mse``); call :meth:`prepare` first."""

    kind: str = "kl"
    reference: Tensor | None = None  # [batch, vocab], set by prepare
    needs_clean: bool = True

    @property
    def __name__(self) -> str:  # metric names in graph metadata and errors
        return self.kind

    def prepare(self, clean_logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> "CleanReferenceMetric":
        """A prepared copy holding the clean outputs at ``batch.answer_pos`` (detached)."""
        ref = _at_answer(clean_logits, batch).detach()
        return CleanReferenceMetric(self.kind, ref.log_softmax(-1) if self.kind == "kl" else ref, needs_clean=False)

    def __call__(self, logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> Float[Tensor, " batch"]:
        if self.reference is None:
            raise ConfigError(f"metric {self.kind!r} is not prepared: call metric.prepare(clean_logits, batch) first "
                              f"(or build it with kl_metric(clean_logits, batch))")
        y = _at_answer(logits, batch)
        ref = self.reference.to(y.device, y.dtype)
        if ref.shape != y.shape:
            raise ConfigError(f"metric {self.kind!r} was prepared for outputs {tuple(ref.shape)}, called with "
                              f"{tuple(y.shape)} (prepare it on the same batch)")
        if self.kind == "kl":
            lp = y.log_softmax(-1)
            return -(ref.exp() * (ref - lp)).sum(-1)
        sq = (y - ref).pow(2)
        return -(sq.sum(-1) if self.kind == "l2" else sq.mean(-1))


KLMetric = CleanReferenceMetric  # the historical name


def kl_metric(clean_logits: Float[Tensor, "batch seq vocab"], batch: PromptPairs) -> CleanReferenceMetric:
    """A prepared KL metric for this batch."""
    return CleanReferenceMetric("kl").prepare(clean_logits, batch)


METRICS: dict[str, Callable] = {"logit_diff": logit_diff, "logprob": logprob, "kl": CleanReferenceMetric("kl"),
                                "l2": CleanReferenceMetric("l2"), "mse": CleanReferenceMetric("mse")}
_ALIASES = {"logit-diff": "logit_diff", "logitdiff": "logit_diff", "log_prob": "logprob", "log-prob": "logprob",
            "kl_div": "kl", "kl-div": "kl"}


def _import_metric(spec: str) -> Callable:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ConfigError(f"metric {spec!r}: write module:function, e.g. mypkg.metrics:my_metric")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"metric {spec!r}: cannot import module {mod_name!r}: {e}") from e
    fn = getattr(mod, attr, None)
    if fn is None or not callable(fn):
        raise ConfigError(f"metric {spec!r}: module {mod_name!r} has no callable {attr!r}")
    return fn


def get_metric(name_or_callable: MetricLike) -> Callable:
    """A metric by name (``logit_diff``, ``logprob``, ``kl``, ``l2``, ``mse``), ``"module:function"``, or any
    callable unchanged."""
    if callable(name_or_callable):
        return name_or_callable
    if isinstance(name_or_callable, str):
        key = name_or_callable.strip().lower()
        key = _ALIASES.get(key, key)
        if key in METRICS:
            return METRICS[key]
        if ":" in name_or_callable:
            return _import_metric(name_or_callable.strip())
    raise ConfigError(one_of(name_or_callable, list(METRICS), "metric")
                      + " (or module:function, or any callable (logits, batch) -> [batch])")


def default_metric_name(dataset: PromptPairs) -> str:
    """The dataset's ``meta["metric"]``; else logit difference with wrong tokens, log-prob with answers only, and
    KL without answers."""
    if dataset.meta.get("metric"):
        return str(dataset.meta["metric"])
    if dataset.answer is None:
        return "kl"
    return "logit_diff" if dataset.wrong is not None else "logprob"


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
