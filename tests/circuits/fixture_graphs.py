"""Fixture graphs for the query-layer tests: hand-made small graphs and seeded random layered DAGs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitdb.graph import AttributionGraph


def tiny_graph() -> AttributionGraph:
    """E → A0.0 → LOGITS, E → A0.1 → LOGITS, E → LOGITS, A0.1 → A1.0 (a dead end). Hand-computed in the tests."""
    nodes = pd.DataFrame({
        "key": ["E", "A0.0", "A0.1", "A1.0", "LOGITS"],
        "kind": ["embed", "head", "head", "head", "logit"],
        "layer": [-1, 0, 0, 1, 2],
        "head": [-1, 0, 1, 0, -1],
    })
    e = [("E", "A0.0", 2.0), ("E", "A0.1", 0.1), ("A0.0", "LOGITS", 3.0), ("A0.1", "LOGITS", -1.5),
         ("E", "LOGITS", 1.0), ("A0.1", "A1.0", 1.0)]
    idx = {k: i for i, k in enumerate(nodes["key"])}
    edges = pd.DataFrame({"source": [idx[s] for s, _, _ in e], "target": [idx[t] for _, t, _ in e],
                          "weight": [w for _, _, w in e]})
    return AttributionGraph.from_frames(nodes, edges, {"id": "tiny", "granularity": "component"})


def component_graph(n_layers: int = 4, n_heads: int = 8, seed: int = 0, graph_id: str | None = None,
                    density: float = 1.0, scale: np.ndarray | None = None, with_mlp: bool = True,
                    model: str = "fixture") -> AttributionGraph:
    """A head-level graph: E, A{l}.{h} (q/k/v in-edges), M{l}, LOGITS; every upstream → downstream edge kept with
    probability ``density``; weights normal(0, 1) times ``scale[src]`` (if given)."""
    rng = np.random.default_rng(seed)
    rows = [dict(key="E", kind="embed", layer=-1)]
    for layer in range(n_layers):
        rows += [dict(key=f"A{layer}.{h}", kind="head", layer=layer, head=h,
                      prev_token_score=float(rng.uniform(0, .3)), induction_score=float(rng.uniform(0, .3)),
                      duplicate_token_score=float(rng.uniform(0, .3))) for h in range(n_heads)]
        if with_mlp:
            rows.append(dict(key=f"M{layer}", kind="mlp", layer=layer))
    rows.append(dict(key="LOGITS", kind="logit", layer=n_layers))
    nodes = pd.DataFrame(rows)
    layer = nodes["layer"].to_numpy()
    kind = nodes["kind"].to_numpy()
    src, dst, ch = [], [], []
    for t in range(len(nodes)):
        ups = np.flatnonzero((layer < layer[t]) if kind[t] != "mlp" else (layer <= layer[t]) & (kind != "mlp"))
        ups = ups[ups != t]
        chans = (1, 2, 3) if kind[t] == "head" else (0,)
        for c in chans:
            keep = ups[rng.random(len(ups)) < density]
            src += keep.tolist()
            dst += [t] * len(keep)
            ch += [c] * len(keep)
    src, dst = np.array(src), np.array(dst)
    w = rng.normal(size=len(src))
    if scale is not None:
        w = w * scale[src]
    return AttributionGraph(nodes, src, dst, w, np.array(ch, np.int8),
                            {"id": graph_id or f"comp-{seed}", "granularity": "component", "model": model})


def random_dag(n_nodes: int, n_edges: int, seed: int = 0, n_logits: int = 3, n_embed: int = 5,
               graph_id: str | None = None) -> AttributionGraph:
    """A feature-like DAG: embeds first, logits last, random features/errors between (edges go forward only)."""
    rng = np.random.default_rng(seed)
    n_mid = n_nodes - n_logits - n_embed
    kinds = ["embed"] * n_embed + list(rng.choice(["feature", "error"], n_mid, p=[.9, .1])) + ["logit"] * n_logits
    keys = [f"E@{i}" for i in range(n_embed)] + [f"F{i}" for i in range(n_mid)] + [f"L:{i}@0" for i in range(n_logits)]
    nodes = pd.DataFrame({"key": keys, "kind": kinds, "layer": np.arange(n_nodes), "pos": 0})
    p = np.full(n_nodes, np.nan)
    p[-n_logits:] = rng.dirichlet(np.ones(n_logits))
    nodes["probability"] = p
    a = rng.integers(0, n_nodes - n_logits, n_edges)
    b = rng.integers(n_embed, n_nodes, n_edges)
    s, t = np.minimum(a, b), np.maximum(a, b)
    ok = (s != t) & ~np.isin(np.array(kinds, dtype=object)[t], ["embed", "error"])
    s, t = s[ok], t[ok]
    pairs = np.unique(np.stack([s, t], 1), axis=0)
    w = rng.standard_cauchy(len(pairs)) * 0.1
    return AttributionGraph(nodes, pairs[:, 0], pairs[:, 1], w, None,
                            {"id": graph_id or f"dag-{seed}", "granularity": "feature"})
