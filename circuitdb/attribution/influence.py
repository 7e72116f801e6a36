"""Influence (circuit-tracer's): the one implementation, used by feature attribution, pruning, graph scores and
evaluation.

Conventions (stated once):
- ``A[t, s]`` = weight of the edge ``s → t`` (row = target, column = source); parallel edges of one pair add up.
- ``Â`` = ``|A|`` normalised by row (L1 norm of the target's in-edges, clamped at 1e-10). With ``w`` the target weights
  (the logits' probabilities), a node's influence is ``I = Σ_{k≥1} (Âᵀ)^k w``: the share of the weighted targets that
  flows back through it. The series ends on a DAG; a cycle raises ConfigError.
- Two storage forms share that series (:func:`influence`): :class:`EdgeAdjacency` (edge arrays; circuits, evaluation)
  and :class:`RowBlocks` (dense row blocks of the attribution engine, before any edge list exists). Either gives
  ``step(x)[s] = Σ_t x[t] Â[t, s]``.
- Optional ``group`` (node → representative node): a grouped node passes its total influence back through all its
  group's in-edges (per-position component graphs, where attention moves a head's input to another position).
- Scores (circuit-tracer's ``compute_graph_scores``): replacement = token influence / (token + error influence);
  completeness = influence-weighted mean over nodes of the share of normalised in-weight not from errors. Frozen MLPs
  count as errors.
- Influence pruning (circuit-tracer's ``prune_graph``): keep nodes up to ``node_threshold`` of total influence (tokens
  and logits always); recompute influence on the node-pruned matrix; score each edge ``Â'[t, s] · (I'[t] + w[t])``; keep
  edges up to ``edge_threshold`` of the total edge score; then the dead-end rule (:func:`dead_end_masks`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitdb.errors import ConfigError

ALWAYS_KEPT = ("embed", "logit")
NEEDS_INPUT = ("head", "mlp", "feature")
ERROR_KINDS = ("error", "mlp")
_CHUNK = 2048


def _grouped(x: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """Sum ``x`` onto each group's representative node (identity without groups)."""
    return x if group is None else np.bincount(group, weights=x, minlength=len(x))


