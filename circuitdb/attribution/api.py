"""``circuitdb.attribute``: a component attribution graph of a model on a prompt-pair dataset, in one call.

Conventions: node order and edges are those of :mod:`circuitdb.attribution.components` (``E``, ``A{l}.{h}``,
``M{l}``, ``LOGITS``; edges into heads carry channel q/k/v); edge weights are mean scores over the dataset (EAP,
EAP-IG) or mean metric changes under exact patching, both "metric(patched) − metric(clean)" in sign. Per-position
graphs have nodes ``c@p`` (row ``p * n_components + c``) and edges ``u@p → v@p``, position-major.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from circuitdb.errors import ConfigError, one_of
from circuitdb.identity import cached_for_model, stamp
from circuitdb.models.dtypes import torch_dtype
from circuitdb.plain import json_fields
from circuitdb.tasks.metrics import metric_name, resolve_metric  # noqa: F401 - re-exported (metrics live in tasks/)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.graph import AttributionGraph
    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

ATTRIBUTE_METHODS = ("eap", "eap-ig", "patching", "eap-ig+patching")
N_EXAMPLE_PROMPTS = 3


def resolve_model(model: "HookedTransformer | str", dtype: "torch.dtype | str | None" = None,
                  device: "torch.device | str | None" = None) -> "HookedTransformer":
    """A HookedTransformer (a name goes through ``load_model``), in ``dtype`` and on ``device`` (a converted copy if
    either differs; ``None`` keeps the model's)."""
    dt = torch_dtype(dtype)
    if isinstance(model, str):
        from circuitdb.models import load_model

        return load_model(model, dtype=dt or torch.float32, **({"device": str(device)} if device is not None else {}))
    if not hasattr(model, "cfg") or not hasattr(model, "hooks"):
        raise ConfigError(f"model must be a HookedTransformer or a model name, got {type(model).__name__}")
    if dt is not None and model.cfg.dtype != dt:
        log.info("working on a %s copy of %s", dt, model.cfg.model_name)
        model = copy.deepcopy(model)
        model.to(dt, print_details=False)
    if device is not None and next(iter(model.parameters())).device != torch.device(device):
        log.info("working on a copy of %s on %s", model.cfg.model_name, device)
        model = copy.deepcopy(model)
        model.to(torch.device(device), print_details=False)
    return model


def resolve_dataset(dataset: Any, model: "HookedTransformer", **task_kw: Any) -> "PromptPairs":
    """PromptPairs from a PromptPairs, a task name / ``.jsonl`` path, a dict, or a tuple of tensors
    ``(clean, corrupted[, answer[, wrong[, answer_pos]]])``; checked against the model's vocabularies and context."""
    from circuitdb.attribution.eap_inputs import check_dataset
    from circuitdb.tasks.base import PromptPairs

    if isinstance(dataset, PromptPairs):
        ds = dataset
    elif isinstance(dataset, str):
        from circuitdb.tasks import load_task

        ds = load_task(dataset, model, **task_kw)
    elif isinstance(dataset, dict):
        allowed = {"clean", "corrupted", "answer", "wrong", "answer_pos", "name", "texts"}
        bad = sorted(set(dataset) - allowed)
        missing = sorted({"clean", "corrupted"} - set(dataset))
        if bad or missing:
            raise ConfigError(f"dataset dict: unknown keys {bad}, missing keys {missing}; valid keys: "
                              f"{', '.join(sorted(allowed))}")
        ds = PromptPairs(**{k: _long(v, k) if k not in ("name", "texts") else v for k, v in dataset.items()})
    elif isinstance(dataset, (tuple, list)) and 2 <= len(dataset) <= 5:
        names = ("clean", "corrupted", "answer", "wrong", "answer_pos")
        ds = PromptPairs(*[_long(v, nm) for v, nm in zip(dataset, names)])
    else:
        raise ConfigError(f"dataset must be PromptPairs, a task name, a dict or a tuple (clean, corrupted"
                          f"[, answer[, wrong[, answer_pos]]]); got {type(dataset).__name__}")
    check_dataset(model, ds)
    return ds


def _long(v: Any, name: str) -> torch.Tensor:
    if v is None:
        return None  # type: ignore[return-value]
    try:
        t = torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"dataset {name} must be integer token ids (a tensor or nested lists of one shape): {e}") from e
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ConfigError(f"dataset {name} must hold integer token ids/positions, got dtype {t.dtype}")
    return t.long()


