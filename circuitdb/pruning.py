"""Pruning an :class:`~circuitdb.graph.AttributionGraph`: pure, vectorised numpy functions of the graph alone.

This module sits just above :mod:`circuitdb.graph` (it imports nothing else of circuitdb but errors), so attribution
can prune before it stores and circuits/evaluation share one implementation of influence and the dead-end rule.
:mod:`circuitdb.circuits.prune` turns a :class:`PruneResult` into a :class:`~circuitdb.circuits.circuit.Circuit`.

Conventions (stated once):
- Edges are the graph's parallel arrays ``src → dst`` (row positions); an edge's weight is the attribution of the
  target's quantity to the source. "Row" of the adjacency matrix = target, "column" = source (circuit-tracer's
  convention): ``A[t, s] = weight(s → t)``, parallel edges (q/k/v channels of one pair) summed where a matrix is needed.
- Always-kept nodes: ``embed`` (tokens) and ``logit`` nodes. Dead-end rule: every other node needs a kept outgoing
  edge; ``head``/``mlp``/``feature`` nodes also need a kept incoming edge (``error`` nodes have no inputs by
  construction). The rule is applied until nothing changes. In per-position *component* graphs a head's nodes
  ``A{l}.{h}@{pos}`` count as one unit for this rule and for influence (attention carries a k/v input at one
  position to the head's output at another; see :func:`head_groups`).
- Every pruner returns a :class:`PruneResult` (``node_mask``, ``edge_mask`` over the input graph's rows and edges,
  cumulative scores, method, params); ``Circuit.from_prune(result)`` turns it into a circuit.

Methods:
- ``influence`` (circuit-tracer's ``prune_graph``): normalise |A| by row (L1), node influence
  ``I = w·(Â + Â² + …)`` from the logit weights ``w`` (the logits' ``probability``, uniform when missing); keep nodes
  whose influence reaches the ``node_threshold`` fraction of total influence; recompute on the node-pruned matrix
  and score each edge ``Â'[t, s] · (I'[t] + w[t])``; keep edges up to ``edge_threshold`` of total edge score; then
  dead-end removal.
- ``auto`` (the default): :func:`default_method` — ``influence`` for feature graphs, ``greedy`` to 5% of the edges
  for component graphs.
- ``topn``: the ``n`` edges of largest |weight| (signed weight when ``absolute=False``), then dead-end removal.
- ``threshold``: edges with |weight| ≥ ``threshold``, then dead-end removal.
- ``greedy`` (EAP-IG's ``apply_greedy``): start from the logits; repeatedly add the best-scoring edge whose target
  is already in the circuit, adding its source; ``n`` edges; then dead-end removal.
- ``dead_ends``: dead-end removal alone (all edges, or a given edge mask).
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from jaxtyping import Bool, Float

from circuitdb.errors import ConfigError, one_of
from circuitdb.graph import AttributionGraph

log = logging.getLogger(__name__)

ALWAYS_KEPT = ("embed", "logit")
NEEDS_INPUT = ("head", "mlp", "feature")
ERROR_KINDS = ("error", "mlp")  # frozen MLPs count as errors in the graph scores


@dataclass(frozen=True, eq=False)
class PruneResult:
    """Masks over the input graph (nodes by row, edges by position) and the cumulative scores that produced them.

    ``node_scores``: for ``influence``, each node's cumulative fraction of total influence when nodes are ranked by
    influence (circuit-tracer's ``cumulative_scores``); for edge methods, the cumulative edge fraction at which the
    node first enters. ``edge_scores``: each edge's cumulative fraction of the total edge score (NaN where the method
    never ranked it). ``node_influence`` is set by ``influence``.
    """

    graph: AttributionGraph
    node_mask: Bool[np.ndarray, " n_nodes"]
    edge_mask: Bool[np.ndarray, " n_edges"]
    node_scores: Float[np.ndarray, " n_nodes"]
    edge_scores: Float[np.ndarray, " n_edges"]
    method: str
    params: dict = field(default_factory=dict)
    node_influence: Float[np.ndarray, " n_nodes"] | None = None

    @property
    def n_nodes(self) -> int:
        return int(self.node_mask.sum())

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum())

    def subgraph(self) -> AttributionGraph:
        """The pruned graph (kept nodes and edges), with ``influence`` filled in where it was computed."""
        g = self.graph
        if self.node_influence is not None:
            nodes = g.nodes.copy()
            nodes["influence"] = self.node_influence
            g = AttributionGraph(nodes, g.src, g.dst, g.weight, g.channel, g.meta, validate=False)
        return g.subgraph(self.edge_mask, self.node_mask)



# ----------------------------------------------------------------------------------------------- helpers
def _kind_masks(graph: AttributionGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kinds = graph.nodes["kind"].to_numpy()
    return np.isin(kinds, ALWAYS_KEPT), np.isin(kinds, NEEDS_INPUT), kinds == "logit"


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1]; got {value!r}")
    return float(value)


def _check_count(name: str, value: Any, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer; got {value!r}")
    return int(min(value, upper))


def remove_dead_ends_masks(
    graph: AttributionGraph, edge_mask: np.ndarray, node_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the dead-end rule (module docstring) until it stops changing; returns new (node_mask, edge_mask)."""
    keep_always, needs_in, _ = _kind_masks(graph)
    n = graph.n_nodes
    group = head_groups(graph)
    nodes = np.ones(n, bool) if node_mask is None else np.asarray(node_mask, bool).copy()
    nodes |= keep_always
    edges = np.asarray(edge_mask, bool) & nodes[graph.src] & nodes[graph.dst]
    idx = np.flatnonzero(edges)
    src, dst = graph.src[idx], graph.dst[idx]
    while True:
        has_out = (np.bincount(group[src], minlength=n) > 0)[group]
        has_in = (np.bincount(group[dst], minlength=n) > 0)[group]
        new = nodes & (keep_always | (has_out & (has_in | ~needs_in)))
        alive = new[src] & new[dst]
        if new.sum() == nodes.sum() and alive.all():
            break
        nodes = new
        idx, src, dst = idx[alive], src[alive], dst[alive]
    out = np.zeros(graph.n_edges, bool)
    out[idx] = True
    return nodes, out


