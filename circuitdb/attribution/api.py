"""``circuitdb.attribute``: a component attribution graph of a model on a prompt-pair dataset, in one call.

Conventions: node order and edges are those of :mod:`circuitdb.attribution.components` (``E``, ``A{l}.{h}``,
``M{l}``, ``LOGITS``; edges into heads carry channel q/k/v); edge weights are mean scores over the dataset (EAP,
EAP-IG) or mean metric changes under exact patching, both "metric(patched) − metric(clean)" in sign. Per-position
graphs have nodes ``c@p`` (row ``p * n_components + c``) and edges ``u@p → v@p``, position-major.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
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
    from circuitdb.attribution.eap import check_dataset
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
    from circuitdb.attribution.eap import EAPConfig, check_ablation, eap_scores
    from circuitdb.graph import AttributionGraph

    if method not in ATTRIBUTE_METHODS:
        raise ConfigError(one_of(method, ATTRIBUTE_METHODS, "attribution method"))
    check_ablation(ablation)
    model = resolve_model(model, dtype, device)
    task_kw = {"seed": seed} | ({"n": n} if n is not None else {})
    ds = resolve_dataset(dataset, model, **task_kw) if isinstance(dataset, str) else resolve_dataset(dataset, model)
    if n is not None and len(ds) > n:
        ds = ds.batch(slice(0, n))
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
    tokens = None
    if per_position:
        col = ds.clean
        tokens = np.where((col == col[:1]).all(0).numpy(), col[0].numpy(), -1)
    nodes, edges = comp.frames(dense, ds.seq_len if per_position else None, tokens)
    stats_label = None
    if head_stats:
        nodes, stats_label = _with_head_stats(model, ds, comp, nodes)
    meta = {
        "model": str(model.cfg.model_name), "granularity": "component", "method": method,
        "metric": metric_name(metric, ds),
        "params": {
            "ablation": ablation, "ig_steps": ig_steps if method.startswith("eap-ig") else None,
            "batch_size": batch_size,
            "per_position": per_position, "dtype": str(model.cfg.dtype).replace("torch.", ""),
            "dataset": ds.name, "n": len(ds), "seq_len": ds.seq_len, "task": json_fields(ds.meta),
        },
        "prompt": list(ds.texts[:N_EXAMPLE_PROMPTS]) if ds.texts else None,
        "tokens": ds.clean[:N_EXAMPLE_PROMPTS].tolist(),
        "scores": scores_extra,
        **({"head_stats": stats_label} if stats_label else {}),
    }
    if method == "eap-ig+patching":
        meta["params"]["verify"] = verify
    stamp(meta, model, graph_id, inputs=(ds.clean, ds.corrupted, ds.answer, ds.wrong, ds.answer_pos))
    return AttributionGraph.from_frames(nodes, edges, meta)


HEAD_STAT_PROMPTS = 64  # at most this many of the dataset's clean prompts feed the attention scores


def _with_head_stats(model: "HookedTransformer", ds: "PromptPairs", comp: Any, nodes: Any) -> tuple[Any, dict]:
    """Add prev-token / induction / duplicate-token scores and DLA, all computed on the dataset's own clean prompts
    (:func:`circuitdb.models.attention_scores.text_pattern_scores`, :func:`head_stats.direct_logit_attribution`);
    returns the nodes and a label for the graph's metadata saying what they were computed on. A score with no
    qualifying query position (e.g. no repeated token, so no induction) is left NaN and says so in the label."""
    from circuitdb.attribution import head_stats as hs
    from circuitdb.models.attention_scores import text_pattern_scores

    nodes = nodes.copy()
    n_comp = comp.n_nodes
    pos_of = np.arange(len(nodes)) % n_comp  # component index of every row
    heads = nodes["kind"].to_numpy() == "head"
    lay, hd = nodes["layer"].to_numpy(), nodes["head"].to_numpy()
    sub = ds.batch(slice(0, HEAD_STAT_PROMPTS))
    label: dict[str, Any] = {"computed_on": f"clean prompts of dataset {ds.name!r}", "n_prompts": len(sub),
                             "seq_len": ds.seq_len, "query_positions": {}}
    for col, (scores, n_pairs) in text_pattern_scores(model, sub.clean).items():
        vals = np.full(len(nodes), np.nan)
        if scores is not None:
            vals[heads] = scores.numpy()[lay[heads], hd[heads]]
        nodes[col] = vals
        label["query_positions"][col] = n_pairs
    if ds.answer is None:
        label["direct_logit"] = "not computed: the dataset has no answer tokens"
        return nodes, label
    with torch.no_grad():
        dla = hs.direct_logit_attribution(model, ds)
    vals = np.full(len(nodes), np.nan)
    vals[heads] = dla.heads.numpy()[lay[heads], hd[heads]]
    if dla.mlps is not None:
        mlp = nodes["kind"].to_numpy() == "mlp"
        vals[mlp] = dla.mlps.numpy()[lay[mlp]]
    vals[pos_of == 0] = dla.embed
    if "pos" in nodes.columns:  # per-position graphs: DLA belongs to the (common) answer position
        ap = ds.answer_pos.unique()
        vals[nodes["pos"].to_numpy() != (int(ap[0]) if len(ap) == 1 else -2)] = np.nan
    nodes["direct_logit"] = vals
    label["direct_logit"] = ("answer minus wrong logit direction" if ds.wrong is not None
                             else "answer logit minus mean logit direction") + f", {len(ds)} prompts"
    return nodes, label