def _inputs(model: Any, dataset: Any, dtype: Any, device: Any, n: int | None, seed: int
            ) -> tuple["HookedTransformer", "PromptPairs"]:
    """The model (:func:`resolve_model`) and the dataset (:func:`resolve_dataset`; a task name with ``n`` and
    ``seed``), cut to ``n`` prompts."""
    model = resolve_model(model, dtype, device)
    task_kw = {"seed": seed} | ({"n": n} if n is not None else {})
    ds = resolve_dataset(dataset, model, **task_kw) if isinstance(dataset, str) else resolve_dataset(dataset, model)
    if n is not None and len(ds) > n:
        ds = ds.batch(slice(0, n))
    return model, ds


def attribute(
    model: "HookedTransformer | str", dataset: Any, method: str = "eap-ig", metric: Any = None,
    ablation: str = "patch", *, ig_steps: int = 5, batch_size: int = 32, per_position: bool = False,
    dtype: "torch.dtype | str | None" = None, device: "torch.device | str | None" = None, progress: bool = True,
    graph_id: str | None = None,
    head_stats: bool = True, n: int | None = None, seed: int = 0, verify: dict | None = None,
) -> "AttributionGraph":
    """The component attribution graph of ``model`` on ``dataset`` (see module doc).

    ``model``: a HookedTransformer or a name for :func:`circuitdb.models.load_model`. ``dataset``: PromptPairs, a
    task name (then ``load_task(name, model, n=n, seed=seed)``), a dict or tuple of tensors. ``metric``: a name
    (``logit_diff``, ``logprob``, ``kl``) or callable ``(logits, batch) -> [batch]``. ``method``: ``eap``,
    ``eap-ig`` (``ig_steps`` interpolation points), ``patching`` (exact, one patched run per edge) or
    ``eap-ig+patching`` (EAP-IG, with the edges it cannot rank re-scored by exact patching; ``verify`` holds its
    ``near_zero`` / ``top_k``, see :mod:`circuitdb.attribution.verified`).
    ``ablation``: ``patch`` (corrupted prompts), ``zero`` or ``mean``. ``dtype``: compute dtype (``float64`` for
    verification; default the model's). With ``head_stats`` nodes carry previous-token / induction / duplicate-token
    scores and direct logit attribution computed on the dataset's own clean prompts (``meta["head_stats"]`` says
    on what).
    """
    from circuitdb.attribution.components import component_graph
    from circuitdb.attribution.eap import EAPConfig, eap_scores
    from circuitdb.attribution.eap_inputs import check_ablation

    if method not in ATTRIBUTE_METHODS:
        raise ConfigError(one_of(method, ATTRIBUTE_METHODS, "attribution method"))
    check_ablation(ablation)
    model, ds = _inputs(model, dataset, dtype, device, n, seed)
    fn = resolve_metric(metric, ds)
    comp = component_graph(model)
    scores_extra: dict[str, float] = {}
    if method == "eap-ig+patching":
        from circuitdb.attribution.verified import VerifiedConfig, verified_scores

        if per_position:
            raise ConfigError("method 'eap-ig+patching' computes component graphs only (per_position=False)")
        vcfg = VerifiedConfig(ig_steps=ig_steps, ablation=ablation, batch_size=batch_size, progress=progress,
                              **(verify or {}))
        vres = verified_scores(model, ds, fn, vcfg)
        verify = {"near_zero": vcfg.near_zero, "top_k": vcfg.top_k}
        dense = vres.scores.numpy()
        scores_extra.update(vres.summary())
    elif method == "patching":
        from circuitdb.attribution.patching import exact_edge_scores

        edge_w = exact_edge_scores(model, ds, fn, ablation=ablation, per_position=per_position,
                                   batch_size=batch_size, progress=progress).numpy()
        dense = np.zeros(((ds.seq_len,) if per_position else ()) + (comp.n_rcv, comp.n_src))
        dense[..., comp.edge_rcv, comp.edge_src] = edge_w
    else:
        cfg = EAPConfig(method=method, ig_steps=ig_steps, ablation=ablation, batch_size=batch_size,
                        per_position=per_position, progress=progress)
        res = eap_scores(model, ds, fn, cfg)
        dense = res.scores.numpy()
        scores_extra["clean_metric"] = res.clean_metric
        if res.baseline_metric is not None:
            scores_extra["corrupted_metric"] = res.baseline_metric
    from circuitdb.attribution.verified import warn_if_all_zero

    warn_if_all_zero(dense[..., comp.edge_rcv, comp.edge_src], method, metric_name(metric, ds),
                     scores_extra.get("clean_metric"))
    params = _params(model, ds, method, ablation, ig_steps, batch_size, per_position)
    if method == "eap-ig+patching":
        params["verify"] = verify
    return _to_graph(model, ds, comp, dense, method, metric_name(metric, ds), params, scores_extra, head_stats,
                     graph_id)


