"""Embedded-store benchmark: write a synthetic 1M-edge graph, compare with a raw Ladybug COPY, time a 1% read.

    .venv/bin/python bench/store_bench.py [--nodes 20000] [--edges 1000000] [--repeat 3]

Prints (goals from issues 2 and 8):
- ``throughput crash-safe / pre-versions scheme``: today's versioned write against the write before versions
  (reconstructed in :func:`write_old_scheme`), fresh store and a store that already holds a graph (goal ≥ 0.9×);
- ``write ratio``: our ``EmbeddedStore.write_graph`` (frames + units + nodes + edges + Graph node, in one
  transaction) over a raw ``COPY`` of the same edge DataFrame into an equivalent bare rel table (goal ≤ 1.25×);
- ``read_subgraph``: ``read_subgraph(min_abs_weight=q99)`` returning ~1% of the edges (goal ≤ 0.5 s);
- ``peak RSS``: the process's peak resident memory right after the first write, graph included (goal < 2 GB).
Each timing is the best and the median of ``--repeat`` runs (the machine may be shared), ours and the others
alternating on fresh stores; wall and CPU time (all threads of this process) are both shown: CPU time is the
steadier figure on a busy machine.
Three raw baselines: the pandas edge DataFrame, the Arrow table we actually copy, and that table inside an explicit
transaction (Ladybug's COPY costs less CPU there than in auto-commit mode, so this is the like-for-like baseline).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from circuitdb.graph import AttributionGraph
from circuitdb.store import rows as rw
from circuitdb.store.embedded import EmbeddedStore


RAW_SCHEMA = (
    "CREATE NODE TABLE N(uid STRING PRIMARY KEY)",
    "CREATE REL TABLE E(FROM N TO N, weight DOUBLE, abs_weight DOUBLE, channel STRING)",
)


def synthetic(n_nodes: int, n_edges: int, seed: int = 0) -> AttributionGraph:
    """A feature-graph-like graph: features over 12 layers × 50 positions, unique random edges."""
    rng = np.random.default_rng(seed)
    i = np.arange(n_nodes)
    layer, pos, feat = i % 12, (i // 12) % 50, i // 600
    nodes = pd.DataFrame({
        "key": [f"F{a}:{c}@{b}" for a, b, c in zip(layer.tolist(), pos.tolist(), feat.tolist())],
        "kind": "feature", "layer": layer, "pos": pos, "feature": feat, "dictionary": "tc",
        "activation": rng.random(n_nodes),
    })
    pairs = np.unique(rng.integers(0, n_nodes, size=(int(n_edges * 1.02), 2)), axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:n_edges]]
    return AttributionGraph(nodes, pairs[:, 0], pairs[:, 1], rng.standard_t(3, size=len(pairs)),
                            meta={"id": "bench", "model": "bench-model", "method": "synthetic"})


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def clock() -> tuple[float, float]:
    """(wall, CPU of all this process's threads) — CPU time is the steadier figure on a shared machine."""
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def time_ours(graph: AttributionGraph, root: Path) -> tuple[float, float]:
    with EmbeddedStore(root) as store:
        t = clock()
        store.write_graph(graph)
        return since(t)


# The write of circuitdb before versions (main at 6a01263^, EmbeddedStore.write_graph), reconstructed here only as
# a comparator: has_graph, then ONE transaction that deletes the id's old rows by graph_id (circuits, orphan units,
# nodes, the Graph row), copies units / nodes / INSTANCE_OF / edges and CREATEs the Graph row, current at once.
# Its Cypher is that commit's, with today's columns; the rows come from today's builders (Arrow, as ours), so the
# ratio measures the schemes, not row building.
OLD_DELETE = (
    "MATCH (c:Circuit) WHERE c.graph_id = $graph_id DETACH DELETE c",
    "MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE n.graph_id = $graph_id WITH DISTINCT u "
    "WHERE NOT EXISTS { MATCH (u)<-[:INSTANCE_OF]-(m:Node) WHERE m.graph_id <> $graph_id } DETACH DELETE u",
    "MATCH (n:Node) WHERE n.graph_id = $graph_id DETACH DELETE n",
    "MATCH (g:Graph) WHERE g.id = $graph_id DELETE g",
)
OLD_CREATE_GRAPH = "CREATE (g:Graph {" + ", ".join(f"{c}: ${c}" for c in rw.GRAPH_PROPS) + "})"


def write_old_scheme(store: EmbeddedStore, graph: AttributionGraph, gid: str | None = None) -> None:
    from circuitdb.store import cypher as cy

    gid = gid or graph.id
    uids = rw.node_uids(graph, gid)
    units = rw.unit_uids(graph)
    nodes = rw.node_table(graph, gid, uids, sid=gid)
    edges = rw.edge_table(graph, gid, uids)
    instances = rw.instance_rows(graph, gid, uids, units)
    unit_df = rw.unit_frame(graph, units)
    props = rw.graph_props(graph, gid, sid=gid, current=True)
    store.has_graph(gid)
    try:
        with store._transaction():
            for stmt in OLD_DELETE:
                store._exec(stmt, {"graph_id": gid})
            missing = store._missing(cy.EXISTING_UNITS, unit_df["uid"].tolist())
            store._copy(cy.LB_COPY_UNITS, rw.unit_table(unit_df[unit_df["uid"].isin(missing)]))
            store._copy(cy.LB_COPY_NODES, nodes)
            store._copy(cy.LB_COPY_INSTANCE_OF, instances)
            store._copy(cy.LB_COPY_EDGES, edges)
            store._exec(OLD_CREATE_GRAPH, props)
    finally:
        store._forget_copies()


def time_previous(graph: AttributionGraph, root: Path) -> tuple[float, float]:
    """The pre-versions write (:func:`write_old_scheme`) of ``graph`` into a fresh store."""
    with EmbeddedStore(root) as store:
        t = clock()
        write_old_scheme(store, graph)
        return since(t)


def time_second(graph: AttributionGraph, root: Path, old: bool) -> tuple[float, float]:
    """A second graph of the same model into a store that holds one: units exist, tables are not empty."""
    with EmbeddedStore(root) as store:
        t = clock()
        if old:
            write_old_scheme(store, graph, "bench-2")
        else:
            store.write_graph(graph, graph_id="bench-2")
        return since(t)


def time_rewrite(store: EmbeddedStore, graph: AttributionGraph) -> tuple[float, float]:
    """Rewrite an existing id: (seconds until the new version is visible = the flip committed, total seconds with
    the old version's collection)."""
    from circuitdb.store import versions as vs

    marks: dict[str, float] = {}
    vs.phase_hook = lambda name: marks.setdefault(name, time.perf_counter())
    try:
        t = time.perf_counter()
        store.write_graph(graph)
        total = time.perf_counter() - t
    finally:
        vs.phase_hook = None
    return marks["flipped"] - t, total


def time_raw(graph: AttributionGraph, root: Path, arrow: bool, txn: bool = False) -> tuple[float, float]:
    import ladybug

    root.mkdir(parents=True)
    db = ladybug.Database(str(root / "raw.lbdb"))
    conn = ladybug.Connection(db)
    for stmt in RAW_SCHEMA:
        conn.execute(stmt)
    uids = rw.node_uids(graph, graph.id)
    conn.execute("COPY N FROM $rows", {"rows": pd.DataFrame({"uid": uids})})
    # the same rows our write copies, built outside the timing: a pandas DataFrame, or the Arrow table we really copy
    edges = rw.edge_table(graph, graph.id, uids) if arrow else rw.edge_rows(graph, graph.id, uids)
    t = clock()
    if txn:
        conn.execute("BEGIN TRANSACTION")
    conn.execute("COPY E FROM $rows", {"rows": edges})
    if txn:
        conn.execute("COMMIT")
    dt = since(t)
    conn.close()
    db.close()
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--neo4j", action="store_true", help="only the Neo4j row (see neo4j_row); try --edges 200000")
    args = ap.parse_args(argv)
    if args.neo4j:
        return neo4j_row(synthetic(args.nodes, args.edges), args.repeat)

    t = time.perf_counter()
    graph = synthetic(args.nodes, args.edges)
    print(f"graph: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges (built in {time.perf_counter() - t:.1f} s); "
          f"RSS before writing {rss_mb():.0f} MB")
    tmp = Path(tempfile.mkdtemp(prefix="circuitdb-bench-"))
    try:
        variants = {  # name → (arrow, explicit transaction)
            "raw COPY of the edge DataFrame": (False, False),
            "raw COPY of the same Arrow table": (True, False),
            "raw COPY of the Arrow table in BEGIN/COMMIT (as ours)": (True, True),
        }
        ours: list[tuple[float, float]] = []
        previous: list[tuple[float, float]] = []
        raws: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for r in range(args.repeat):
            ours.append(time_ours(graph, tmp / f"ours{r}"))
            if r == 0:
                peak = rss_mb()
            previous.append(time_previous(graph, tmp / f"prev{r}"))
            shutil.rmtree(tmp / f"prev{r}", ignore_errors=True)
            for j, (name, (arrow, txn)) in enumerate(variants.items()):
                raws[name].append(time_raw(graph, tmp / f"raw{r}-{j}", arrow=arrow, txn=txn))
                shutil.rmtree(tmp / f"raw{r}-{j}", ignore_errors=True)
            print(f"  run {r} (wall/CPU s): crash-safe {ours[-1][0]:.2f}/{ours[-1][1]:.2f}; pre-versions scheme "
                  f"{previous[-1][0]:.2f}/{previous[-1][1]:.2f}; raw "
                  + ", ".join(f"{v[-1][0]:.2f}/{v[-1][1]:.2f}" for v in raws.values()))
            if r:
                shutil.rmtree(tmp / f"ours{r}", ignore_errors=True)
        for i, what in ((0, "wall"), (1, "CPU")):
            best, med = min(x[i] for x in ours), float(np.median([x[i] for x in ours]))
            print(f"{what}: write_graph best {best:.2f} s [{graph.n_edges / best:,.0f} edges/s], median {med:.2f} s")
            b, bm = min(x[i] for x in previous), float(np.median([x[i] for x in previous]))
            paired = [p[i] / o[i] for o, p in zip(ours, previous)]
            print(f"  throughput crash-safe / pre-versions scheme: best {b / best:.2f}×, median {bm / med:.2f}×, "
                  f"median of the paired runs {float(np.median(paired)):.2f}× (per run "
                  f"{' '.join(f'{x:.2f}' for x in paired)})  (goal ≥ 0.9×)")
            for name, runs in raws.items():
                b, bm = min(x[i] for x in runs), float(np.median([x[i] for x in runs]))
                print(f"  vs {name}: best {best / b:.2f}×, median {med / bm:.2f}× the time")
        print(f"peak RSS after the first write: {peak:.0f} MB  (goal < 2048 MB)")

        thr = float(np.quantile(graph.abs_weight, 0.99))
        with EmbeddedStore(tmp / "ours0") as store:
            times, sub = [], None
            for _ in range(args.repeat):
                t = time.perf_counter()
                sub = store.read_subgraph(graph.id, min_abs_weight=thr)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            full = store.read_graph(graph.id)
            t_full = time.perf_counter() - t
            t0 = clock()
            store.write_graph(graph, graph_id="bench-2")
            t_second = since(t0)
            t_visible, t_rewrite = time_rewrite(store, graph)
        want = int((graph.abs_weight >= thr).sum())
        assert sub is not None and sub.n_edges == want, (sub, want)
        print(f"read_subgraph(min_abs_weight={thr:.3f}) → {sub.n_edges:,} edges ({sub.n_edges / graph.n_edges:.1%}) "
              f"in {min(times):.3f} s  (goal ≤ 0.5 s)")
        print(f"read_graph (all {full.n_edges:,} edges) in {t_full:.2f} s; identical: {full.equals(graph)}")
        print(f"a second graph of the same model (units exist) {t_second[0]:.2f} s wall / {t_second[1]:.2f} s CPU")
        seconds = {"ours": [], "old": []}
        for r in range(min(args.repeat, 3)):
            for name in ("ours", "old"):
                root = tmp / f"second-{name}{r}"
                with EmbeddedStore(root) as st:  # the first graph, written by the same scheme
                    write_old_scheme(st, graph) if name == "old" else st.write_graph(graph)
                seconds[name].append(time_second(graph, root, old=name == "old"))
                shutil.rmtree(root, ignore_errors=True)
        for i, what in ((0, "wall"), (1, "CPU")):
            o = float(np.median([x[i] for x in seconds["ours"]]))
            p = float(np.median([x[i] for x in seconds["old"]]))
            print(f"second graph into a store holding one, {what} median: crash-safe {o:.2f} s, pre-versions "
                  f"{p:.2f} s → throughput {p / o:.2f}×")
        print(f"rewriting the existing id: new version visible after {t_visible:.2f} s "
              f"({t_visible / t_second[0]:.2f}× that fresh write; goal ≈ 1×), old version collected by "
              f"{t_rewrite:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def neo4j_row(graph: AttributionGraph, repeat: int) -> int:
    """Neo4j write throughput next to the embedded store's, same graph, same run: ``Neo4jStore.write_graph`` (chunk
    transactions of 20k rows + the flip; a rewrite also collects the old version) against ``$CIRCUITDB_NEO4J_URI`` or
    the local server of tools/neo4j-server (started here with a 1 GB heap, default JIT)."""
    import os

    from circuitdb.store.neo4j import Neo4jStore

    server = None
    if not os.environ.get("CIRCUITDB_NEO4J_URI"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from neo4j_server import LocalNeo4j

        server = LocalNeo4j(java_opts="-Xms1g -Xmx1g -XX:+UseSerialGC").start()
        os.environ.update(server.env())
        print(f"local Neo4j 5.26 started in {server.start_seconds:.1f} s")
    print(f"graph: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges")
    tmp = Path(tempfile.mkdtemp(prefix="circuitdb-bench-"))
    try:
        with Neo4jStore() as store:
            store.init()
            for r in range(repeat):
                t0 = clock()
                store.write_graph(graph, graph_id=f"bench-{r}")
                neo = since(t0)
                emb = time_ours(graph, tmp / f"emb{r}")
                print(f"  run {r} (wall/CPU s): Neo4j {neo[0]:.2f}/{neo[1]:.2f} [{graph.n_edges / neo[0]:,.0f} edges/s]; "
                      f"embedded {emb[0]:.2f}/{emb[1]:.2f} [{graph.n_edges / emb[0]:,.0f} edges/s]; "
                      f"Neo4j/embedded {neo[0] / emb[0]:.1f}×")
            t0 = clock()
            store.write_graph(graph, graph_id="bench-0")
            print(f"rewrite of a stored id (new version, flip, old one collected): {since(t0)[0]:.2f} s")
            t0 = clock()
            back = store.read_graph("bench-0")
            print(f"read_graph: {since(t0)[0]:.2f} s; identical: {back.diff(graph, meta=False) == []}")
            for r in range(repeat):
                store.delete_graph(f"bench-{r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
