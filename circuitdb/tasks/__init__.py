"""Prompt-pair datasets (induction, IOI, greater-than, user JSONL) and metrics.

``load_task(name, model=None, *, n=None, seed=0, **kw) -> PromptPairs``. ``name`` is one of :data:`TASKS`, or a path
to a ``.jsonl`` file (same as ``load_task("jsonl", model, path=...)``). Keyword arguments go to the task's builder:
``induction_task``, ``ioi_task``, ``greater_than_task``, ``jsonl_task``. Every task records its parameters in
``dataset.meta`` (``meta["metric"]`` is the task's default metric).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from circuitdb.errors import ConfigError, one_of
from circuitdb.tasks.base import Metric, MetricLike, PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

TASKS: list[str] = ["induction", "ioi", "greater-than", "jsonl"]
_ALIASES = {"greater_than": "greater-than", "greaterthan": "greater-than"}

__all__ = ["TASKS", "load_task", "PromptPairs", "Metric", "MetricLike", "get_metric"]


def load_task(name: str, model: "HookedTransformer | None" = None, *, n: int | None = None, seed: int = 0,
              **kw: Any) -> PromptPairs:
    """Build the dataset ``name`` for ``model`` (see module doc). ``n``: number of pairs (default 64; for JSONL the
    first ``n`` lines, default all)."""
    key = _ALIASES.get(str(name), str(name))
    if key != "jsonl" and not str(name).endswith(".jsonl"):
        n = 64 if n is None else n
    if key not in TASKS and str(name).endswith(".jsonl"):
        kw["path"] = name
        key = "jsonl"
    if key == "induction":
        from circuitdb.tasks.induction import induction_task as build
    elif key == "ioi":
        from circuitdb.tasks.ioi import ioi_task as build
    elif key == "greater-than":
        from circuitdb.tasks.greater_than import greater_than_task as build
    elif key == "jsonl":
        from circuitdb.tasks.jsonl import jsonl_task as build

        if "path" not in kw:
            raise ConfigError("task 'jsonl' needs path= (a .jsonl file of prompt pairs)")
    else:
        raise ConfigError(one_of(name, TASKS, "task") + " (or a path ending in .jsonl)")
    params = [p for p in inspect.signature(build).parameters if p not in ("model", "n", "seed")]
    bad = sorted(set(kw) - set(params))
    if bad:
        raise ConfigError(f"task {key!r} got unknown options {bad}; valid options: {', '.join(params)}")
    if key == "jsonl":
        return build(model, n=n, **kw)
    return build(model, n=n, seed=seed, **kw)


def get_metric(name_or_callable: MetricLike):  # noqa: ANN201
    """See :func:`circuitdb.tasks.metrics.get_metric`."""
    from circuitdb.tasks.metrics import get_metric as _get

    return _get(name_or_callable)