def _params(model: "HookedTransformer", ds: "PromptPairs", method: str, ablation: str, ig_steps: int,
            batch_size: int, per_position: bool) -> dict[str, Any]:
    return {
        "ablation": ablation, "ig_steps": ig_steps if method.startswith("eap-ig") else None, "batch_size": batch_size,
        "per_position": per_position, "dtype": str(model.cfg.dtype).replace("torch.", ""),
        "dataset": ds.name, "n": len(ds), "seq_len": ds.seq_len, "task": json_fields(ds.meta),
    }


def _to_graph(model: "HookedTransformer", ds: "PromptPairs", comp: Any, dense: np.ndarray, method: str,
              metric: str, params: dict[str, Any], scores_extra: dict[str, float], head_stats: bool,
              graph_id: str | None, stats: tuple | None = None, fast: bool = False) -> "AttributionGraph":
    """The graph of dense scores ``[*pos, n_rcv, n_src]`` of ``ds``, with head statistics (``stats``: this
    dataset's precomputed ``(pattern scores, DLA)``) and metadata. ``fast``: skip re-validating the node and edge
    tables (built here from the component graph; the scores were checked finite)."""
    from circuitdb.graph import AttributionGraph

    per_position = bool(params["per_position"])
    tokens = None
    if per_position:
        col = ds.clean
        tokens = np.where((col == col[:1]).all(0).numpy(), col[0].numpy(), -1)
    if fast:
        t = _template(comp, ds.seq_len if per_position else None)
        cols, stats_label = _head_stat_columns(model, ds, comp, t.nodes, stats) if head_stats else ({}, None)
        if tokens is not None:
            tok = np.full(len(t.nodes), -1, dtype=np.int64)
            tok[np.arange(ds.seq_len) * comp.n_nodes] = tokens
            cols["token"] = tok
        nodes = pd.DataFrame({c: cols.get(c, a) for c, a in t.columns.items()}, copy=False)
    else:
        nodes, edges = comp.frames(dense, ds.seq_len if per_position else None, tokens)
        stats_label = None
        if head_stats:
            nodes, stats_label = _with_head_stats(model, ds, comp, nodes, stats)
    meta = {
        "model": str(model.cfg.model_name), "granularity": "component", "method": method, "metric": metric,
        "params": params,
        "prompt": list(ds.texts[:N_EXAMPLE_PROMPTS]) if ds.texts else None,
        "tokens": ds.clean[:N_EXAMPLE_PROMPTS].tolist(),
        "scores": scores_extra,
        **({"head_stats": stats_label} if stats_label else {}),
    }
    stamp(meta, model, graph_id, inputs=(ds.clean, ds.corrupted, ds.answer, ds.wrong, ds.answer_pos))
    if fast:
        w = dense[..., comp.edge_rcv, comp.edge_src].reshape(-1)
        return AttributionGraph(nodes, t.src, t.dst, w, t.channel, meta, validate=False, normalized=True)
    return AttributionGraph.from_frames(nodes, edges, meta)


@dataclass(frozen=True)
class _Template:
    """The fixed part of a component graph (normalised nodes, edge ends, channels), shared by per-prompt graphs."""

    nodes: pd.DataFrame
    src: np.ndarray
    dst: np.ndarray
    channel: np.ndarray

    @functools.cached_property
    def columns(self) -> dict[str, Any]:  # the node columns' arrays, read once
        return {c: self.nodes[c].array for c in self.nodes.columns}