class EdgeAdjacency:
    """``Â`` of edge arrays (``mask`` selects the edges that count; the rest are absent)."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int,
                 mask: np.ndarray | None = None, group: np.ndarray | None = None) -> None:
        self.n_nodes, self.group, self.src, self.dst = n_nodes, group, src, dst
        g = np.arange(n_nodes) if group is None else group
        a = np.abs(weight) if mask is None else np.where(mask, np.abs(weight), 0.0)
        rows = np.bincount(g[dst], weights=a, minlength=n_nodes)
        self.a_hat = a / np.maximum(rows, 1e-10)[g[dst]]
        keep = self.a_hat != 0
        cols = dst[keep] if group is None else group[dst[keep]]
        self._m = sp.csr_matrix((self.a_hat[keep], (src[keep], cols)), shape=(n_nodes, n_nodes))

    def step(self, x: np.ndarray) -> np.ndarray:
        return self._m @ _grouped(x, self.group)

    def error_share(self, err: np.ndarray) -> np.ndarray:
        """Per node: the share of its normalised in-weight from ``err`` nodes (0 without in-edges)."""
        return np.bincount(self.dst, np.where(err[self.src], self.a_hat, 0.0), self.n_nodes)


class RowBlocks:
    """``Â`` of dense row blocks ``(rows [n, n_cols], row_node [n])``: row ``i`` holds the in-edges of node
    ``row_node[i]`` over source nodes ``0..n_cols-1``. Processed in row chunks (no copy of the whole matrix)."""

    def __init__(self, blocks: list[tuple[Tensor, Tensor]], n_nodes: int) -> None:
        self.blocks, self.n_nodes = blocks, n_nodes
        self._sums = [r.abs().sum(1).double().clamp_min(1e-10) for r, _ in self._chunks()]

    def _chunks(self):  # noqa: ANN202
        for rows, row_node in self.blocks:
            for i in range(0, len(rows), _CHUNK):
                yield rows[i: i + _CHUNK], row_node[i: i + _CHUNK]

    def step(self, x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float64)
        out = torch.zeros(self.n_nodes, dtype=torch.float64)
        for (r, rn), sm in zip(self._chunks(), self._sums):
            w = xt[rn] / sm
            if bool(w.any()):
                out[: r.shape[1]] += (w.to(r.dtype) @ r.abs()).double()
        return out.numpy()

    def error_share(self, err: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_nodes)
        for r, rn in self._chunks():
            a = r.abs()
            cols = torch.as_tensor(err[: r.shape[1]])
            out[rn.numpy()] = (a[:, cols].sum(1) / a.sum(1).clamp_min(1e-10)).double().numpy()
        return out


def influence(adj: "EdgeAdjacency | RowBlocks", w: Float[np.ndarray, " n_nodes"],
              max_iter: int | None = None) -> Float[np.ndarray, " n_nodes"]:
    """``I = Σ_{k≥1} (Âᵀ)^k w`` (module docstring), by propagation from the targets until it vanishes."""
    cur = adj.step(np.asarray(w, dtype=np.float64))
    total = cur.copy()
    limit = max_iter or adj.n_nodes + 1
    for _ in range(limit):
        if not cur.any():
            return total
        cur = adj.step(cur)
        total += cur
    raise ConfigError(f"influence did not converge after {limit} steps: the graph has a cycle")


def graph_scores(adj: "EdgeAdjacency | RowBlocks", w: np.ndarray, kinds: np.ndarray,
                 infl: np.ndarray | None = None) -> dict[str, float]:
    """Replacement and completeness (module docstring) of the graph ``adj`` with node kinds ``kinds``."""
    err = np.isin(kinds, ERROR_KINDS)
    if not err.any():
        return {"replacement": 1.0, "completeness": 1.0}
    infl = influence(adj, w) if infl is None else infl
    tok, e_inf = infl[kinds == "embed"].sum(), infl[err].sum()
    replacement = float(tok / (tok + e_inf)) if tok + e_inf > 0 else float("nan")
    non_err = 1.0 - adj.error_share(err)
    out = infl + w
    return {"replacement": replacement, "completeness": float((non_err * out).sum() / max(out.sum(), 1e-30))}


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


def dead_end_masks(src: np.ndarray, dst: np.ndarray, kinds: np.ndarray, edge_mask: np.ndarray,
                   node_mask: np.ndarray | None = None, group: np.ndarray | None = None
                   ) -> tuple[Bool[np.ndarray, " n_nodes"], Bool[np.ndarray, " n_edges"]]:
    """The dead-end rule until nothing changes: tokens and logits stay; every other node needs a kept out-edge, and
    ``head``/``mlp``/``feature`` nodes a kept in-edge (``group``: a grouped node counts as one). Returns new masks."""
    keep_always, needs_in = np.isin(kinds, ALWAYS_KEPT), np.isin(kinds, NEEDS_INPUT)
    n = len(kinds)
    group = np.arange(n) if group is None else group
    nodes = np.ones(n, bool) if node_mask is None else np.asarray(node_mask, bool).copy()
    nodes |= keep_always
    edges = np.asarray(edge_mask, bool) & nodes[src] & nodes[dst]
    idx = np.flatnonzero(edges)
    s, d = src[idx], dst[idx]
    while True:
        has_out = (np.bincount(group[s], minlength=n) > 0)[group]
        has_in = (np.bincount(group[d], minlength=n) > 0)[group]
        new = nodes & (keep_always | (has_out & (has_in | ~needs_in)))
        alive = new[s] & new[d]
        if new.sum() == nodes.sum() and alive.all():
            break
        nodes = new
        idx, s, d = idx[alive], s[alive], d[alive]
    out = np.zeros(len(src), bool)
    out[idx] = True
    return nodes, out


def influence_prune_masks(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, kinds: np.ndarray, w: np.ndarray,
                          node_threshold: float = 0.8, edge_threshold: float = 0.98, *,
                          group: np.ndarray | None = None, node_influence: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Influence pruning (module docstring) of edge arrays: ``(node_mask, edge_mask, node_influence, edge_score)``.

    ``node_influence`` (of the full graph) may be given when it is known; then the edge arrays need only hold the
    edges among nodes that pass the node threshold (the attribution engine prunes before it builds the rest)."""
    n = len(kinds)
    keep_always = np.isin(kinds, ALWAYS_KEPT)
    if node_influence is None:
        node_influence = influence(EdgeAdjacency(src, dst, weight, n, group=group), w)
    node_mask = (node_influence >= find_threshold(node_influence, node_threshold)) | keep_always
    if group is not None:  # a kept grouped node keeps its whole group
        node_mask = (_grouped(node_mask.astype(float), group) > 0)[group]
    cand = node_mask[src] & node_mask[dst]
    adj = EdgeAdjacency(src, dst, weight, n, mask=cand, group=group)
    reach = _grouped(influence(adj, w) + w, group)
    edge_score = adj.a_hat * reach[dst if group is None else group[dst]]
    edge_mask = cand & (edge_score >= find_threshold(edge_score[cand], edge_threshold))
    node_mask, edge_mask = dead_end_masks(src, dst, kinds, edge_mask, node_mask, group)
    return node_mask, edge_mask, node_influence, edge_score
