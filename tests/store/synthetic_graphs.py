"""Synthetic attribution graphs for the store tests: every node kind, every column, thousands of edges."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitdb.graph import AttributionGraph

NASTY = "it's \"quoted\" } // not a comment */ /* \n newline \\ back`tick $param"


def mixed_graph(graph_id: str | None = "g-mixed", *, n_layers: int = 3, n_heads: int = 4, n_pos: int = 5,
                n_feat: int = 20, n_edges: int = 6000, seed: int = 0, model: str = "toy",
                key_suffix: str = "") -> AttributionGraph:
    """Embeddings, per-position heads/MLPs/features/errors, and a logit; random unique edges with q/k/v channels."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for p in range(n_pos):
        rows.append(dict(key=f"E@{p}", kind="embed", layer=-1, pos=p, token=100 + p, label=f"tok{p}"))
    for layer in range(n_layers):
        for p in range(n_pos):
            for h in range(n_heads):
                rows.append(dict(key=f"A{layer}.{h}@{p}", kind="head", layer=layer, head=h, pos=p,
                                 prev_token_score=float(rng.random()), induction_score=float(rng.random())))
            rows.append(dict(key=f"M{layer}@{p}", kind="mlp", layer=layer, pos=p, direct_logit=float(rng.normal())))
            rows.append(dict(key=f"ERR{layer}@{p}", kind="error", layer=layer, pos=p))
            for f in range(n_feat):
                rows.append(dict(key=f"F{layer}:{f}@{p}", kind="feature", layer=layer, feature=f, pos=p,
                                 dictionary="tc-L" + str(layer), activation=float(rng.random()),
                                 influence=float(rng.random()) if f % 2 else np.nan))
    rows.append(dict(key="L:7@4", kind="logit", layer=n_layers, pos=n_pos - 1, token=7, probability=0.25,
                     label=NASTY))
    nodes = pd.DataFrame(rows)
    nodes["key"] = nodes["key"] + key_suffix
    n = len(nodes)
    src = rng.integers(0, n, n_edges)
    dst = rng.integers(0, n, n_edges)
    ch = rng.integers(0, 4, n_edges)
    trip = np.unique(np.stack([src, dst, ch], 1), axis=0)
    rng.shuffle(trip)
    weight = rng.normal(size=len(trip))
    meta = {"model": model, "granularity": "feature", "method": "synthetic", "metric": "logit_diff",
            "prompt": ["When Mary and John", "went"], "params": {"steps": 5, "nested": {"a": [1, 2.5, None]}},
            "created_at": "2026-01-01T00:00:00+00:00"}
    if graph_id is not None:
        meta["id"] = graph_id
    return AttributionGraph(nodes, trip[:, 0], trip[:, 1], weight, trip[:, 2], meta)


def expected_subgraph(g: AttributionGraph, *, min_abs_weight: float = 0.0, kinds=None, layers=None,
                      positions=None) -> AttributionGraph:
    """Ground truth for read_subgraph, computed with numpy on the in-memory graph."""
    ok = np.ones(g.n_nodes, bool)
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds is not None:
        ok &= np.isin(g.nodes["kind"].to_numpy(), list(kinds))
    if layers is not None:
        ok &= np.isin(g.nodes["layer"].to_numpy(), list(layers))
    if positions is not None:
        ok &= np.isin(g.nodes["pos"].to_numpy(), list(positions))
    keep = (np.abs(g.weight) >= min_abs_weight) & ok[g.src] & ok[g.dst]
    touched = np.zeros(g.n_nodes, bool)
    touched[g.src[keep]] = True
    touched[g.dst[keep]] = True
    return g.subgraph(keep, touched)
