"""Exact activation patching of component-graph edges and nodes (slow ground truth for EAP; circuit evaluation).

Conventions: sources, receivers, ``[n_rcv, n_src]`` masks (row = receiver/target, column = source) and the edge order
are those of :mod:`circuitdb.attribution.components`; ablation baselines are those of :mod:`circuitdb.attribution.eap`
(``"patch"`` = corrupted run, ``"zero"``, ``"mean"`` = clean-dataset mean per position).

**Patching a set of edges.** A mask ``P[t, s]`` (True = patched) is applied in one forward pass on the clean prompt:
at each receiver input the hook adds ``Σ_s P[t, s] · (z_s(base) − z_s(run))``, where ``z_s(run)`` is source ``s``'s
output *in this same run* (recorded by the source hooks as the run goes). So a patched edge carries its baseline value
and every other edge carries whatever its source produces in the patched run — the MIB / EAP-IG convention for edge
circuits: to evaluate a circuit, patch every edge outside it. The correction is one einsum per receiver hook, so the
cost of patching any number of edges is one forward pass (plus ``O(pos · n_rcv · n_src · d_model)`` per example).
Patching every edge gives exactly the corrupted run; patching none the clean run. The model runs unsplit: a head's
q/k/v input is patched at ``hook_q/k/v`` by recomputing ``ln1(resid_pre + δ_h) W[h] + b[h]`` for the patched heads
only, which equals patching TransformerLens' split per-head input (``hook_q_input``) at a fraction of its cost.

**Many configurations at once.** :func:`patched_metrics` evaluates ``k`` masks by running the batch ``k`` times in
one forward (``batch_size // len(batch)`` configurations per forward) — exact single-edge or single-node scores for
all edges. The metric still sees the real batch, once per configuration.

**Scores.** ``exact score(u → v) = mean M(clean with u → v patched) − mean M(clean)``: the quantity EAP approximates
to first order. EAP equals it wherever the metric is linear in the edge's term — e.g. v-channel and LOGITS edges of a
1-layer attention-only model without LayerNorm under logit difference (the v input enters a head linearly once its
attention pattern is fixed, and the pattern depends on q/k only). Elsewhere they diverge by the higher-order terms:
softmax of the attention pattern (q/k edges), LayerNorm scales, MLP nonlinearities, nonlinear metrics (log-prob, KL),
and paths through later components that the patched edge changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from einops import einsum
from jaxtyping import Bool, Float
from torch import Tensor

from circuitdb.attribution.components import (
    CHANNEL_CODE, ComponentGraph, component_graph, engine_mode, source_hooks, source_slots, split_qkv,
)
from circuitdb.attribution.eap import baseline_sources, dataset_mean
from circuitdb.attribution.eap_inputs import batches, check_ablation, check_batch_size, check_dataset, metric_values
from circuitdb.errors import AttributionError, ConfigError
from circuitdb.tasks.metrics import resolve_metric

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.graph import AttributionGraph
    from circuitdb.tasks.base import PromptPairs


def _patched_forward(
    model: "HookedTransformer", comp: ComponentGraph, batch: "PromptPairs", base: Tensor, masks: Tensor,
    metric: Callable, clean_logits: Tensor | None = None,
) -> Float[Tensor, " k"]:
    """Sum over the batch of the metric for each of the ``k`` masks ``[k, (pos,) n_rcv, n_src]``. The model runs the
    batch repeated ``k`` times in one forward; the metric (prepared once on ``clean_logits`` when it ``needs_clean``)
    is called ``k`` times on the real ``batch``.

    The model runs unsplit. A patched MLP / LOGITS input gets ``act + delta``; a patched head input is applied at
    ``hook_q/k/v``: ``ln1(resid_pre + delta_h) W[h] + b[h]`` for the patched (configuration, head) slots, the
    untouched projection elsewhere (exactly what the split per-head input would compute, at a fraction of the cost).
    """
    k, b = masks.shape[0], len(batch)
    per_pos = masks.ndim == 4
    cur: dict[int, Tensor] = {}
    resid: dict[int, Tensor] = {}
    fm = masks.to(base.dtype)
    pattern = "k p t s, k b p s d -> k b p t d" if per_pos else "k t s, k b p s d -> k b p t d"

    def grab(start: int, layer: int):
        def hook(act: Tensor, hook) -> None:  # noqa: ANN001
            cur[start] = source_slots(model, act, layer)
        return hook

    def keep(layer: int):
        def hook(act: Tensor, hook) -> None:  # noqa: ANN001
            resid[layer] = act
        return hook

    def delta(t0: int, n: int, mk: Tensor) -> Float[Tensor, "kb p n d"]:
        S = mk.shape[-1]
        run = torch.cat([cur[i] for i in sorted(cur)], dim=2)[:, :, :S]
        diff = base[None, :, :, :S] - run.reshape(k, b, *run.shape[1:])
        return einsum(mk, diff, pattern).reshape(k * b, run.shape[1], n, run.shape[-1])

    def patch_add(t0: int):
        mk = fm[..., t0:t0 + 1, :comp.rcv_n_upstream(t0)]
        if not bool(mk.any()):
            return None
        return lambda act, hook: act + delta(t0, 1, mk)[:, :, 0]

    def patch_head(layer: int, c: str):
        t0 = comp.rcv_index(layer, c, 0)
        H = comp.n_heads
        mk = fm[..., t0:t0 + H, :comp.rcv_n_upstream(t0)]
        if not bool(mk.any()):
            return None
        hit = (mk != 0).any(-1)  # k (p) H: which configuration patches which head (at which position)
        hit = hit.repeat_interleave(b, dim=0)[..., None]  # kb (p) H 1
        hit = hit if per_pos else hit[:, None]
        attn, ln = model.blocks[layer].attn, model.blocks[layer].ln1

        def hook(act: Tensor, hook) -> Tensor:  # noqa: ANN001
            x = resid[layer].unsqueeze(2) + delta(t0, H, mk)
            W, bias = getattr(attn, f"W_{c.upper()}"), getattr(attn, f"b_{c.upper()}")
            new = einsum(ln(x), W, "b p h d, h d e -> b p h e") + bias
            return torch.where(hit, new, act)
        return hook

    hooks = [(name, grab(start, layer)) for name, start, layer in source_hooks(comp)]
    hooks += [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in range(comp.n_layers)]
    for layer in range(comp.n_layers):
        hooks += [(f"blocks.{layer}.attn.hook_{c}", h) for c in "qkv" if (h := patch_head(layer, c)) is not None]
        if not comp.attn_only and (h := patch_add(comp.rcv_index(layer, ""))) is not None:
            hooks.append((f"blocks.{layer}.hook_mlp_in", h))
    if (h := patch_add(comp.n_rcv - 1)) is not None:
        hooks.append((f"blocks.{comp.n_layers - 1}.hook_resid_post", h))
    tokens = batch.clean.to(model.cfg.device).repeat(k, 1)
    with torch.no_grad(), split_qkv(model, False), model.hooks(fwd_hooks=hooks):
        logits = model(tokens)
    if getattr(metric, "needs_clean", False):
        metric = metric.prepare(clean_logits, batch)
    # the metric sees the real batch once per configuration, never the repeated one (tasks/base.py protocol)
    logits = logits.reshape(k, b, *logits.shape[1:])
    return torch.stack([metric_values(metric, logits[j], batch).double().sum() for j in range(k)]).cpu()


def patched_metrics(
    model: "HookedTransformer", dataset: "PromptPairs", n_configs: int,
    masks: Callable[[int, int], Bool[Tensor, "k *pos n_rcv n_src"]], metric: Callable, *, ablation: str = "patch",
    batch_size: int = 32, progress: bool = False, with_clean: bool = True,
) -> tuple[Float[Tensor, " n_configs"], float | None]:
    """Mean metric under each of ``n_configs`` patch masks (``masks(i0, i1)`` builds configurations ``i0..i1-1``),
    and the clean mean metric (None unless ``with_clean``). Call inside :func:`engine_mode`."""
    check_ablation(ablation)
    check_batch_size(batch_size)
    check_dataset(model, dataset)
    comp = component_graph(model)
    mean = dataset_mean(model, comp, dataset, batch_size) if ablation == "mean" else None
    totals = torch.zeros(n_configs, dtype=torch.float64)
    clean_total = 0.0
    needs_clean = getattr(metric, "needs_clean", False)
    for batch in batches(dataset, batch_size, progress, "exact patching"):
        base, _ = baseline_sources(model, comp, batch, ablation, mean)
        clean_logits = None
        if with_clean or needs_clean:
            with torch.no_grad():
                clean_logits = model(batch.clean.to(model.cfg.device))
        if with_clean:
            m = metric.prepare(clean_logits, batch) if needs_clean else metric
            clean_total += float(metric_values(m, clean_logits, batch).sum())
        per = max(1, batch_size // len(batch))
        for i0 in range(0, n_configs, per):
            i1 = min(n_configs, i0 + per)
            mk = torch.as_tensor(masks(i0, i1), dtype=torch.bool, device=base.device)
            totals[i0:i1] += _patched_forward(model, comp, batch, base, mk, metric, clean_logits)
    if not torch.isfinite(totals).all():
        raise AttributionError(f"non-finite metric under patching on dataset {dataset.name!r}")
    return totals / len(dataset), (clean_total / len(dataset) if with_clean else None)


def exact_edge_scores(
    model: "HookedTransformer", dataset: "PromptPairs", metric: Callable, *, ablation: str = "patch",
    edges: np.ndarray | None = None, per_position: bool = False, batch_size: int = 32, progress: bool = True,
) -> Float[Tensor, "*pos n"]:
    """``M(edge patched) − M(clean)`` for each edge (indices into the component graph's edge list; default all).

    One patched forward per edge (per edge and position with ``per_position``), batched as configurations.
    """
    with engine_mode(model) as comp:
        idx = np.arange(comp.n_edges) if edges is None else np.asarray(edges, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= comp.n_edges):
            raise ConfigError(f"edge index {int(idx.max())} outside [0, {comp.n_edges})")
        P = dataset.seq_len if per_position else 1
        t, s = comp.edge_rcv[idx], comp.edge_src[idx]

        def masks(i0: int, i1: int) -> Tensor:
            out = torch.zeros((i1 - i0, P, comp.n_rcv, comp.n_src), dtype=torch.bool)
            j = torch.arange(i0, i1)
            p, e = j // len(idx), j % len(idx)
            out[torch.arange(i1 - i0), p, torch.as_tensor(t)[e], torch.as_tensor(s)[e]] = True
            return out if per_position else out[:, 0]

        vals, clean = patched_metrics(model, dataset, P * len(idx), masks, metric, ablation=ablation,
                                      batch_size=batch_size, progress=progress)
    out = vals - clean
    return out.reshape(P, len(idx)) if per_position else out


def exact_node_scores(
    model: "HookedTransformer", dataset: "PromptPairs", metric: Callable, *, ablation: str = "patch",
    nodes: list[str] | None = None, batch_size: int = 32, progress: bool = True,
) -> dict[str, float]:
    """``M(node's output patched) − M(clean)`` for source nodes (keys; default every source). Patching a node is
    patching all its out-edges, which equals replacing its output."""
    with engine_mode(model) as comp:
        keys = list(comp.keys[:-1]) if nodes is None else list(nodes)
        index = {k: i for i, k in enumerate(comp.keys[:-1])}
        bad = [k for k in keys if k not in index]
        if bad:
            raise ConfigError(f"unknown source node(s) {bad}; sources are {', '.join(comp.keys[:-1])}")
        cols = torch.as_tensor([index[k] for k in keys])
        allowed = torch.as_tensor(comp.allowed)

        def masks(i0: int, i1: int) -> Tensor:
            out = torch.zeros((i1 - i0, comp.n_rcv, comp.n_src), dtype=torch.bool)
            for j, c in enumerate(cols[i0:i1].tolist()):
                out[j, :, c] = allowed[:, c]
            return out

        vals, clean = patched_metrics(model, dataset, len(keys), masks, metric, ablation=ablation,
                                      batch_size=batch_size, progress=progress)
    return {k: float(v - clean) for k, v in zip(keys, vals)}


def run_with_edges_patched(
    model: "HookedTransformer", dataset: "PromptPairs", edge_mask: Any, ablation: str = "patch",
    metric: Any = None, *, batch_size: int = 32, progress: bool = False,
) -> float:
    """Mean metric over ``dataset`` with the edges where ``edge_mask`` is True patched (all others clean).

    ``edge_mask``: booleans in the component graph's edge order (``[n_edges]``, or ``[pos * n_edges]`` /
    ``[pos, n_edges]`` for per-position graphs — the order :func:`circuitdb.attribute` writes), or a dense
    ``[(pos,) n_rcv, n_src]`` mask. For a circuit graph read back from a store, build the mask with
    :func:`circuit_edge_mask` (key-based, order-free) and patch its complement: ``~circuit_edge_mask(model, circuit)``.
    ``metric`` is a name or callable (default: logit difference when the dataset has wrong tokens, else log-prob).
    Cost per batch: one baseline forward (corrupted run; none for "zero") and one patched forward.
    """
    return float(run_with_edge_masks(model, dataset, [edge_mask], ablation, metric, batch_size=batch_size,
                                     progress=progress)[0])


def run_with_edge_masks(
    model: "HookedTransformer", dataset: "PromptPairs", edge_masks: Any, ablation: str = "patch",
    metric: Any = None, *, batch_size: int = 32, progress: bool = False,
) -> np.ndarray:
    """:func:`run_with_edges_patched` for ``k`` masks at once (a sequence, or an array with a leading ``k`` axis):
    the baseline run is shared and the masks ride in the batch (``batch_size // len(batch)`` per forward), e.g. a
    whole faithfulness curve in one call. Returns the ``k`` mean metrics."""
    fn = resolve_metric(metric, dataset)
    with engine_mode(model) as comp:
        ds = [_dense_mask(comp, m, dataset.seq_len) for m in edge_masks]
        if not ds:
            raise ConfigError("run_with_edge_masks needs at least one edge mask")
        if any(d.ndim == 3 for d in ds):  # mixing component and per-position masks: broadcast over positions
            ds = [d.expand(dataset.seq_len, *d.shape) if d.ndim == 2 else d for d in ds]
        dense = torch.stack(ds)
        vals, _ = patched_metrics(model, dataset, len(dense), lambda i0, i1: dense[i0:i1], fn, ablation=ablation,
                                  batch_size=batch_size, progress=progress, with_clean=False)
    return vals.numpy()


def _dense_mask(comp: ComponentGraph, edge_mask: Any, seq: int) -> Tensor:
    m = np.asarray(edge_mask.cpu() if isinstance(edge_mask, Tensor) else edge_mask)
    if m.dtype != bool:
        raise ConfigError(f"edge_mask must be boolean, got dtype {m.dtype}")
    E, shp = comp.n_edges, (comp.n_rcv, comp.n_src)
    if m.shape in ((E,), (seq, E)):
        return torch.as_tensor(comp.edge_mask_matrix(m))
    if m.shape == (seq * E,):
        return torch.as_tensor(comp.edge_mask_matrix(m.reshape(seq, E)))
    if m.shape in (shp, (seq,) + shp):
        return torch.as_tensor(m & (comp.allowed if m.ndim == 2 else comp.allowed[None]))
    raise ConfigError(f"edge_mask has shape {m.shape}; expected ({E},) edges, ({seq}, {E}) / ({seq * E},) per "
                      f"position, or a dense {shp} / ({seq}, *{shp}) mask")


def circuit_edge_mask(
    model: "HookedTransformer", circuit: "AttributionGraph", seq: int | None = None,
) -> Bool[np.ndarray, " n_edges"]:
    """True for each component-graph edge of ``model`` that ``circuit`` contains (matched by source key, target key
    and channel, so edge order and extra nodes do not matter). Per-position circuits give ``[seq * n_edges]``
    (``seq`` defaults to the circuit's largest position + 1; pass the dataset's length)."""
    comp = component_graph(model)
    keys = circuit.keys
    src, dst = keys[circuit.src], keys[circuit.dst]
    pos = circuit.nodes["pos"].to_numpy()[circuit.dst]
    base = {(comp.keys[s], comp.keys[comp.rcv_node[t]], int(comp.rcv_channel[t])): i
            for i, (t, s) in enumerate(zip(comp.edge_rcv, comp.edge_src))}
    per_pos = bool((pos >= 0).any())
    n_pos = (seq or int(pos.max()) + 1) if per_pos else 1
    out = np.zeros(n_pos * comp.n_edges, dtype=bool)
    for a, b, c, p in zip(src, dst, circuit.channel, pos):
        key = (a.split("@")[0], b.split("@")[0], int(c))
        if key not in base:
            raise ConfigError(f"circuit edge {a} -> {b} (channel {'-qkv'[int(c)]}) is not an edge of this model's "
                              f"component graph (valid channels: {sorted(CHANNEL_CODE)})")
        out[max(p, 0) * comp.n_edges + base[key]] = True
    return out
