"""A writer process for the live Neo4j tests: ``python neo4j_writer.py GRAPH_ID MODEL N_FEATURES BATCH [SEED]``.

Writes one synthetic feature graph (``N_FEATURES`` features sharing units with any other graph of ``MODEL``) with
``BATCH`` rows per chunk transaction to ``$CIRCUITDB_NEO4J_URI``, printing each write phase on stdout as it starts
(a parent aims its SIGKILL at them), then ``done``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd


def feature_graph(graph_id: str, model: str, n_features: int, seed: int = 0):
    """Embeddings → features (all in layer 0, the same feature ids for every graph of a model) → one logit."""
    from circuitdb.graph import AttributionGraph

    rng = np.random.default_rng(seed)
    n_pos = 4
    keys = [f"E@{p}" for p in range(n_pos)] + [f"F0:{f}@{f % n_pos}" for f in range(n_features)] + ["L:7@3"]
    kind = ["embed"] * n_pos + ["feature"] * n_features + ["logit"]
    nodes = pd.DataFrame({
        "key": keys, "kind": kind,
        "layer": [-1] * n_pos + [0] * n_features + [1],
        "head": -1, "pos": list(range(n_pos)) + [f % n_pos for f in range(n_features)] + [3],
        "feature": [-1] * n_pos + list(range(n_features)) + [-1],
        "token": list(range(n_pos)) + [-1] * n_features + [7],
        "dictionary": [""] * n_pos + ["tc"] * n_features + [""],
        "label": "", "activation": np.nan, "probability": [np.nan] * (n_pos + n_features) + [0.5],
    })
    feats = np.arange(n_pos, n_pos + n_features)
    src = np.concatenate([feats % n_pos, feats, feats[:-1]])
    dst = np.concatenate([feats, np.full(n_features, len(keys) - 1), feats[1:]])
    w = rng.normal(size=len(src))
    return AttributionGraph(nodes, src, dst, w, np.zeros(len(src), np.int8),
                            {"id": graph_id, "model": model, "granularity": "feature", "method": "test"})


def main() -> None:
    from circuitdb.store import versions as vs
    from circuitdb.store.neo4j import Neo4jStore

    gid, model, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    pause = float(os.environ.get("CIRCUITDB_TEST_PHASE_PAUSE", "0"))  # lets a parent's kill land mid-write

    def hook(name: str) -> None:
        print(name, flush=True)
        time.sleep(pause)

    vs.phase_hook = hook
    with Neo4jStore(batch_size=batch) as store:
        store.write_graph(feature_graph(gid, model, n, seed))
    print("exit", flush=True)


if __name__ == "__main__":
    main()