@functools.lru_cache(maxsize=16)
def _template(comp: Any, positions: int | None) -> _Template:
    from circuitdb.graph import _edge_arrays, normalize_nodes

    shape = ((positions,) if positions is not None else ()) + (comp.n_rcv, comp.n_src)
    nodes, edges = comp.frames(np.zeros(shape), positions)
    src, dst, _, channel = _edge_arrays(edges, "component edges")
    for a in (src, dst, channel):
        a.setflags(write=False)
    return _Template(normalize_nodes(nodes).reset_index(drop=True), src, dst, channel)


PER_PROMPT_METHODS = ("eap", "eap-ig")


def attribute_prompts(
    model: "HookedTransformer | str", dataset: Any, method: str = "eap-ig", metric: Any = None,
    ablation: str = "patch", *, ig_steps: int = 5, batch_size: int = 32, per_position: bool = False,
    dtype: "torch.dtype | str | None" = None, device: "torch.device | str | None" = None, progress: bool = True,
    graph_ids: "Iterable[str | None] | None" = None, head_stats: bool = True, mean_over: Any = None,
    n: int | None = None, seed: int = 0,
) -> "Iterator[AttributionGraph]":
    """One component graph per prompt of ``dataset``, ``batch_size`` prompts per batched pass (a generator: each
    batch's graphs as soon as that batch is done; ``graph_ids[i]`` names prompt ``i``'s graph, None = provenance id).

    Graph ``i`` equals ``attribute(model, dataset[i:i+1], ..., batch_size=batch_size)``: the same nodes, head
    statistics, metadata and edges (to float tolerance; :mod:`circuitdb.attribution.eap`, per-example scores, says
    why this is exact) — except under ``"mean"`` ablation, where the mean is over ``mean_over`` (default the whole
    ``dataset``; a single prompt's own mean would make every score zero), recorded as ``params["mean_over"]``, so a
    graph does not depend on how the prompts are batched. Methods: ``eap``, ``eap-ig``; the metric must be a
    function of each example's own logits (checked on the first batch).
    """
    from circuitdb.attribution.components import component_graph, engine_mode
    from circuitdb.attribution.eap import EAPConfig, dataset_mean, eap_scores
    from circuitdb.attribution.eap_inputs import check_ablation
    from circuitdb.attribution.verified import warn_if_all_zero

    if method not in PER_PROMPT_METHODS:
        raise ConfigError(one_of(method, PER_PROMPT_METHODS, "per-prompt attribution method") +
                          "; for patching, call attribute() once per prompt")
    check_ablation(ablation)
    model, ds = _inputs(model, dataset, dtype, device, n, seed)
    ids = [None] * len(ds) if graph_ids is None else list(graph_ids)
    if len(ids) != len(ds):
        raise ConfigError(f"attribute_prompts: {len(ds)} prompts but {len(ids)} graph ids")
    fn = resolve_metric(metric, ds)
    name = metric_name(metric, ds)
    comp = component_graph(model)
    cfg = EAPConfig(method=method, ig_steps=ig_steps, ablation=ablation, batch_size=batch_size,
                    per_position=per_position, per_example=True, progress=False)
    mean, mean_label = None, None
    if ablation == "mean":
        over = ds if mean_over is None else resolve_dataset(mean_over, model)
        with engine_mode(model) as c:
            mean = dataset_mean(model, c, over, batch_size)
        mean_label = {"dataset": over.name, "n": len(over), "seq_len": over.seq_len}
    warned = False
    starts = range(0, len(ds), batch_size)
    from tqdm.auto import tqdm

    for start in tqdm(starts, desc=f"{method} per prompt", disable=not progress or len(starts) < 2, leave=False):
        b = ds.batch(slice(start, start + batch_size))
        res = eap_scores(model, b, fn, cfg, mean_over=mean)
        dense = res.scores.numpy()
        if not warned:
            warned = True
            warn_if_all_zero(dense[:, ..., comp.edge_rcv, comp.edge_src], method, name, res.clean_metric)
        stats = _stats_per_example(model, b) if head_stats else [None] * len(b)
        for i in range(len(b)):
            one = b.batch(slice(i, i + 1))
            extra = {"clean_metric": float(res.clean_values[i])}
            if res.baseline_values is not None:
                extra["corrupted_metric"] = float(res.baseline_values[i])
            params = _params(model, one, method, ablation, ig_steps, batch_size, per_position)
            if mean_label is not None:
                params["mean_over"] = mean_label
            yield _to_graph(model, one, comp, dense[i], method, name, params, extra, head_stats, ids[start + i],
                            stats[i], fast=True)


