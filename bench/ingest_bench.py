"""Ingest benchmark: whole jobs end to end into a fresh embedded store (model load, attribution, writing).

    .venv/bin/python bench/ingest_bench.py [--component 1000] [--feature 100] [--baseline 100]

Prints, for each job (goals from issue 11):
- ``toy-induction component``: ``--component`` one-prompt EAP graphs of toy-induction-2l (goal ≥ 50 graphs/s),
  with attribution and write time, transactions, and the process RSS sampled after every transaction (goal: flat);
- ``baseline``: the same graphs written one ``write_graph`` call each (the path that ran at 5 graphs/s), timed on
  ``--baseline`` of them, for the ratio;
- ``toy-ioi feature``: ``--feature`` influence-pruned feature graphs of toy-ioi (goal: storage ≤ 20% of the time).
Torch runs on one thread. Wall time on a shared machine is noisy; the split (attribution vs writing) is the steadier
figure, because both halves slow down together.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(spec, store_uri: str) -> dict:  # noqa: ANN001
    from circuitdb.ingest.runner import run_job

    samples: list[float] = []
    t0 = time.perf_counter()
    s = run_job(spec, store=store_uri, on_event=lambda name, info: samples.append(rss_mb()) if name == "written"
                else None)
    wall = time.perf_counter() - t0
    out = s.as_dict()
    out.update(wall=wall, graphs_per_s=s.written / wall, edges_per_s=s.edges / wall,
               write_fraction=s.write_seconds / wall, attribution_fraction=s.attribution_seconds / wall,
               rss_first_mb=samples[0] if samples else None, rss_last_mb=samples[-1] if samples else None,
               rss_max_mb=max(samples) if samples else None, n_rss_samples=len(samples))
    return out


def baseline(n: int, store_uri: str) -> dict:
    """The same one-prompt graphs written with one write_graph transaction each."""
    import circuitdb
    from circuitdb.store.base import open_store

    m = circuitdb.load_model("toy-induction-2l")
    ds = circuitdb.load_task("induction", m, n=n, seed=0, half_len=16)
    graphs = [circuitdb.attribute(m, ds.batch(slice(i, i + 1)), method="eap", metric="logprob", progress=False,
                                  batch_size=1) for i in range(n)]
    with open_store(store_uri) as st:
        t0 = time.perf_counter()
        for g in graphs:
            st.write_graph(g)
        dt = time.perf_counter() - t0
    return {"graphs": n, "write_seconds": dt, "graphs_per_s_writing": n / dt}


def main(argv: list[str] | None = None) -> None:
    import torch

    from circuitdb.ingest.examples import toy_induction_job, toy_ioi_feature_job

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--component", type=int, default=1000)
    p.add_argument("--feature", type=int, default=100)
    p.add_argument("--baseline", type=int, default=100)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    results: dict = {}
    try:
        if a.component:
            results["component"] = run(toy_induction_job(a.component), f"embedded:{tmp}/component")
            sys.stderr.write(json.dumps(results["component"], default=float) + "\n")
        if a.baseline:
            results["baseline"] = baseline(a.baseline, f"embedded:{tmp}/baseline")
            if "component" in results:
                c = results["component"]
                results["write_speedup"] = (c["written"] / c["write_seconds"]) / results["baseline"]["graphs_per_s_writing"]
        if a.feature:
            results["feature"] = run(toy_ioi_feature_job(a.feature), f"embedded:{tmp}/feature")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.write(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
