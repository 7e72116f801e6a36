"""A standalone interactive HTML view of a graph or circuit: one file, Cytoscape.js inlined, no network needed.

The page lays nodes out like the PNG (:mod:`.layout`), draws the ``max_edges`` strongest edges, shows a node's
attributes and strongest inputs/outputs on click, and filters edges by |weight|. It sets ``window.circuitdb`` to
``{nodes, edges, graph_nodes, graph_edges, title, ready}`` once drawn (the tests read it in headless Chromium).
"""

from __future__ import annotations

import html
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from circuitdb.render.layout import KIND_COLOURS, NEGATIVE, POSITIVE, layout, unwrap

X_SCALE, Y_SCALE = 150.0, 120.0
_NODE_FIELDS = ("kind", "layer", "head", "pos", "feature", "token", "dictionary", "label", "activation",
                "influence", "direct_logit", "probability")


@lru_cache(maxsize=4)
def _asset(name: str) -> str:
    return (resources.files("circuitdb.render") / name).read_text(encoding="utf-8")


def page_data(obj: Any, *, max_edges: int = 5000) -> dict[str, Any]:
    """The JSON the page draws: Cytoscape elements with positions, counts and the title."""
    graph, _ = unwrap(obj)
    lay = layout(obj, max_edges=max_edges)
    nodes = graph.nodes
    elements: list[dict[str, Any]] = []
    y_scale = max(Y_SCALE, 0.5 * lay.n_cols * X_SCALE / max(lay.n_rows - 1, 1))  # wide graphs: keep rows apart
    recs = nodes[list(_NODE_FIELDS)].to_dict("records")
    for i, rec in enumerate(recs):
        d = {"id": str(lay.keys[i]), "label": lay.labels[i], "colour": KIND_COLOURS.get(lay.kinds[i], "#777")}
        for k, v in rec.items():
            if isinstance(v, float) and math.isnan(v) or v == "" or (k in ("head", "pos", "feature", "token")
                                                                   and v == -1):
                continue
            d[k] = v.item() if hasattr(v, "item") else v
        elements.append({"data": d, "position": {"x": float(lay.x[i]) * X_SCALE, "y": -float(lay.y[i]) * y_scale}})
    keys = lay.keys
    for j, e in enumerate(lay.edges.tolist()):
        w = float(graph.weight[e])
        c = ["", "q", "k", "v"][int(graph.channel[e])]
        elements.append({"data": {"id": f"e{e}", "source": str(keys[graph.src[e]]), "target": str(keys[graph.dst[e]]),
                                  "weight": w, "abs": abs(w), "channel": c, "colour": POSITIVE if w >= 0 else NEGATIVE,
                                  "w": round(0.5 + 5.5 * float(lay.width[j]), 3),
                                  "alpha": round(0.25 + 0.7 * float(lay.width[j]), 3)}})
    return {"title": lay.title, "elements": elements, "n_nodes": graph.n_nodes, "n_edges": graph.n_edges,
            "drawn": len(lay.edges), "max_abs": float(abs(graph.weight).max()) if graph.n_edges else 0.0,
            "kind_colours": {k: v for k, v in KIND_COLOURS.items() if k in set(lay.kinds)}}


def to_html(obj: Any, *, max_edges: int = 5000) -> str:
    """The whole page as a string."""
    data = page_data(obj, max_edges=max_edges)
    blob = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return (_asset("template.html").replace("__TITLE__", html.escape(data["title"]))
            .replace("__CYTOSCAPE__", _asset("assets/cytoscape.min.js").replace("</script", "<\\/script"))
            .replace("__DATA__", blob))


def write_html(obj: Any, path: str | Path, **kwargs: Any) -> Path:
    path = Path(path)
    path.write_text(to_html(obj, **kwargs), encoding="utf-8")
    return path


def notebook_html(obj: Any, *, height: int = 520, max_edges: int = 2000) -> str:
    """The page inside an ``<iframe srcdoc>`` (its scripts run in notebooks that sanitise inline scripts)."""
    return (f'<iframe style="width:100%;height:{height}px;border:1px solid #ddd" '
            f'srcdoc="{html.escape(to_html(obj, max_edges=max_edges), quote=True)}"></iframe>')