def _stats_per_example(model: "HookedTransformer", ds: "PromptPairs") -> list[tuple]:
    """``(pattern scores, DLA or None)`` of each prompt on its own (what :func:`_with_head_stats` computes for a
    one-prompt dataset), from one batched forward each."""
    from circuitdb.attribution.head_stats import direct_logit_attribution_per_example
    from circuitdb.models.attention_scores import text_pattern_scores_per_example

    pats = text_pattern_scores_per_example(model, ds.clean)
    dla = direct_logit_attribution_per_example(model, ds) if ds.answer is not None else [None] * len(ds)
    return list(zip(pats, dla))


HEAD_STAT_PROMPTS = 64  # at most this many of the dataset's clean prompts feed the attention scores


def _with_head_stats(model: "HookedTransformer", ds: "PromptPairs", comp: Any, nodes: Any,
                     stats: tuple | None = None) -> tuple[Any, dict]:
    """``nodes`` with the columns of :func:`_head_stat_columns` added (a copy), and the label."""
    cols, label = _head_stat_columns(model, ds, comp, nodes, stats)
    nodes = nodes.copy()
    for c, v in cols.items():
        nodes[c] = v
    return nodes, label


def _head_stat_columns(model: "HookedTransformer", ds: "PromptPairs", comp: Any, nodes: Any,
                       stats: tuple | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Prev-token / induction / duplicate-token scores and DLA as node columns, all computed on the dataset's own
    clean prompts (:func:`circuitdb.models.attention_scores.text_pattern_scores`,
    :func:`head_stats.direct_logit_attribution`), or taken from ``stats = (pattern scores, DLA or None)`` computed
    for this dataset already; returns the columns and a label for the graph's metadata saying what they were computed
    on. A score with no qualifying query position (e.g. no repeated token, so no induction) is left NaN and says so
    in the label."""
    from circuitdb.attribution import head_stats as hs
    from circuitdb.models.attention_scores import text_pattern_scores

    cols: dict[str, np.ndarray] = {}
    n_comp = comp.n_nodes
    pos_of = np.arange(len(nodes)) % n_comp  # component index of every row
    kinds = nodes["kind"].to_numpy()
    heads = kinds == "head"
    lay, hd = nodes["layer"].to_numpy(), nodes["head"].to_numpy()
    sub = ds.batch(slice(0, HEAD_STAT_PROMPTS))
    label: dict[str, Any] = {"computed_on": f"clean prompts of dataset {ds.name!r}", "n_prompts": len(sub),
                             "seq_len": ds.seq_len, "query_positions": {}}
    patterns = stats[0] if stats is not None else text_pattern_scores(model, sub.clean)
    for col, (scores, n_pairs) in patterns.items():
        vals = np.full(len(nodes), np.nan)
        if scores is not None:
            vals[heads] = scores.numpy()[lay[heads], hd[heads]]
        cols[col] = vals
        label["query_positions"][col] = n_pairs
    if ds.answer is None:
        label["direct_logit"] = "not computed: the dataset has no answer tokens"
        return cols, label
    if stats is not None:
        dla = stats[1]
    else:
        with torch.no_grad():
            dla = hs.direct_logit_attribution(model, ds)
    vals = np.full(len(nodes), np.nan)
    vals[heads] = dla.heads.numpy()[lay[heads], hd[heads]]
    if dla.mlps is not None:
        mlp = kinds == "mlp"
        vals[mlp] = dla.mlps.numpy()[lay[mlp]]
    vals[pos_of == 0] = dla.embed
    pos = nodes["pos"].to_numpy() if "pos" in nodes.columns else None
    if pos is not None and (pos >= 0).any():  # per-position graphs: DLA belongs to the (common) answer position
        ap = ds.answer_pos.unique()
        vals[pos != (int(ap[0]) if len(ap) == 1 else -2)] = np.nan
    cols["direct_logit"] = vals
    label["direct_logit"] = ("answer minus wrong logit direction" if ds.wrong is not None
                             else "answer logit minus mean logit direction") + f", {len(ds)} prompts"
    return cols, label
