"""Where each node goes and what it says: the one layout the PNG/SVG and the HTML view share.

Conventions (stated once):
- Rows are layers, bottom to top: embeddings (layer -1) at row 0, logits (layer ``n_layers``) on top; within a layer
  heads come before the MLP, features, errors.
- Graphs with positions (feature graphs, per-position component graphs) get one column block per prompt position;
  the nodes of one (layer, position) cell spread across its block. Graphs without positions spread each layer's
  nodes across the width.
- Labels: embeddings and logits show their token; features their label (a Neuronpedia clerp, a CSV description) or
  ``F{layer}:{index}``; other nodes their key up to ``@``.
- Edge colour by sign (positive blue, negative red); width grows with |weight| relative to the strongest drawn edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

KIND_ORDER = {"embed": 0, "head": 1, "mlp": 2, "feature": 3, "error": 4, "logit": 5}
KIND_COLOURS = {"embed": "#9e9e9e", "head": "#ff9f1c", "mlp": "#2ec4b6", "feature": "#6a4c93", "error": "#bdbdbd",
                "logit": "#e9c46a"}
POSITIVE, NEGATIVE = "#1f77b4", "#d62728"


@dataclass(frozen=True)
class Layout:
    """Node positions (x: columns, y: rows), labels, and the drawn edges (the ``max_edges`` strongest)."""

    keys: np.ndarray
    kinds: np.ndarray
    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    edges: np.ndarray  # indices into the graph's edge arrays, strongest first
    width: np.ndarray  # per drawn edge, 0..1 of the strongest
    n_cols: float  # total width in column units (a position's block widens with its busiest cell)
    n_rows: int
    col_centres: np.ndarray
    row_names: list[str]
    col_names: list[str]
    title: str


def unwrap(obj: Any) -> tuple[Any, str]:
    """(graph, title) for an AttributionGraph or a Circuit."""
    if hasattr(obj, "source_graph_id"):
        g = obj.graph
        return g, f"circuit {obj.name or obj.method!r} of {obj.source_graph_id}"
    return obj, f"graph {obj.id}"


def short(s: str, n: int = 28) -> str:
    s = str(s).replace("\n", "⏎").replace("\t", "→")
    return s if len(s) <= n else s[: n - 1] + "…"


def node_labels(nodes: pd.DataFrame) -> list[str]:
    out = []
    for k, kind, lab, layer, feat in nodes[["key", "kind", "label", "layer", "feature"]].itertuples(index=False):
        base = str(k).split("@")[0]
        if kind in ("embed", "logit"):
            out.append(short(lab, 16) if lab else base)
        elif kind == "feature":
            out.append(short(lab) if lab else f"F{layer}:{feat}")
        else:
            out.append(short(base.split(">")[0], 16))
    return out


def layout(obj: Any, *, max_edges: int = 2000) -> Layout:
    graph, title = unwrap(obj)
    nodes = graph.nodes
    n = len(nodes)
    layer = nodes["layer"].to_numpy()
    pos = nodes["pos"].to_numpy()
    kinds = nodes["kind"].to_numpy()
    layers = np.unique(layer) if n else np.zeros(0, int)
    row_of = {int(v): i for i, v in enumerate(layers)}
    y = np.array([row_of[int(v)] for v in layer], dtype=float)
    x = np.zeros(n)
    has_pos = bool((pos >= 0).any())
    order = np.lexsort((nodes["feature"].to_numpy(), nodes["head"].to_numpy(),
                        np.array([KIND_ORDER.get(k, 9) for k in kinds]), pos, layer)) if n else np.zeros(0, int)
    cells: dict[tuple[int, int], list[int]] = {}
    for i in order:
        cells.setdefault((int(layer[i]), int(pos[i]) if has_pos else 0), []).append(int(i))
    n_pos = int(pos.max()) + 1 if has_pos else 1
    widest = np.ones(n_pos)
    for (_, p), members in cells.items():
        widest[max(p, 0)] = max(widest[max(p, 0)], len(members))
    col_w = np.maximum(1.0, 0.3 * widest) if has_pos else np.array([float(widest.max())])
    col_start = np.concatenate([[0.0], np.cumsum(col_w)[:-1]])
    for (_, p), members in cells.items():
        k, c = len(members), max(p, 0)
        for j, i in enumerate(members):
            x[i] = col_start[c] + col_w[c] * (j + 0.5) / k
    n_cols = float(col_w.sum())
    strength = np.abs(graph.weight)
    edges = np.argsort(-strength, kind="stable")[:max_edges]
    top = float(strength[edges[0]]) if len(edges) else 1.0
    width = strength[edges] / (top if top > 0 else 1.0)
    row_names = ["emb" if v < 0 else ("logits" if (kinds[layer == v] == "logit").all() else f"L{v}")
                 for v in layers.tolist()]
    col_names = []
    if has_pos:
        emb = nodes[kinds == "embed"]
        tok = {int(p): short(lab, 12) for p, lab in zip(emb["pos"], emb["label"]) if lab}
        col_names = [tok.get(p, str(p)) for p in range(n_pos)]
    if len(edges) < graph.n_edges:
        title += f" — {len(edges):,} strongest of {graph.n_edges:,} edges"
    return Layout(nodes["key"].to_numpy(), kinds, x, y, node_labels(nodes), edges, width, n_cols,
                  len(layers), col_start + col_w / 2, row_names, col_names, title)