def head_groups(graph: AttributionGraph) -> np.ndarray:
    """Node → group for the dead-end rule. Per-position *component* graphs split a head into ``A{l}.{h}@{pos}`` nodes
    whose edges stay at one position, but attention moves signal across positions: the k/v input of ``A1.2@16`` acts
    through the output ``A1.2@31``. There the head's nodes form one group (alive if the head has a kept input and a
    kept output at any positions). Everywhere else each node is its own group."""
    group = np.arange(graph.n_nodes)
    nd = graph.nodes
    heads = (nd["kind"].to_numpy() == "head") & (nd["pos"].to_numpy() >= 0)
    if graph.meta.get("granularity") != "component" or not heads.any():
        return group
    unit = nd["layer"].to_numpy()[heads] * 100_003 + nd["head"].to_numpy()[heads]
    _, first = np.unique(unit, return_index=True)
    rows = np.flatnonzero(heads)
    group[rows] = rows[first][np.searchsorted(np.unique(unit), unit)]
    return group


def _cumulative(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order descending, cumulative fraction per element in input order)."""
    order = np.argsort(-scores, kind="stable")
    total = scores.sum()
    cum = np.cumsum(scores[order]) / (total if total > 0 else 1.0)
    out = np.empty_like(cum)
    out[order] = cum
    return order, out


def find_threshold(scores: np.ndarray, threshold: float) -> float:
    """The score above which the top elements hold ``threshold`` of the total (circuit-tracer's ``find_threshold``)."""
    if len(scores) == 0:
        return np.inf
    s = np.sort(scores)[::-1]
    total = s.sum()
    if total <= 0:
        return np.inf
    cum = np.cumsum(s) / total
    i = min(int(np.searchsorted(cum, threshold)), len(s) - 1)
    return float(s[i])


def logit_weights(graph: AttributionGraph) -> Float[np.ndarray, " n_nodes"]:
    """Weights of the logit nodes: their ``probability`` (NaN → uniform over logits); zero elsewhere."""
    is_logit = graph.nodes["kind"].to_numpy() == "logit"
    w = np.zeros(graph.n_nodes)
    if not is_logit.any():
        raise ConfigError(f"graph {graph.id!r} has no logit node; influence pruning and greedy growth start from logits")
    p = graph.nodes["probability"].to_numpy()[is_logit]
    w[is_logit] = np.where(np.isnan(p), 1.0 / is_logit.sum(), p) if not np.isnan(p).all() else 1.0 / is_logit.sum()
    return w


def normalised_weights(graph: AttributionGraph, edges: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """Â per edge: |w| divided by the L1 norm of its target's kept in-edges (clamped at 1e-10); 0 for dropped edges.
    With ``group`` (see :func:`head_groups`) a grouped head's in-edges at all positions share one norm."""
    g = np.arange(graph.n_nodes) if group is None else group
    a = np.where(edges, np.abs(graph.weight), 0.0)
    rows = np.bincount(g[graph.dst], weights=a, minlength=graph.n_nodes)
    return a / np.maximum(rows, 1e-10)[g[graph.dst]]


def grouped(x: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """Sum ``x`` onto each group's representative node (identity without groups)."""
    return x if group is None else np.bincount(group, weights=x, minlength=len(x))


def influence(graph: AttributionGraph, a_hat: np.ndarray, w: np.ndarray, max_iter: int | None = None,
              group: np.ndarray | None = None) -> np.ndarray:
    """``I = Σ_{k≥1} (Âᵀ)^k w`` by propagation from targets to sources until it vanishes (a DAG) or ``max_iter``.
    With ``group`` a grouped head passes its total influence (all positions) back through all its in-edges.
    The one implementation of influence: pruning, node scores and graph scores all call it (the feature engine's
    dense row blocks through :func:`propagate`)."""
    n = graph.n_nodes
    keep = a_hat != 0
    src, a = graph.src[keep], a_hat[keep]
    cols = graph.dst[keep] if group is None else group[graph.dst[keep]]
    step = lambda x: np.bincount(src, weights=a * x[cols], minlength=n)  # noqa: E731 - (Âᵀ x)[s]
    return propagate(step, w, n, max_iter, group, f"graph {graph.id!r}")


def propagate(step: Callable[[np.ndarray], np.ndarray], w: np.ndarray, n: int, max_iter: int | None = None,
              group: np.ndarray | None = None, what: str = "the graph") -> np.ndarray:
    """The influence series ``Σ_{k≥1} step^k(w)`` for any ``step(x) = Âᵀ x`` (edge arrays or dense row blocks)."""
    cur = step(np.asarray(w, dtype=np.float64))
    total = cur.copy()
    limit = max_iter or n + 1
    for _ in range(limit):
        if not cur.any():
            return total
        cur = step(grouped(cur, group))
        total += cur
    raise ConfigError(f"influence did not converge after {limit} steps: {what} has a cycle")


def scores_from(infl: np.ndarray, w: np.ndarray, kinds: np.ndarray, error_share: np.ndarray) -> dict[str, float]:
    """circuit-tracer's replacement and completeness from node influence ``infl``, target weights ``w``, node kinds and
    each node's share of normalised in-weight from error nodes (``error``/``mlp``; 0 for nodes without in-edges)."""
    err = np.isin(kinds, ERROR_KINDS)
    if not err.any():
        return {"replacement": 1.0, "completeness": 1.0}
    tok, e_inf = infl[kinds == "embed"].sum(), infl[err].sum()
    replacement = float(tok / (tok + e_inf)) if tok + e_inf > 0 else float("nan")
    out = infl + w
    return {"replacement": replacement, "completeness": float(((1.0 - error_share) * out).sum() / max(out.sum(), 1e-30))}


def graph_scores(graph: AttributionGraph) -> dict[str, float]:
    """:func:`scores_from` of a plain feature graph (no head nodes) over all its edges."""
    kinds = graph.nodes["kind"].to_numpy()
    a_hat = normalised_weights(graph, np.ones(graph.n_edges, bool))
    w = logit_weights(graph)
    err = np.isin(kinds, ERROR_KINDS)
    from_err = np.bincount(graph.dst, np.where(err[graph.src], a_hat, 0.0), graph.n_nodes)
    return scores_from(influence(graph, a_hat, w), w, kinds, from_err)


# ----------------------------------------------------------------------------------------------- pruners
def influence_prune(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    """circuit-tracer's influence pruning (module docstring), then repeated dead-end removal."""
    return influence_prune_given(graph, None, node_threshold, edge_threshold)


def influence_prune_given(graph: AttributionGraph, node_influence: np.ndarray | None, node_threshold: float = 0.8,
                          edge_threshold: float = 0.98) -> PruneResult:
    """:func:`influence_prune` with the first pass's node influence given (``None``: computed here). The feature
    engine knows it from its dense rows and passes only the edges among nodes above the node threshold."""
    node_threshold = _check_fraction("node_threshold", node_threshold)
    edge_threshold = _check_fraction("edge_threshold", edge_threshold)
    keep_always, _, _ = _kind_masks(graph)
    w = logit_weights(graph)
    group = head_groups(graph)
    group = None if (group == np.arange(graph.n_nodes)).all() else group
    if node_influence is None:
        infl = influence(graph, normalised_weights(graph, np.ones(graph.n_edges, bool), group), w, group=group)
    else:
        infl = np.asarray(node_influence, dtype=np.float64)
    node_mask = (infl >= find_threshold(infl, node_threshold)) | keep_always
    if group is not None:  # a kept head keeps its nodes at every position (their inputs act through attention)
        node_mask = (grouped(node_mask.astype(float), group) > 0)[group]
    cand = node_mask[graph.src] & node_mask[graph.dst]
    a_hat = normalised_weights(graph, cand, group)
    pruned_infl = influence(graph, a_hat, w, group=group)
    reach = grouped(pruned_infl + w, group)
    edge_score = a_hat * reach[graph.dst if group is None else group[graph.dst]]
    edge_mask = cand & (edge_score >= find_threshold(edge_score[cand], edge_threshold))
    node_mask, edge_mask = remove_dead_ends_masks(graph, edge_mask, node_mask)
    _, node_cum = _cumulative(infl)
    _, edge_cum = _cumulative(edge_score)
    params = {"node_threshold": node_threshold, "edge_threshold": edge_threshold}
    log.debug("influence pruning kept %d/%d nodes, %d/%d edges", node_mask.sum(), graph.n_nodes, edge_mask.sum(),
              graph.n_edges)
    return PruneResult(graph, node_mask, edge_mask, node_cum, edge_cum, "influence", params, infl)


def _edge_method_result(graph: AttributionGraph, edge_mask: np.ndarray, edge_cum: np.ndarray, method: str,
                        params: dict) -> PruneResult:
    picked = int(np.asarray(edge_mask, bool).sum())
    node_mask, edge_mask = remove_dead_ends_masks(graph, edge_mask)
    if picked and not edge_mask.any():
        log.warning("%s pruning of graph %r: all %d chosen edges were dead ends (no path from a token to a logit); "
                    "the circuit is empty — choose more edges", method, graph.id, picked)
    # a node enters at the smallest cumulative score of its edges: assign in descending order, the last write wins
    ranked = np.flatnonzero(~np.isnan(edge_cum))
    ranked = ranked[np.argsort(-edge_cum[ranked], kind="stable")]
    enter = np.full(graph.n_nodes, np.inf)
    enter_dst = np.full(graph.n_nodes, np.inf)
    enter[graph.src[ranked]] = edge_cum[ranked]
    enter_dst[graph.dst[ranked]] = edge_cum[ranked]
    enter = np.minimum(enter, enter_dst)
    enter[graph.nodes["kind"].to_numpy() == "logit"] = 0.0
    enter[np.isinf(enter)] = 1.0
    return PruneResult(graph, node_mask, edge_mask, enter, edge_cum, method, params)


def topn_prune(graph: AttributionGraph, n: int, absolute: bool = True) -> PruneResult:
    """The ``n`` strongest edges (|weight|, or signed weight when ``absolute=False``), then dead-end removal."""
    n = _check_count("n", n, graph.n_edges)
    score = np.abs(graph.weight) if absolute else graph.weight
    order, cum = _cumulative(score if absolute else np.maximum(score, 0.0))
    if not absolute:  # the ranking is by signed weight; the cumulative share counts the positive part
        order = np.argsort(-score, kind="stable")
    mask = np.zeros(graph.n_edges, bool)
    mask[order[:n]] = True
    return _edge_method_result(graph, mask, cum, "topn", {"n": n, "absolute": bool(absolute)})


def threshold_prune(graph: AttributionGraph, threshold: float = 0.0) -> PruneResult:
    """Edges with |weight| ≥ ``threshold``, then dead-end removal."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < np.inf:
        raise ConfigError(f"threshold must be a finite non-negative number; got {threshold!r}")
    a = np.abs(graph.weight)
    _, cum = _cumulative(a)
    return _edge_method_result(graph, a >= threshold, cum, "threshold", {"threshold": float(threshold)})


def greedy_prune(graph: AttributionGraph, n: int, absolute: bool = True) -> PruneResult:
    """EAP-IG's greedy growth from the logits (module docstring): ``n`` edges, then dead-end removal. In per-position
    component graphs a head enters with all its positions (:func:`head_groups`): once ``A1.2@31`` is in the circuit,
    the k/v edges into ``A1.2@16`` are candidates too."""
    n = _check_count("n", n, graph.n_edges)
    score = np.abs(graph.weight) if absolute else graph.weight
    # in-edges of every node, sorted by descending score (a CSR over targets); python lists for the heap loop
    o1 = np.argsort(-score, kind="stable")
    order = o1[np.argsort(graph.dst[o1], kind="stable")]
    starts = np.searchsorted(graph.dst[order], np.arange(graph.n_nodes + 1)).tolist()
    neg_sorted = (-score[order]).tolist()
    src_sorted = graph.src[order].tolist()
    in_graph = graph.nodes["kind"].to_numpy() == "logit"
    if not in_graph.any():
        raise ConfigError(f"graph {graph.id!r} has no logit node; greedy growth starts from the logits")
    group = head_groups(graph)
    members: dict[int, list[int]] = {}
    for node, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(node)
    seen = [False] * graph.n_nodes
    heap: list[tuple[float, int, int]] = []  # (-score, position in `order`, end of that node's run)

    def enter(node: int) -> None:
        for m in members[int(group[node])]:
            if not seen[m]:
                seen[m] = True
                if starts[m] < starts[m + 1]:
                    heapq.heappush(heap, (neg_sorted[starts[m]], starts[m], starts[m + 1]))

    for node in np.flatnonzero(in_graph).tolist():
        enter(node)
    picked: list[int] = []
    while len(picked) < n and heap:
        _, pos, end = heapq.heappop(heap)
        picked.append(pos)
        if pos + 1 < end:
            heapq.heappush(heap, (neg_sorted[pos + 1], pos + 1, end))
        enter(src_sorted[pos])
    chosen = order[np.asarray(picked, dtype=np.int64)]
    mask = np.zeros(graph.n_edges, bool)
    mask[chosen] = True
    cum = np.full(graph.n_edges, np.nan)
    a = np.abs(graph.weight)
    total = a.sum()
    cum[chosen] = np.cumsum(a[chosen]) / (total if total > 0 else 1.0)
    return _edge_method_result(graph, mask, cum, "greedy", {"n": n, "absolute": bool(absolute)})


def dead_end_prune(graph: AttributionGraph, edge_mask: np.ndarray | None = None) -> PruneResult:
    """Dead-end removal alone, over all edges or ``edge_mask``."""
    mask = np.ones(graph.n_edges, bool) if edge_mask is None else np.asarray(edge_mask, bool)
    if mask.shape != (graph.n_edges,):
        raise ConfigError(f"edge_mask has shape {mask.shape}; expected ({graph.n_edges},)")
    _, cum = _cumulative(np.abs(graph.weight))
    return _edge_method_result(graph, mask, cum, "dead_ends", {})


PRUNERS: dict[str, Callable[..., PruneResult]] = {
    "influence": influence_prune,
    "topn": topn_prune,
    "threshold": threshold_prune,
    "greedy": greedy_prune,
    "dead_ends": dead_end_prune,
}


DEFAULT_EDGE_FRACTION = 0.05  # component graphs by default: greedy growth to 5% of the edges (a mid MIB size)


def default_method(graph: AttributionGraph) -> tuple[str, dict[str, Any]]:
    """The pruning a graph gets when none is named: ``influence`` for feature graphs (circuit-tracer's default),
    ``greedy`` with ``n`` = :data:`DEFAULT_EDGE_FRACTION` of the edges for component graphs (influence pruning keeps
    only a handful of edges there)."""
    if graph.meta.get("granularity") == "feature":
        return "influence", {}
    return "greedy", {"n": max(1, int(np.ceil(DEFAULT_EDGE_FRACTION * graph.n_edges)))}


def prune_result(graph: AttributionGraph, method: str | None = "auto", **params: Any) -> PruneResult:
    """Dispatch to a pruner by name (``auto``/None: :func:`default_method`); unknown names and parameters, and a
    missing required one (``n`` of topn/greedy), raise ConfigError."""
    import inspect

    if method in (None, "auto"):
        method, defaults = default_method(graph)
        params = {**defaults, **params}
    fn = PRUNERS.get(method)
    if fn is None:
        raise ConfigError(one_of(method, [*PRUNERS, "auto"], "pruning method"))
    sig = inspect.signature(fn).parameters
    valid = [p for p in sig if p != "graph"]
    bad = [k for k in params if k not in valid]
    if bad:
        raise ConfigError(f"unknown parameter(s) {bad} for pruning method {method!r}; valid: {', '.join(valid) or 'none'}")
    missing = [p for p in valid if sig[p].default is inspect.Parameter.empty and p not in params]
    if missing:
        raise ConfigError(f"pruning method {method!r} needs {', '.join(f'{m}=' for m in missing)} (n: the number of "
                          f"edges to keep, of {graph.n_edges})")
    return fn(graph, **params)

