"""PNG / SVG pictures of a graph or circuit with matplotlib (headless ``Agg``), laid out by :mod:`.layout`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from circuitdb.errors import ConfigError, one_of
from circuitdb.render.layout import KIND_COLOURS, NEGATIVE, POSITIVE, layout

FORMATS = ("png", "svg")


def render_static(obj: Any, path: str | Path, *, size: tuple[int, int] | None = None, dpi: int = 100,
                  max_edges: int = 2000, labels: bool = True) -> Path:
    """Draw ``obj`` (an AttributionGraph or a Circuit) to ``path`` (``.png`` or ``.svg``). ``size`` is in pixels
    (default: grows with the number of columns and rows); the file has exactly that size."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(one_of(path.suffix, [f".{f}" for f in FORMATS], "picture suffix"))
    lay = layout(obj, max_edges=max_edges)
    graph = obj.graph if hasattr(obj, "source_graph_id") else obj
    if size is None:
        size = (int(np.clip(110 * lay.n_cols + 200, 800, 4000)), int(np.clip(110 * lay.n_rows + 160, 500, 3000)))
    fig = plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_axes((0.06, 0.06, 0.92, 0.86))
    e = lay.edges
    if len(e):
        seg = _curves(lay.x[graph.src[e]], lay.y[graph.src[e]], lay.x[graph.dst[e]], lay.y[graph.dst[e]],
                      graph.channel[e])
        colours = np.where(graph.weight[e] >= 0, POSITIVE, NEGATIVE)
        widths = 0.3 + 3.7 * lay.width
        alphas = 0.25 + 0.6 * lay.width
        rgba = [matplotlib.colors.to_rgba(c, a) for c, a in zip(colours, alphas)]
        ax.add_collection(LineCollection(seg[::-1], colors=rgba[::-1], linewidths=widths[::-1], zorder=1))  # strongest on top
    ax.scatter(lay.x, lay.y, s=90, c=[KIND_COLOURS.get(k, "#777777") for k in lay.kinds], edgecolors="black",
               linewidths=0.6, zorder=2)
    if labels:
        fs = 7 if len(lay.keys) < 120 else 5
        for xi, yi, lab, kind in zip(lay.x, lay.y, lay.labels, lay.kinds):
            dy = -0.22 if kind == "embed" else 0.16
            ax.text(xi, yi + dy, lab, fontsize=fs, ha="center", va="top" if kind == "embed" else "bottom", zorder=3,
                    rotation=0 if kind in ("embed", "logit") else 20)
    ax.set_xlim(-0.2, lay.n_cols + 0.2)
    ax.set_ylim(-0.7, max(lay.n_rows - 1, 0) + 0.6)
    ax.set_yticks(range(lay.n_rows), lay.row_names)
    if lay.col_names:
        ax.set_xticks(lay.col_centres, lay.col_names, fontsize=7)
    else:
        ax.set_xticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    n_e = graph.n_edges
    ax.set_title(f"{lay.title}\n{graph.n_nodes:,} nodes, {n_e:,} edges (blue +, red −; width ∝ |weight|)",
                 fontsize=9)
    fig.savefig(path, format=fmt, dpi=dpi)
    plt.close(fig)
    return path


def _curves(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray, channel: np.ndarray,
            n: int = 12) -> np.ndarray:
    """Edges as quadratic curves: edges within one row arc upwards (they would hide behind the nodes between), and
    the q/k/v edges of one pair bend apart (q one way, v the other)."""
    same_row = np.abs(y1 - y0) < 1e-9
    bend = np.where(same_row, 0.25, 0.0) + np.array([0.0, 0.08, 0.0, -0.08])[channel]
    dx, dy = x1 - x0, y1 - y0
    length = np.maximum(np.hypot(dx, dy), 1e-9)
    cx = (x0 + x1) / 2 - dy / length * bend * np.minimum(length, 2.0)
    cy = (y0 + y1) / 2 + dx / length * bend * np.minimum(length, 2.0) * np.where(same_row, np.sign(dx + 1e-12), 1)
    t = np.linspace(0, 1, n)[None, :]
    px = (1 - t) ** 2 * x0[:, None] + 2 * (1 - t) * t * cx[:, None] + t ** 2 * x1[:, None]
    py = (1 - t) ** 2 * y0[:, None] + 2 * (1 - t) * t * cy[:, None] + t ** 2 * y1[:, None]
    return np.stack([px, py], -1)
