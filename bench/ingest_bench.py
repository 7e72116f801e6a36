"""Ingest benchmark: whole jobs end to end (model load, attribution, writing) into the embedded store and Neo4j.

    .venv/bin/python bench/ingest_bench.py [--component 1000] [--long 3000] [--feature 100] [--baseline 100]
                                           [--overlap] [--sizes] [--neo4j]

Prints one JSON object; each part (goals from issue 11):
- ``component``: ``--component`` one-prompt EAP graphs of toy-induction-2l into a fresh embedded store (goal ≥ 50
  graphs/s), with the wall and per-thread CPU split, process CPU, and the RSS after every transaction (goal: flat);
  ``long``: the same job with ``--long`` graphs, RSS every transaction (does it plateau?);
- ``overlap``: the component job with the writer on its own thread and inline, for the ratio;
- ``baseline``: one ``attribute()`` + one ``write_graph`` call per prompt (the path of the first wave);
- ``feature``: ``--feature`` influence-pruned feature graphs of toy-ioi (goal: storage ≤ 20% of the time);
- ``sizes``: bytes on disk per node and per edge (synthetic node-heavy and edge-heavy graphs) and per stored
  toy-induction graph, embedded store (``du`` of its directory after close) and, with ``--neo4j``, Neo4j (the store
  files of its database directory after ``CALL db.checkpoint()``, minus those of the empty database);
- ``--neo4j``: the component and feature jobs, and the sizes, into a fresh local Neo4j 5.26 (tests/neo4j_server.py).
Torch runs on one thread. Wall time on a shared machine is noisy (the load average is printed with every part); the
CPU seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def run(spec, store_uri: str, threaded: bool | None = None) -> dict:  # noqa: ANN001
    from circuitdb.ingest.runner import run_job

    samples: list[tuple[int, float]] = []
    done = [0]

    def on_event(name: str, info: dict) -> None:
        if name == "written":
            done[0] += info["graphs"]
            samples.append((done[0], round(rss_mb(), 1)))

    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    s = run_job(spec, store=store_uri, on_event=on_event, threaded=threaded)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = s.as_dict()
    out.update(wall=wall, process_cpu_seconds=cpu, graphs_per_s=s.written / wall, edges_per_s=s.edges / wall,
               graphs_per_cpu_s=s.written / cpu, write_fraction=s.write_seconds / wall,
               attribution_fraction=s.attribution_seconds / wall, rss_mb_after_graphs=samples,
               load_average=[round(load0, 1), round(os.getloadavg()[0], 1)])
    return out


def baseline(n: int, store_uri: str) -> dict:
    """One attribute() call and one write_graph transaction per prompt."""
    import circuitdb
    from circuitdb.store.base import open_store

    m = circuitdb.load_model("toy-induction-2l")
    ds = circuitdb.load_task("induction", m, n=n, seed=0, half_len=16)
    t0 = time.perf_counter()
    graphs = [circuitdb.attribute(m, ds.batch(slice(i, i + 1)), method="eap", metric="logprob", progress=False,
                                  batch_size=1) for i in range(n)]
    t1 = time.perf_counter()
    with open_store(store_uri) as st:
        for g in graphs:
            st.write_graph(g)
    t2 = time.perf_counter()
    return {"graphs": n, "attribution_graphs_per_s": n / (t1 - t0), "write_graphs_per_s": n / (t2 - t1),
            "graphs_per_s": n / (t2 - t0)}


def synthetic(n_nodes: int, n_edges: int, seed: int) -> "object":
    """A feature-style graph: ``n_nodes`` feature nodes (the same features in every graph, so units are shared),
    ``n_edges`` distinct random edges."""
    import numpy as np
    import pandas as pd

    from circuitdb.graph import AttributionGraph

    rng = np.random.default_rng(seed)
    layer, pos = np.arange(n_nodes) % 4, np.arange(n_nodes) // 4 % 16
    nodes = pd.DataFrame({"key": [f"F{i % 4}:{i}@{p}" for i, p in zip(range(n_nodes), pos)], "kind": "feature",
                          "layer": layer, "pos": pos, "feature": np.arange(n_nodes), "dictionary": "bench-tc",
                          "activation": rng.random(n_nodes)})
    pairs = rng.choice(n_nodes * n_nodes, size=n_edges, replace=False)
    return AttributionGraph(nodes, pairs // n_nodes, pairs % n_nodes, rng.standard_normal(n_edges),
                            meta={"id": f"bench-{n_nodes}-{n_edges}-{seed}", "model": "bench"})


SIZE_JOBS = {  # name: (graphs to write, nodes, edges) — see synthetic()
    "node_heavy": (50, 2000, 0),  # 100k nodes
    "edge_heavy": (25, 200, 20_000),  # 5k nodes, 500k edges
}


def write_sizes_job(uri: str, which: str) -> None:
    """Write one of the size probes into the store at ``uri``: a SIZE_JOBS entry, 'toy' (1,000 toy-induction
    graphs) or 'empty' (the schema only)."""
    from circuitdb.ingest.examples import toy_induction_job
    from circuitdb.store.base import open_store

    if which == "toy":
        run(toy_induction_job(1000, name="size-probe"), uri)
        return
    with open_store(uri) as st:
        if hasattr(st, "init"):
            st.init()
        if which == "empty":
            return
        n, nodes, edges = SIZE_JOBS[which]
        graphs = [synthetic(nodes, edges, s) for s in range(n)]
        for i in range(0, n, 5):
            st.write_graphs(graphs[i:i + 5])


def per_element(b: dict[str, int]) -> dict:
    """Bytes per node, per edge and per toy-induction graph from the probes' sizes (``b[probe]``, ``b['empty']``)."""
    per_node = (b["node_heavy"] - b["empty"]) / 100_000
    per_edge = (b["edge_heavy"] - b["empty"] - per_node * 5_000) / 500_000
    toy = (b["toy"] - b["empty"]) / 1000
    return {"bytes": b, "bytes_per_node": round(per_node, 1), "bytes_per_edge": round(per_edge, 1),
            "bytes_per_toy_induction_graph": round(toy, 1),
            "toy_graph_overhead_bytes": round(toy - 10 * per_node - 81 * per_edge, 1)}


