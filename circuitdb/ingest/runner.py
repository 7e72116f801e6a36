"""Run an ingest job: load each model once, compute one graph per prompt (or per group of prompts), store them.

Order and identity (stated once):
- Work items are numbered across the whole job: model source ``m`` (a checkpoint, or the one model), then prompt
  group ``j``; item ``i = m * n_groups + j``. ``--shard k/n`` takes the items with ``i % n == k``, so the shards of
  one job are disjoint and their union is the unsharded job.
- A graph's id is known before it is computed (:func:`circuitdb.ingest.plan.graph_id`), so a re-run asks the store
  which ids are already complete (``complete_ids``) and computes only the others; ``force`` recomputes everything.
- Graphs are handed to a writer thread in batches (``write.graphs_per_transaction`` graphs or
  ``write.max_edges_per_transaction`` edges) through a bounded queue, and each batch is one ``write_graphs`` call
  (one transaction on the embedded store), so attribution of the next batch overlaps with writing this one.
- A failure stops the job: what was written stays (every stored graph is complete), the message says how far it got
  and that re-running the same command resumes.

The library reports progress through ``on_event(name, info)`` callbacks and ``logging``; only the CLI draws bars.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from circuitdb.errors import AttributionError, CircuitDBError, ConfigError, StoreError
from circuitdb.ingest.plan import Plan, Source, batched, make_plan, parse_shard

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.graph import AttributionGraph
    from circuitdb.ingest.spec import JobSpec
    from circuitdb.store.base import GraphStore

log = logging.getLogger(__name__)
Event = Callable[[str, dict], None]


@dataclass
class IngestSummary:
    """What a run did. ``graphs`` = items of this shard; ``skipped`` were stored complete already."""

    job: str
    store: str
    shard: str
    graphs: int = 0
    skipped: int = 0
    computed: int = 0
    written: int = 0
    nodes: int = 0
    edges: int = 0
    transactions: int = 0
    seconds: float = 0.0
    attribution_seconds: float = 0.0
    write_seconds: float = 0.0
    attribution_cpu_seconds: float = 0.0  # CPU time of the computing thread (steadier than wall on a shared machine)
    write_cpu_seconds: float = 0.0  # CPU time of the writing thread (the store engine's own threads not included)
    graph_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d.pop("graph_ids")
        return d


def complete_ids(store: "GraphStore", ids: list[str]) -> set[str]:
    """Ids that already have a complete (current) version: ``store.complete_ids`` where the store has it."""
    fn = getattr(store, "complete_ids", None)
    if callable(fn):
        return set(fn(ids))
    return {i for i in ids if store.has_graph(i)}


def write_batch(store: "GraphStore", graphs: list["AttributionGraph"]) -> None:
    """Many graphs in one transaction (``store.write_graphs``) where the store has it, else one by one."""
    fn = getattr(store, "write_graphs", None)
    if callable(fn):
        fn(graphs)
        return
    for g in graphs:
        store.write_graph(g)


class _Writer(threading.Thread):
    """Writes batches from a bounded queue; remembers the first error and then drops what still arrives."""

    def __init__(self, store: "GraphStore", depth: int, summary: IngestSummary, on_event: Event) -> None:
        super().__init__(name="circuitdb-ingest-writer", daemon=True)
        self.store, self.summary, self.on_event = store, summary, on_event
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            batch = self.q.get()
            if batch is None:
                return
            if self.error is not None:
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                write_batch(self.store, batch)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.error = e
                continue
            dt = time.perf_counter() - t0
            s = self.summary
            s.write_seconds += dt
            s.write_cpu_seconds += time.thread_time() - c0
            s.transactions += 1
            s.written += len(batch)
            n_edges = sum(g.n_edges for g in batch)
            s.edges += n_edges
            s.nodes += sum(g.n_nodes for g in batch)
            log.debug("ingest: wrote %d graph(s), %d edges in one transaction (%.3f s)", len(batch), n_edges, dt)
            self.on_event("written", {"graphs": len(batch), "edges": n_edges, "seconds": dt})

    def put(self, batch: list) -> None:
        while self.error is None:
            try:
                self.q.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue


def run_job(spec: "JobSpec", *, store: "GraphStore | str | None" = None, shard: str | tuple[int, int] | None = None,
            force: bool = False, on_event: Event | None = None, base_dir: str | Path | None = None,
            threaded: bool | None = None) -> IngestSummary:
    """Run ``spec`` into ``store`` (a store, a URI, or None = the job's ``store`` / ``$CIRCUITDB_STORE``).
    ``threaded``: write on a thread while computing (default: the job's ``write.overlap``, see :func:`overlaps`)."""
    from circuitdb.store.base import open_store

    emit: Event = on_event or (lambda name, info: None)
    k, n = parse_shard(shard)
    own = not hasattr(store, "write_graph")
    st = open_store(store or spec.store) if own else store  # type: ignore[arg-type]
    summary = IngestSummary(job=spec.name, store=st.uri, shard=f"{k}/{n}")
    t_start = time.perf_counter()
    try:
        plan = make_plan(spec, base_dir=base_dir)
        threaded = overlaps(spec, st) if threaded is None else threaded
        total = sum(1 for i in range(plan.n_items) if i % n == k)
        summary.graphs = total
        emit("start", {"total": total, "sources": len(plan.sources), "groups": plan.n_groups})
        writer = _Writer(st, spec.write.queue, summary, emit)
        if threaded:
            writer.start()
        try:
            for m, source in enumerate(plan.sources):
                _run_source(spec, plan, m, source, st, (k, n), force, summary, writer, threaded, emit)
                if writer.error is not None:
                    break
        finally:
            if threaded:
                writer.q.put(None)
                writer.join()
        if writer.error is not None:
            raise _stopped(spec, summary, "writing to the store", writer.error)
    finally:
        summary.seconds = time.perf_counter() - t_start
        if own:
            st.close()
    emit("done", summary.as_dict())
    log.info("ingest %s: %d graphs written, %d skipped, %.1f s", spec.name, summary.written, summary.skipped,
             summary.seconds)
    return summary


def overlaps(spec: "JobSpec", store: "GraphStore | None" = None) -> bool:
    """Whether the writer runs on its own thread: ``write.overlap``, else on except for batched one-prompt component
    jobs (EAP / EAP-IG) into the embedded store, where a writer thread costs more in GIL contention than it hides
    (bench/README.md); a server store's writer mostly waits on the network, so there it stays on."""
    if spec.write.overlap is not None:
        return spec.write.overlap
    embedded = store is None or str(getattr(store, "uri", "")).startswith("embedded:")
    return not (batched(spec) and embedded)


def _stopped(spec: "JobSpec", s: IngestSummary, what: str, err: BaseException) -> CircuitDBError:
    cls = StoreError if what.startswith("writing") else AttributionError
    if isinstance(err, ConfigError):
        cls = ConfigError
    msg = (f"ingest job {spec.name!r} stopped while {what}: {err}\n"
           f"{s.written} graph(s) were written in this run and {s.skipped} were stored before; every stored graph "
           f"is complete. Fix the cause and re-run the same command to resume (stored graphs are skipped).")
    e = cls(msg)
    e.__cause__ = err
    return e


def _run_source(spec: "JobSpec", plan: Plan, m: int, source: Source, st: "GraphStore", shard: tuple[int, int],
                force: bool, s: IngestSummary, writer: _Writer, threaded: bool, emit: Event) -> None:
    k, n = shard
    mine = [j for j in range(plan.n_groups) if (m * plan.n_groups + j) % n == k]
    if not mine:
        return
    ctx = plan.load(source)  # the model (once), the dataset, dictionaries, ids
    ids = [ctx.graph_id(j) for j in mine]
    s.graph_ids += ids
    done = set() if force else complete_ids(st, ids)
    todo = [(j, gid) for j, gid in zip(mine, ids) if gid not in done]
    skipped = len(mine) - len(todo)
    s.skipped += skipped
    if skipped:
        emit("skipped", {"graphs": skipped})
    if ctx.batched:  # many one-prompt graphs per batched pass
        stream = ctx.compute_many(list(zip(mine, ids)), wanted={gid for _, gid in todo})
    else:
        stream = (ctx.compute(j, gid) for j, gid in todo)
    batch: list = []
    edges = 0
    for j, gid in todo:
        if writer.error is not None:
            return
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            g = next(stream)
        except Exception as e:  # noqa: BLE001 - a permanent failure of this prompt (or its batch) stops the job
            _flush(batch, writer, threaded, st, s)  # what was computed is still written (run_job drains)
            raise _stopped(spec, s, f"computing graph {gid!r} ({source.label}, group {j})", e) from e
        s.attribution_seconds += time.perf_counter() - t0
        s.attribution_cpu_seconds += time.thread_time() - c0
        s.computed += 1
        emit("computed", {"graph_id": gid, "nodes": g.n_nodes, "edges": g.n_edges})
        batch.append(g)
        edges += g.n_edges
        if len(batch) >= spec.write.graphs_per_transaction or edges >= spec.write.max_edges_per_transaction:
            _flush(batch, writer, threaded, st, s)
            batch, edges = [], 0
    _flush(batch, writer, threaded, st, s)


def _flush(batch: list, writer: _Writer, threaded: bool, st: "GraphStore", s: IngestSummary) -> None:
    if not batch:
        return
    if threaded:
        writer.put(list(batch))
        return
    writer.q.put(list(batch))  # unthreaded: run the writer's loop body inline
    writer.q.put(None)
    writer.run()


__all__ = ["run_job", "IngestSummary", "complete_ids", "write_batch", "parse_shard", "ConfigError"]
