"""From the attribution engine's dense row blocks to the edges a feature graph stores: pruning before storing, and
the optional full adjacency as a compact side file.

Conventions (stated once):
- Blocks are ``(rows [n, n_cols], row_node [n])`` pairs (:class:`circuitdb.attribution.influence.RowBlocks`); an
  entry ``rows[i, c] != 0`` is the edge ``c → row_node[i]``. Edges are only materialised for the rows and columns a
  node mask keeps, in row chunks, so the millions of entries that pruning drops never become an edge list.
- ``prune`` specs: ``"influence"`` (node 0.8 / edge 0.98, circuit-tracer's defaults), ``{"method": "influence",
  "node_threshold": …, "edge_threshold": …}``, ``None`` (the raw graph), or any callable ``graph → result`` whose
  result has boolean ``node_mask`` / ``edge_mask`` over the raw graph — e.g.
  ``functools.partial(circuitdb.circuits.prune.prune_result, method="topn", n=1000)`` (the attribution layer does
  not import ``circuits``; the callable brings the method).
- Side file (``adjacency=PATH``): an ``.npz`` with ``keys`` (node keys), ``src``, ``dst`` (rows of ``keys``) and
  ``weight``: every non-zero entry of the unpruned plain feature graph. ``meta["adjacency"]`` names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from circuitdb.errors import ConfigError

ADJACENCY_FORMAT = "circuitdb-adjacency-npz"
INFLUENCE_DEFAULTS = {"node_threshold": 0.8, "edge_threshold": 0.98}
_CHUNK = 512  # rows per chunk: |chunk| temporaries stay ~200 MB at 100k sources
#: RowBlocks.influence runs the series on the square block among the row nodes while it takes at most this much
SQUARE_BYTES = 2**30


def resolve_prune(prune: Any) -> "tuple[str, dict] | tuple[str, Callable] | None":
    """``("influence", params)``, ``("callable", fn)`` or None; anything else raises ConfigError naming the forms."""
    if prune is None or prune is False:
        return None
    if callable(prune):
        return "callable", prune
    spec = {"method": prune} if isinstance(prune, str) else dict(prune) if isinstance(prune, dict) else None
    if spec is None or spec.get("method", "influence") != "influence":
        raise ConfigError(
            f"prune={prune!r} is not a pruning spec; valid: 'influence', {{'method': 'influence', 'node_threshold': "
            "0.8, 'edge_threshold': 0.98}, None (raw graph), or a callable graph → PruneResult such as "
            "functools.partial(circuitdb.circuits.prune.prune_result, method='topn', n=1000)")
    spec.pop("method", None)
    bad = set(spec) - set(INFLUENCE_DEFAULTS)
    if bad:
        raise ConfigError(f"unknown influence-pruning parameter(s) {sorted(bad)}; valid: {', '.join(INFLUENCE_DEFAULTS)}")
    params = {**INFLUENCE_DEFAULTS, **spec}
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"{k} must be a number in [0, 1]; got {v!r}")
    return "influence", {k: float(v) for k, v in params.items()}


def _chunks(blocks: list[tuple[Tensor, Tensor]]):  # noqa: ANN202
    for rows, row_node in blocks:
        for i in range(0, len(rows), _CHUNK):
            yield rows[i: i + _CHUNK], row_node[i: i + _CHUNK]


class RowBlocks:
    """``Â`` (row-normalised ``|A|``) of dense row blocks, for :func:`circuitdb.pruning.propagate` (the one influence
    series) before any edge list exists; processed in row chunks, so no copy of the whole matrix is made."""

    def __init__(self, blocks: list[tuple[Tensor, Tensor]], n_nodes: int) -> None:
        self.blocks, self.n_nodes = blocks, n_nodes
        self._sums = [r.abs().sum(1).double().clamp_min(1e-10) for r, _ in _chunks(blocks)]

    def step(self, x: np.ndarray) -> np.ndarray:
        """``(Âᵀ x)[s] = Σ_t x[t] Â[t, s]``."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        out = torch.zeros(self.n_nodes, dtype=torch.float64)
        for (r, rn), sm in zip(_chunks(self.blocks), self._sums):
            w = xt[rn] / sm
            if bool(w.any()):
                out[: r.shape[1]] += (w.to(r.dtype) @ r.abs()).double()
        return out.numpy()

    def influence(self, w: np.ndarray) -> np.ndarray:
        """The influence series ``Σ_{k≥1} (Âᵀ)^k w`` (``w`` non-zero on row nodes only, e.g. the logit weights).

        Only nodes that have a row pass signal on, so the series is run on the square block among the row nodes —
        ``y_0 = w``, ``y_k = Â_rrᵀ y_{k-1}`` — and the full matrix is read once: ``Σ_k (Âᵀ)^k w = Âᵀ Σ_{k≥0} y_k``
        (exact: the same sums in another order). That is one pass over the dense rows per call instead of one per
        step of the series (the visiting queue calls it every few batches). Where the square block would exceed
        :data:`SQUARE_BYTES`, the series steps over the rows themselves."""
        from circuitdb.pruning import propagate

        row_nodes = np.concatenate([rn.numpy() for _, rn in self.blocks]) if self.blocks else np.zeros(0, np.int64)
        w = np.asarray(w, dtype=np.float64)
        off_rows = np.ones(self.n_nodes, bool)
        off_rows[row_nodes] = False
        dtype = self.blocks[0][0].dtype if self.blocks else torch.float64
        n_sq = len(row_nodes)
        if (n_sq * n_sq * dtype.itemsize > SQUARE_BYTES or len(np.unique(row_nodes)) != n_sq
                or w[off_rows].any()):
            return propagate(self.step, w, self.n_nodes)
        pos = np.full(self.n_nodes, -1, np.int64)
        pos[row_nodes] = np.arange(n_sq)
        sq = torch.zeros(n_sq, n_sq, dtype=dtype)  # sq[i, j] = Â[row i, column of row node j], in the rows' dtype
        for (r, rn), sm in zip(_chunks(self.blocks), self._sums):
            cols = np.flatnonzero(row_nodes < r.shape[1])  # row nodes that are also columns (sources) of r
            if len(cols):
                block = (r[:, torch.as_tensor(row_nodes[cols])].abs().double() / sm[:, None]).to(dtype)
                sq[torch.as_tensor(pos[rn.numpy()])[:, None], torch.as_tensor(cols)[None, :]] = block
        y0 = w[row_nodes]
        y = y0 + propagate(lambda x: (torch.as_tensor(x, dtype=dtype) @ sq).double().numpy(), y0, n_sq)
        out = np.zeros(self.n_nodes)
        out[row_nodes] = y
        return self.step(out)

    def error_share(self, err: np.ndarray) -> np.ndarray:
        """Per node: the share of its |in-weight| from ``err`` columns (0 for nodes without rows)."""
        out = np.zeros(self.n_nodes)
        for r, rn in _chunks(self.blocks):
            a = r.abs()
            cols = torch.as_tensor(err[: r.shape[1]])
            out[rn.numpy()] = (a[:, cols].sum(1) / a.sum(1).clamp_min(1e-10)).double().numpy()
        return out


