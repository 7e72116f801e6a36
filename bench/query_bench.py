"""Query-layer benchmark: pruning in memory, library queries on the embedded store.

    python bench/query_bench.py [--edges 1000000] [--graphs 1000] [--store-dir /tmp/qbench]

Prints one line per measurement (median of ``--repeat`` warm runs) and the goal it is held to:
- influence pruning of a 1M-edge graph in memory (goal ≤ 0.5 s); top-n and greedy for comparison;
- ``top_edges`` and ``paths_between`` on a stored 1M-edge graph (goal ≤ 100 ms each after warm-up);
- ``recurring_units`` over ``--graphs`` stored component graphs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "circuits"))

from circuitdb.circuits.prune import greedy_prune, influence_prune, topn_prune  # noqa: E402
from circuitdb.circuits.query import query  # noqa: E402
from circuitdb.graph import AttributionGraph  # noqa: E402
from circuitdb.store.base import open_store  # noqa: E402


def layered_feature_graph(n_edges: int, n_layers: int = 16, width: int = 1000, n_pos: int = 8,
                          seed: int = 0) -> AttributionGraph:
    """A feature-graph-shaped DAG: tokens E@p, ``width`` features per layer, 4 logits; edges go from a lower layer
    (or a token) to a higher one; heavy-tailed weights."""
    rng = np.random.default_rng(seed)
    n_feat = n_layers * width
    keys = [f"E@{p}" for p in range(n_pos)]
    layer = [-1] * n_pos
    kinds = ["embed"] * n_pos
    fl = np.repeat(np.arange(n_layers), width)
    keys += [f"F{l}:{i}@{i % n_pos}" for l, i in zip(fl, np.tile(np.arange(width), n_layers))]
    layer += fl.tolist()
    kinds += ["feature"] * n_feat
    keys += [f"L:{t}@{n_pos - 1}" for t in range(4)]
    layer += [n_layers] * 4
    kinds += ["logit"] * 4
    n = len(keys)
    prob = np.full(n, np.nan)
    prob[-4:] = [0.5, 0.25, 0.15, 0.1]
    nodes = pd.DataFrame({"key": keys, "kind": kinds, "layer": layer, "probability": prob})
    lay = np.asarray(layer)
    tgt = rng.integers(n_pos, n, int(n_edges * 1.1))
    # source: a random node of a strictly lower layer (tokens count as layer -1)
    lo = np.searchsorted(np.sort(lay), lay[tgt], side="left")  # nodes are sorted by layer: first index of tgt layer
    src = (rng.random(len(tgt)) * lo).astype(np.int64)
    pairs = np.unique(np.stack([src, tgt], 1), axis=0)[:n_edges]
    w = rng.standard_cauchy(len(pairs)) * 0.01
    return AttributionGraph(nodes, pairs[:, 0], pairs[:, 1], w, None, {"id": "bench-1m", "granularity": "feature"})


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--graphs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--store-dir", default=None)
    a = ap.parse_args()
    root = Path(a.store_dir or tempfile.mkdtemp(prefix="qbench-"))
    shutil.rmtree(root, ignore_errors=True)

    t = time.perf_counter()
    g = layered_feature_graph(a.edges)
    print(f"graph: {g.n_nodes} nodes, {g.n_edges} edges (built in {time.perf_counter() - t:.1f} s)")
    sec, res = timed(lambda: influence_prune(g), a.repeat)
    print(f"influence_prune            {sec * 1e3:8.1f} ms   (goal ≤ 500 ms)  kept {res.n_nodes} nodes, {res.n_edges} edges")
    sec, res = timed(lambda: topn_prune(g, n=10_000), a.repeat)
    print(f"topn_prune n=10k           {sec * 1e3:8.1f} ms                    kept {res.n_edges} edges")
    sec, res = timed(lambda: greedy_prune(g, n=10_000), a.repeat)
    print(f"greedy_prune n=10k         {sec * 1e3:8.1f} ms                    kept {res.n_edges} edges")

    store = open_store(f"embedded:{root / 'big'}")
    t = time.perf_counter()
    store.write_graph(g)
    print(f"write_graph                {time.perf_counter() - t:8.2f} s")
    sec, df = timed(lambda: query(store, "top_edges", graph_id=g.id, limit=25), a.repeat)
    print(f"top_edges limit=25         {sec * 1e3:8.1f} ms   (goal ≤ 100 ms)  {len(df)} rows")
    sec, df = timed(lambda: query(store, "top_edges", graph_id=g.id, limit=25, source_kind="embed",
                                  min_weight=0.05), a.repeat)
    print(f"top_edges filtered         {sec * 1e3:8.1f} ms                    {len(df)} rows")
    src, dst = "E@3", "L:0@7"
    sec, df = timed(lambda: query(store, "paths_between", graph_id=g.id, source=src, target=dst, max_hops=3,
                                  min_weight=0.02, limit=20), a.repeat)
    print(f"paths_between ≤3 hops      {sec * 1e3:8.1f} ms   (goal ≤ 100 ms)  {len(df)} paths")
    sec, df = timed(lambda: query(store, "upstream", graph_id=g.id, node=dst, depth=2, min_weight=0.02), a.repeat)
    print(f"upstream depth 2           {sec * 1e3:8.1f} ms                    {len(df)} rows")
    store.close()

    from fixture_graphs import component_graph

    many = open_store(f"embedded:{root / 'many'}")
    t = time.perf_counter()
    for i in range(a.graphs):
        many.write_graph(component_graph(2, 4, seed=i, graph_id=f"ind-{i:04d}", with_mlp=False, model="bench"))
    print(f"write {a.graphs} graphs          {time.perf_counter() - t:8.2f} s")
    sec, df = timed(lambda: query(many, "recurring_units", kind="head", min_weight=1.0), max(1, a.repeat // 2))
    print(f"recurring_units {a.graphs} graphs {sec * 1e3:8.1f} ms                    top: {df.iloc[0]['unit']} in "
          f"{df.iloc[0]['n_graphs']} graphs")
    many.close()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