def embedded_sizes(tmp: Path) -> dict:
    """Each probe into its own fresh embedded store; ``du`` of the store directory after close."""
    b = {}
    for which in ("empty", *SIZE_JOBS, "toy"):
        d = tmp / f"size-{which}"
        write_sizes_job(f"embedded:{d}", which)
        b[which] = du_bytes(d)
    return {"store": "embedded (Ladybug 0.22)", **per_element(b)}


def neo4j_sizes() -> dict:
    """Each probe into its own fresh local Neo4j, stopped cleanly (SIGTERM: a final checkpoint writes the store
    files); ``du`` of the database directory (store files) and of its transaction logs, separately."""
    import signal

    from neo4j_server import LocalNeo4j

    b = {}
    for which in ("empty", *SIZE_JOBS, "toy"):
        srv = LocalNeo4j().start()
        try:
            os.environ.update(srv.env())
            write_sizes_job(srv.uri, which)
            srv.proc.send_signal(signal.SIGTERM)
            srv.proc.wait(300)
            db = [p for p in srv.home.rglob("databases/neo4j") if p.is_dir()][0]
            b[which] = du_bytes(db)
            b[which + "_tx_logs"] = sum(du_bytes(p) for p in srv.home.rglob("transactions/neo4j") if p.is_dir())
        finally:
            srv.stop()
    return {"store": "Neo4j 5.26 (record format)", **per_element(b)}


def main(argv: list[str] | None = None) -> None:
    import torch

    from circuitdb.ingest.examples import toy_induction_job, toy_ioi_feature_job

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--component", type=int, default=1000)
    p.add_argument("--long", type=int, default=0)
    p.add_argument("--feature", type=int, default=100)
    p.add_argument("--baseline", type=int, default=0)
    p.add_argument("--overlap", action="store_true")
    p.add_argument("--sizes", action="store_true")
    p.add_argument("--neo4j", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    res: dict = {}

    def emit(key: str, value: dict) -> None:
        res[key] = value
        sys.stderr.write(f"{key}: {json.dumps(value, default=float)}\n")

    try:
        import circuitdb

        circuitdb.load_model("toy-induction-2l")  # imports warm: the runs below time the jobs, not Python's imports
        if a.component:
            emit("component", run(toy_induction_job(a.component), f"embedded:{tmp}/component"))
        if a.long:
            emit("long", run(toy_induction_job(a.long, name="toy-induction-long"), f"embedded:{tmp}/long"))
        if a.overlap:
            for mode in (True, False):
                emit(f"overlap_{mode}", run(toy_induction_job(a.component or 1000, name=f"ov-{mode}"),
                                            f"embedded:{tmp}/ov-{mode}", threaded=mode))
        if a.baseline:
            emit("baseline", baseline(a.baseline, f"embedded:{tmp}/baseline"))
        if a.feature:
            emit("feature", run(toy_ioi_feature_job(a.feature), f"embedded:{tmp}/feature"))
        if a.sizes:
            emit("sizes_embedded", embedded_sizes(tmp))
        if a.neo4j:
            sys.path.insert(0, str(ROOT / "tests"))
            from neo4j_server import LocalNeo4j

            if a.sizes:
                emit("sizes_neo4j", neo4j_sizes())
            with LocalNeo4j() as srv:
                os.environ.update(srv.env())
                if a.component:
                    emit("neo4j_component", run(toy_induction_job(a.component, name="n4j-ind"), srv.uri))
                if a.feature:
                    emit("neo4j_feature", run(toy_ioi_feature_job(a.feature, name="n4j-feat"), srv.uri))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.write(json.dumps(res, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
