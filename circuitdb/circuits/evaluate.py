"""Evaluating circuits: MIB faithfulness, CPR / CMD curves, ROC AUC against a ground truth, and the graph-level
completeness / replacement scores of feature circuits.

Definitions (MIB, Mueller et al. 2025; DESIGN.md):
- faithfulness ``f(C) = (m(C) − m(∅)) / (m(N) − m(∅))``: ``m(N)`` is the mean metric of the clean model, ``m(∅)`` with
  every edge patched (the corrupted run under ``ablation="patch"``), ``m(C)`` with every edge *outside* the circuit
  patched. Patching is :func:`circuitdb.attribution.patching.run_with_edges_patched`.
- CPR = area under ``f`` over circuit sizes :data:`MIB_SIZES` (percent of the graph's edges; circuits by top-n of
  |score| unless another pruner is named), CMD = area under ``|1 − f|``; both by the trapezoid rule over the edge
  fraction actually kept (x in [0, 1]), so a circuit with ``f ≡ 1`` has CPR = x_max − x_min ≈ 1 and CMD = 0.
- ROC AUC of scores against a ground-truth set (Mann–Whitney form, ties counted half).
- Feature graphs (circuit-tracer's ``compute_graph_scores``): replacement = share of token→logit influence that does
  not end in error nodes; completeness = influence-weighted share of each node's normalised input from non-error
  sources; :func:`feature_ablation_effect` = the logits after ablating everything outside a feature circuit in the
  gate-frozen, linearised replacement model (computed on the graph, not by running the model).
Torch is imported only inside the functions that run a model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from circuitdb.errors import ConfigError
from circuitdb.graph import CHANNELS, AttributionGraph
from circuitdb.pruning import graph_scores as plain_graph_scores
from circuitdb.pruning import influence, logit_weights, normalised_weights, prune_result

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from transformer_lens import HookedTransformer

    from circuitdb.circuits.circuit import Circuit
    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

MIB_SIZES = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class Baselines:
    """``m(N)`` (clean, nothing patched) and ``m(∅)`` (every edge patched) of one model, dataset and metric."""

    full: float
    empty: float

    def faithfulness(self, m: float) -> float:
        d = self.full - self.empty
        if abs(d) < 1e-12:
            raise ConfigError(f"the model does not separate clean from ablated runs (m(N) = m(∅) = {self.full:.4g}); "
                              "faithfulness is undefined — use another dataset, metric or ablation")
        return (m - self.empty) / d


@dataclass(frozen=True)
class CurvePoint:
    percent: float
    edge_fraction: float
    n_edges: int
    faithfulness: float
    metric: float


@dataclass(frozen=True)
class FaithfulnessCurve:
    points: tuple[CurvePoint, ...]
    baselines: Baselines
    method: str
    params: dict = field(default_factory=dict)

    @property
    def cpr(self) -> float:
        return _area([p.edge_fraction for p in self.points], [p.faithfulness for p in self.points])

    @property
    def cmd(self) -> float:
        return _area([p.edge_fraction for p in self.points], [abs(1 - p.faithfulness) for p in self.points])

    def to_frame(self):  # noqa: ANN201
        import pandas as pd

        return pd.DataFrame([p.__dict__ for p in self.points])

    def scores(self) -> dict[str, Any]:
        """JSON-ready summary to store on a Circuit."""
        return {"cpr": self.cpr, "cmd": self.cmd, "m_full": self.baselines.full, "m_empty": self.baselines.empty,
                "curve": [[p.percent, p.edge_fraction, p.faithfulness] for p in self.points]}


def _area(x: list[float], y: list[float]) -> float:
    order = np.argsort(x)
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2)) if len(xs) > 1 else 0.0


# ------------------------------------------------------------------------------------------- model-based
def _model_mask(model: "HookedTransformer", graph: AttributionGraph) -> np.ndarray:
    from circuitdb.attribution.patching import circuit_edge_mask

    return circuit_edge_mask(model, graph)


def baselines(model: "HookedTransformer", dataset: "PromptPairs", *, metric: Any = None, ablation: str = "patch",
              batch_size: int = 32) -> Baselines:
    """``m(N)`` and ``m(∅)`` for ``model`` on ``dataset``."""
    from circuitdb.attribution.components import component_graph
    from circuitdb.attribution.patching import run_with_edges_patched

    n_edges = component_graph(model).n_edges
    full = run_with_edges_patched(model, dataset, np.zeros(n_edges, bool), ablation, metric, batch_size=batch_size)
    empty = run_with_edges_patched(model, dataset, np.ones(n_edges, bool), ablation, metric, batch_size=batch_size)
    return Baselines(full, empty)


def circuit_metric(model: "HookedTransformer", dataset: "PromptPairs", circuit: "Circuit | AttributionGraph", *,
                   metric: Any = None, ablation: str = "patch", batch_size: int = 32) -> float:
    """``m(C)``: the mean metric with every edge outside the circuit patched."""
    from circuitdb.attribution.components import component_graph
    from circuitdb.attribution.patching import run_with_edges_patched

    g = circuit if isinstance(circuit, AttributionGraph) else circuit.graph  # a Circuit (duck-typed: no import)
    keep = _model_mask(model, g)
    n = component_graph(model).n_edges
    if keep.size != n:  # a per-position circuit: [max_pos + 1, n_edges] flattened → pad to the dataset's length
        if keep.size > dataset.seq_len * n:
            raise ConfigError(f"per-position circuit reaches position {keep.size // n - 1}, beyond the dataset's "
                              f"sequence length {dataset.seq_len}")
        keep = np.concatenate([keep, np.zeros(dataset.seq_len * n - keep.size, bool)])
    return run_with_edges_patched(model, dataset, ~keep, ablation, metric, batch_size=batch_size)


def faithfulness(model: "HookedTransformer", dataset: "PromptPairs", circuit: "Circuit | AttributionGraph", *,
                 metric: Any = None, ablation: str = "patch", batch_size: int = 32,
                 base: Baselines | None = None) -> float:
    """MIB faithfulness of a component circuit (module docstring)."""
    base = base or baselines(model, dataset, metric=metric, ablation=ablation, batch_size=batch_size)
    m = circuit_metric(model, dataset, circuit, metric=metric, ablation=ablation, batch_size=batch_size)
    return base.faithfulness(m)


def evaluate_circuit(model: "HookedTransformer", dataset: "PromptPairs", circuit: "Circuit", *, metric: Any = None,
                     ablation: str = "patch", batch_size: int = 32, base: Baselines | None = None,
                     split: str | None = None) -> "Circuit":
    """The circuit with ``faithfulness``, ``m_circuit``, ``m_full``, ``m_empty`` added to its scores, and ``split``
    (``in_sample`` / ``held_out`` — :mod:`circuitdb.circuits.splits` — or ``unspecified``); the same numbers are
    kept per split under ``scores["by_split"][split]``, so in-sample and held-out results live side by side."""
    base = base or baselines(model, dataset, metric=metric, ablation=ablation, batch_size=batch_size)
    m = circuit_metric(model, dataset, circuit, metric=metric, ablation=ablation, batch_size=batch_size)
    split = split or "unspecified"
    res = {"faithfulness": base.faithfulness(m), "m_circuit": m, "m_full": base.full, "m_empty": base.empty,
           "ablation": ablation, "dataset": getattr(dataset, "name", "custom"), "n_examples": len(dataset)}
    by_split = {**circuit.scores.get("by_split", {}), split: res}
    return circuit.with_scores(**res, split=split, by_split=by_split)


def faithfulness_curve(model: "HookedTransformer", dataset: "PromptPairs", graph: AttributionGraph, *,
                       sizes: Iterable[float] = MIB_SIZES, method: str = "topn", metric: Any = None,
                       ablation: str = "patch", batch_size: int = 32, base: Baselines | None = None,
                       **prune_params: Any) -> FaithfulnessCurve:
    """Faithfulness of the circuits of ``graph`` at each size (percent of edges), chosen by ``method``
    (``topn`` or ``greedy``, with ``n`` = the size in edges), for CPR / CMD."""
    if method not in ("topn", "greedy"):
        raise ConfigError(f"faithfulness_curve sizes circuits by edge count; method must be one of greedy, topn, got {method!r}")
    base = base or baselines(model, dataset, metric=metric, ablation=ablation, batch_size=batch_size)
    pts = []
    for pct in sizes:
        if not 0 < pct <= 100:
            raise ConfigError(f"circuit size {pct!r} must be a percentage in (0, 100]")
        n = max(1, math.ceil(graph.n_edges * pct / 100))
        res = prune_result(graph, method, n=n, **prune_params)
        m = circuit_metric(model, dataset, res.subgraph(), metric=metric, ablation=ablation, batch_size=batch_size)
        pts.append(CurvePoint(float(pct), res.n_edges / max(graph.n_edges, 1), res.n_edges, base.faithfulness(m), m))
        log.info("size %5.1f%%: %d edges, faithfulness %.3f", pct, res.n_edges, pts[-1].faithfulness)
    return FaithfulnessCurve(tuple(pts), base, method, dict(prune_params))


# ------------------------------------------------------------------------------------------- ground truth
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (ties count half)."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(f"ROC AUC needs both positives and negatives; got {n_pos} positive, {n_neg} negative")
    r = _average_ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    out = np.empty(len(x))
    out[order] = np.repeat(avg, ends - starts)
    return out


def node_scores(graph: AttributionGraph, how: str = "abs_sum") -> np.ndarray:
    """Per-node score: ``abs_sum`` (Σ |weight| of in- and out-edges), ``abs_max`` or ``influence``."""
    a = np.abs(graph.weight)
    if how == "abs_sum":
        return np.bincount(graph.src, a, graph.n_nodes) + np.bincount(graph.dst, a, graph.n_nodes)
    if how == "abs_max":
        out = np.zeros(graph.n_nodes)
        np.maximum.at(out, graph.src, a)
        np.maximum.at(out, graph.dst, a)
        return out
    if how == "influence":
        return influence(graph, normalised_weights(graph, np.ones(graph.n_edges, bool)), logit_weights(graph))
    raise ConfigError(f"unknown node score {how!r}; valid options: abs_max, abs_sum, influence")


def roc_auc_nodes(graph: AttributionGraph, truth: Iterable[str], how: str = "abs_sum",
                  kinds: Iterable[str] = ("head", "mlp", "feature")) -> float:
    """ROC AUC of node scores against ground-truth node keys, over nodes of ``kinds`` plus the kinds of the truth
    nodes themselves (a truth set that names the embedding ``E`` or ``LOGITS`` ranks those kinds too)."""
    truth = {str(t) for t in truth}
    unknown = truth - set(graph.keys.tolist())
    if unknown:
        raise ConfigError(f"ground-truth node(s) {sorted(unknown)[:5]} are not nodes of graph {graph.id!r}")
    node_kinds = graph.nodes["kind"].to_numpy()
    ranked = set(kinds) | set(node_kinds[np.isin(graph.keys, list(truth))].tolist())
    k = np.isin(node_kinds, list(ranked))
    labels = np.isin(graph.keys, list(truth))
    return roc_auc(node_scores(graph, how)[k], labels[k])


def roc_auc_edges(graph: AttributionGraph, truth: Iterable[tuple]) -> float:
    """ROC AUC of |edge weight| against ground-truth edges.

    ``truth`` holds ``(source key, target key, channel)`` triples (channel ``""``, ``q``, ``k`` or ``v``): each
    stored edge is ranked on its own, so the q/k/v edges of one pair count separately. With ``(source, target)``
    pairs the ranking is over pairs instead: parallel channel edges collapse to one pair scored by their largest
    |weight|. Mixing the two forms, unknown channels and edges not in the graph raise ConfigError."""
    truth = [tuple(t) for t in truth]
    sizes = {len(t) for t in truth}
    if not truth or not sizes <= {2, 3} or len(sizes) != 1:
        raise ConfigError("truth must be a non-empty list of (source, target) pairs or of (source, target, channel) "
                          f"triples, one form only; got sizes {sorted(sizes)}")
    keys = graph.keys
    src, dst = keys[graph.src], keys[graph.dst]
    a = np.abs(graph.weight)
    if sizes == {3}:
        bad = sorted({str(t[2]) for t in truth} - set(CHANNELS))
        if bad:
            raise ConfigError(f"unknown channel(s) {bad} in truth; valid channels: {', '.join(map(repr, CHANNELS))}")
        code = {c: i for i, c in enumerate(CHANNELS)}
        want = {(str(s), str(t), code[str(c)]) for s, t, c in truth}
        have = set(zip(src.tolist(), dst.tolist(), graph.channel.tolist()))
        missing = want - have
        if missing:
            raise ConfigError(f"ground-truth edge(s) {sorted(missing)[:3]} are not edges of graph {graph.id!r}")
        labels = np.fromiter(((s, t, c) in want for s, t, c in zip(src, dst, graph.channel.tolist())), bool,
                             graph.n_edges)
        return roc_auc(a, labels)
    import pandas as pd

    pairs = pd.DataFrame({"s": src, "t": dst, "a": a}).groupby(["s", "t"], sort=True)["a"].max()
    want = {(str(s), str(t)) for s, t in truth}
    missing = want - set(pairs.index)
    if missing:
        raise ConfigError(f"ground-truth edge(s) {sorted(missing)[:3]} are not edges of graph {graph.id!r}")
    labels = np.fromiter((p in want for p in pairs.index), bool, len(pairs))
    return roc_auc(pairs.to_numpy(), labels)


# ------------------------------------------------------------------------------------------- feature graphs
def _collapsed(graph: AttributionGraph) -> AttributionGraph:
    if not (graph.nodes["kind"].to_numpy() == "head").any():
        return graph
    from circuitdb.attribution.feature_heads import collapse_heads  # imports torch: only for graphs with heads

    return collapse_heads(graph)


def graph_scores(graph: AttributionGraph) -> dict[str, float]:
    """circuit-tracer's replacement and completeness scores of a feature graph (or of a pruned feature circuit).

    Head nodes (each a part of edges into one target) are collapsed back into plain edges first
    (:func:`circuitdb.attribution.feature_heads.collapse_heads`); frozen-MLP nodes count as errors (as in
    :mod:`circuitdb.attribution.features`)."""
    return plain_graph_scores(_collapsed(graph))


def feature_ablation_effect(graph: AttributionGraph, keep: "Circuit | np.ndarray | Iterable[str]") -> "pd.DataFrame":
    """Logit effect of ablating every node outside a feature circuit, in the frozen replacement model linearised at
    the clean run (attention patterns, LayerNorm scales and the features' on/off gates frozen), computed on the graph.

    Edges are exact direct effects ``A[s→t] = a_s · (…)`` on the target's pre-activation (DESIGN.md), so zeroing a
    source ``s`` changes each active feature ``t`` by ``Σ_s δ_s A[s→t]`` and, relative to its activation ``a_t``,
    scales ``t``'s own out-edges: ``δ_t = Σ_s δ_s A[s→t] / a_t``, with ``δ = −1`` for ablated nodes, ``0`` for kept
    tokens / errors / frozen MLPs. Head nodes are collapsed into plain edges first. Returns one row per logit:
    ``clean`` (Σ of its in-edges, the centred logit the graph explains), ``ablated``, ``retained = ablated / clean``.
    Exact for the frozen, gate-fixed model when the graph holds every active feature; approximate for graphs capped
    by ``max_feature_nodes``.
    """
    import pandas as pd

    if hasattr(keep, "node_keys"):  # a Circuit
        keep = keep.node_keys
    if isinstance(keep, np.ndarray) and keep.dtype == bool:
        if keep.shape != (graph.n_nodes,):
            raise ConfigError(f"keep mask has shape {keep.shape}; expected ({graph.n_nodes},)")
        keep = graph.keys[keep]
    graph = _collapsed(graph)
    kinds = graph.nodes["kind"].to_numpy()
    keep_mask = np.isin(graph.keys, [str(k) for k in keep])
    logit = kinds == "logit"
    if not logit.any():
        raise ConfigError(f"graph {graph.id!r} has no logit node")
    src, dst, w = graph.src, graph.dst, graph.weight
    act = graph.nodes["activation"].to_numpy()
    responsive = (kinds == "feature") & keep_mask & np.isfinite(act) & (act != 0)
    fixed = np.where(keep_mask | logit, 0.0, -1.0)
    delta = fixed.copy()
    for _ in range(graph.n_nodes + 1):
        into = np.bincount(dst, weights=delta[src] * w, minlength=graph.n_nodes)
        new = fixed.copy()
        new[responsive] = into[responsive] / act[responsive]
        if np.allclose(new, delta, rtol=0, atol=1e-12):
            break
        delta = new
    else:  # pragma: no cover - a cyclic graph
        raise ConfigError(f"graph {graph.id!r} has a cycle: the ablation effect does not settle")
    clean = np.bincount(dst, weights=w, minlength=graph.n_nodes)
    change = np.bincount(dst, weights=delta[src] * w, minlength=graph.n_nodes)
    idx = np.flatnonzero(logit)
    out = pd.DataFrame({"logit": graph.keys[idx], "clean": clean[idx], "ablated": clean[idx] + change[idx]})
    out["retained"] = out["ablated"] / out["clean"].where(out["clean"] != 0)
    return out