def count_entries(blocks: list[tuple[Tensor, Tensor]]) -> int:
    """Number of non-zero entries (the raw graph's edge count) without building them."""
    return int(sum(int(torch.count_nonzero(r)) for r, _ in _chunks(blocks)))


def block_edges(blocks: list[tuple[Tensor, Tensor]], node_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Non-zero entries as edge arrays ``src, dst, weight, channel``; with ``node_mask`` only entries whose row and
    column nodes it keeps."""
    src, dst, w = [], [], []
    mask_t = None if node_mask is None else torch.as_tensor(node_mask)
    for r, rn in _chunks(blocks):
        if mask_t is not None:
            keep_rows = mask_t[rn]
            if not bool(keep_rows.any()):
                continue
            r, rn = r[keep_rows] * mask_t[: r.shape[1]].to(r.dtype), rn[keep_rows]
        b, c = r.nonzero(as_tuple=True)
        src.append(c.numpy())
        dst.append(rn[b].numpy())
        w.append(r[b, c].double().numpy())
    src_a = np.concatenate(src).astype(np.int64) if src else np.zeros(0, np.int64)
    return {"src": src_a, "dst": np.concatenate(dst).astype(np.int64) if dst else src_a.copy(),
            "weight": np.concatenate(w) if w else np.zeros(0), "channel": np.zeros(len(src_a), np.int8)}


def save_adjacency(path: "str | Path", keys: np.ndarray, edges: dict[str, np.ndarray]) -> dict:
    """Write the full adjacency side file (module docstring); returns the ``meta["adjacency"]`` record."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_suffix(p.suffix + ".npz") if p.suffix else p.with_suffix(".npz")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(p, keys=np.asarray(keys, dtype=str), src=edges["src"], dst=edges["dst"],
                        weight=edges["weight"], format=np.asarray(ADJACENCY_FORMAT))
    return {"path": str(p), "format": ADJACENCY_FORMAT, "n_nodes": int(len(keys)), "n_edges": int(len(edges["src"]))}


def load_adjacency(path: "str | Path") -> dict[str, np.ndarray]:
    """Read a side file written by :func:`save_adjacency`: ``keys, src, dst, weight``."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            if str(z["format"]) != ADJACENCY_FORMAT:
                raise ConfigError(f"{p} is not a circuitdb adjacency file (format {str(z['format'])!r})")
            return {k: z[k] for k in ("keys", "src", "dst", "weight")}
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"cannot read adjacency file {str(p)!r}: {e}") from e
