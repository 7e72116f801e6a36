"""Evaluation splits: the prompts a circuit was found on (``in_sample``) and prompts it was not (``held_out``).

A component graph built by :func:`circuitdb.attribute` from a named task records the task, its options, ``n`` and
``seed`` in ``meta["params"]["task"]``; that is enough to rebuild its attribution prompts exactly. ``held_out``
draws prompts of the same task from another seed and drops every pair whose clean or corrupted prompt occurs among
the attribution prompts, so no evaluation prompt was seen by the attribution (MIB evaluates on a held-out split the
same way). Circuits of graphs without a task record (tensors, custom datasets) take a dataset from the caller; the
split is then only a label, checked against the attribution prompts where those can be rebuilt.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import torch

from circuitdb.errors import ConfigError, one_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

SPLITS = ("in_sample", "held_out")
HELD_OUT_SEED_OFFSET = 1_000_003
"""Held-out prompts come from seed ``seed + HELD_OUT_SEED_OFFSET`` (then overlaps are dropped)."""


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(one_of(split, SPLITS, "evaluation split"))
    return split


def attribution_task(meta: dict) -> dict | None:
    """``{"task", "n", "seed", "options"}`` of the named task a graph was attributed on, or None."""
    task = ((meta or {}).get("params") or {}).get("task") or {}
    if not isinstance(task, dict) or "task" not in task or "seed" not in task:
        return None
    if task["task"] not in _BUILDERS:  # user datasets (JSONL, tensors) cannot be redrawn
        return None
    n = int(task.get("n") or (meta.get("params") or {}).get("n") or 0)
    opts = {k: v for k, v in task.items() if k not in ("task", "n", "seed", "metric")}
    return {"task": task["task"], "n": n, "seed": int(task["seed"]), "options": opts}


def _load(model: "HookedTransformer", spec: dict, n: int, seed: int) -> "PromptPairs":
    from circuitdb.tasks import load_task

    builder_kw = _builder_params(spec["task"])
    opts = {k: v for k, v in spec["options"].items() if k in builder_kw}
    return load_task(spec["task"], model, n=n, seed=seed, **opts)


_BUILDERS = {"induction": ("circuitdb.tasks.induction", "induction_task"), "ioi": ("circuitdb.tasks.ioi", "ioi_task"),
             "greater-than": ("circuitdb.tasks.greater_than", "greater_than_task")}


def _builder_params(task: str) -> set[str]:
    import importlib

    mod, fn = _BUILDERS[task]
    return set(inspect.signature(getattr(importlib.import_module(mod), fn)).parameters)


def _rows(t: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(r) for r in t.tolist()}


def in_sample(model: "HookedTransformer", meta: dict) -> "PromptPairs":
    """The attribution prompts of a graph (rebuilt from its task record); ConfigError if it has none."""
    spec = attribution_task(meta)
    if spec is None:
        raise ConfigError(f"graph {meta.get('id')!r} records no named task (params.task), so its attribution "
                          "prompts cannot be rebuilt; pass the dataset it was computed on")
    return _load(model, spec, spec["n"], spec["seed"])


def held_out(model: "HookedTransformer", meta: dict, n: int | None = None, task: str | None = None,
             seed: int | None = None) -> "PromptPairs":
    """``n`` prompt pairs (default: as many as the attribution used) of the graph's task that share no clean or
    corrupted prompt with its attribution prompts. ``task`` (optional) must name the graph's task."""
    spec = attribution_task(meta)
    if spec is None:
        raise ConfigError(f"graph {meta.get('id')!r} records no named task; build held-out prompts yourself and "
                          "pass them with split='held_out'")
    if task is not None and task != spec["task"]:
        raise ConfigError(f"split 'held_out' of a graph attributed on task {spec['task']!r} needs that task, "
                          f"got {task!r}")
    n = n or spec["n"]
    seen = overlap_rows(in_sample(model, meta))
    s = spec["seed"] + HELD_OUT_SEED_OFFSET if seed is None else seed
    draw = _load(model, spec, 4 * n + 16, s)
    keep = [i for i in range(len(draw)) if tuple(draw.clean[i].tolist()) not in seen
            and tuple(draw.corrupted[i].tolist()) not in seen]
    if len(keep) < n:
        raise ConfigError(f"only {len(keep)} of {len(draw)} prompts of task {spec['task']!r} are unseen by the "
                          f"attribution; ask for fewer than n={n}")
    ds = draw.batch(torch.as_tensor(keep[:n]))
    log.info("held-out split: %d prompts of %r (seed %d), %d dropped as seen", n, spec["task"], s,
             len(draw) - len(keep))
    return ds


def overlap_rows(ds: "PromptPairs") -> set[tuple[int, ...]]:
    return _rows(ds.clean) | _rows(ds.corrupted)


def dataset_for_split(model: "HookedTransformer", meta: dict, split: str, dataset: Any = None,
                      n: int | None = None, seed: int | None = None) -> "PromptPairs":
    """The evaluation prompts of ``split``: rebuilt from the graph's task when ``dataset`` is None or a task name;
    a given PromptPairs is used as it is (``held_out`` refuses one that shares prompts with the attribution)."""
    from circuitdb.tasks.base import PromptPairs

    check_split(split)
    if isinstance(dataset, PromptPairs):
        if split == "held_out" and attribution_task(meta) is not None:
            shared = overlap_rows(dataset) & overlap_rows(in_sample(model, meta))
            if shared:
                raise ConfigError(f"split 'held_out': {len(shared)} prompt(s) of dataset {dataset.name!r} were "
                                  "used for attribution")
        return dataset
    if dataset is not None and not isinstance(dataset, str):
        raise ConfigError(f"dataset must be None, a task name or PromptPairs, got {type(dataset).__name__}")
    if split == "in_sample":
        spec = attribution_task(meta)
        if dataset is not None and spec is not None and dataset != spec["task"]:
            raise ConfigError(f"split 'in_sample' of a graph attributed on task {spec['task']!r} got task "
                              f"{dataset!r}")
        return in_sample(model, meta)
    return held_out(model, meta, n=n, task=dataset, seed=seed)
