"""Shared fixtures of the query tests: graphs (from tests/circuits/fixture_graphs.py) and python ground truths."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "circuits"))

from fixture_graphs import component_graph, random_dag, tiny_graph  # noqa: E402,F401

from circuitdb.graph import CHANNELS, AttributionGraph  # noqa: E402


def edge_frame(g: AttributionGraph) -> pd.DataFrame:
    nd = g.nodes
    return pd.DataFrame({
        "source": g.keys[g.src], "target": g.keys[g.dst], "weight": g.weight, "abs_weight": np.abs(g.weight),
        "channel": np.asarray(CHANNELS, dtype=object)[g.channel], "source_kind": nd["kind"].to_numpy()[g.src],
        "target_kind": nd["kind"].to_numpy()[g.dst], "source_layer": nd["layer"].to_numpy()[g.src],
        "target_layer": nd["layer"].to_numpy()[g.dst],
    })


def all_paths(g: AttributionGraph, source: str, target: str, max_hops: int, min_weight: float):
    """Every directed path (as (keys, channels, |weights|)) of ≤ max_hops edges with |weight| ≥ min_weight."""
    keys = g.keys
    out_edges: dict[int, list[int]] = {}
    for e in np.flatnonzero(np.abs(g.weight) >= min_weight):
        out_edges.setdefault(int(g.src[e]), []).append(int(e))
    s, t = g.node_index(source), g.node_index(target)
    res = []

    def walk(node, edges):
        if node == t and edges:
            res.append((tuple(keys[[s] + [int(g.dst[e]) for e in edges]]),
                        tuple(CHANNELS[g.channel[e]] for e in edges), [abs(g.weight[e]) for e in edges]))
        if len(edges) == max_hops:
            return
        for e in out_edges.get(node, []):
            walk(int(g.dst[e]), edges + [e])

    walk(s, [])
    return res


def walks_by_depth(g: AttributionGraph, node: str, depth: int, min_weight: float, up: bool) -> pd.DataFrame:
    """(key, depth) → max product of |weights| and number of walks of exactly that length into (up) / out of node."""
    n = g.n_nodes
    ok = np.abs(g.weight) >= min_weight
    a, b, w = (g.dst, g.src, np.abs(g.weight)) if up else (g.src, g.dst, np.abs(g.weight))
    a, b, w = a[ok], b[ok], w[ok]
    best = np.full(n, -np.inf)
    cnt = np.zeros(n)
    start = g.node_index(node)
    best[start], cnt[start] = 1.0, 1.0
    rows = []
    for d in range(1, depth + 1):
        nb = np.full(n, -np.inf)
        nc = np.zeros(n)
        live = cnt[a] > 0
        np.maximum.at(nb, b[live], best[a[live]] * w[live])
        np.add.at(nc, b[live], cnt[a[live]])
        best, cnt = nb, nc
        for i in np.flatnonzero(cnt > 0):
            rows.append((g.keys[i], d, best[i], int(cnt[i])))
    return pd.DataFrame(rows, columns=["key", "depth", "strength", "n_paths"])
