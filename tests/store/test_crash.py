"""Crash suite: a writer subprocess killed (SIGKILL) at random points of a write — at phase boundaries, at random
times, and inside COMMIT — then the store is opened, listed and every graph read and compared with the checksums
of the versions written. Zero partial graphs, zero lost graphs.

Default tier: a handful of kills on a ~100k-edge graph; ``-m slow``: ≥ 30 kills on a ~400k-edge graph.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_graphs import mixed_graph

from circuitdb.store.embedded import EmbeddedStore

WRITER = Path(__file__).with_name("crash_writer.py")
PHASES = ("journal", "copy-nodes", "copy-edges", "copy-graphs", "commit", "committed", "flip", "flipped",
          "collect", "done")


def checksum(g) -> str:
    """Order-independent checksum of a graph's nodes (in order, every column), edges (as a set) and metadata."""
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    h = hashlib.sha256(pd.util.hash_pandas_object(g.nodes, index=False).to_numpy().tobytes())
    order = np.lexsort((g.channel, g.dst, g.src))
    for arr in (g.src[order], g.dst[order], g.channel[order], g.weight[order]):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps(g.meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def big(gid: str, seed: int, n_edges: int):
    n_feat = int((n_edges / 4) ** 0.5 / 15) + 20  # enough distinct (source, target, channel) triples
    return mixed_graph(gid, seed=seed, n_edges=n_edges, n_feat=n_feat)


class Harness:
    """A store holding ``big`` (version A) and a bystander; writers rewrite ``big`` (version B) or write ``new``."""

    def __init__(self, root: Path, n_edges: int) -> None:
        self.root = root
        self.versions: dict[str, set[str]] = {"big": set(), "small": set(), "new": set()}
        dirs = {"A": big("big", 1, n_edges), "B": big("big", 2, n_edges), "N": big("new", 3, n_edges)}
        self.dirs = {}
        for name, g in dirs.items():
            self.dirs[name] = g.save(root / f"graph-{name}")
        for name, gid in (("A", "big"), ("B", "big"), ("N", "new")):
            self.versions[gid].add(checksum(dirs[name]))
        small = mixed_graph("small", n_edges=500)
        self.versions["small"].add(checksum(small))
        self.seed_store = root / "seed"
        with EmbeddedStore(self.seed_store) as s:
            s.write_graph(dirs["A"])
            s.write_graph(small)
        self.commit_s = self._time_commit()

    def _time_commit(self) -> float:
        store = self.fresh("timing")
        times = {}
        proc = subprocess.Popen([sys.executable, str(WRITER), str(store), str(self.dirs["B"])],
                                stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            times.setdefault(line.strip(), time.monotonic())
        assert proc.wait() == 0
        return times["committed"] - times["commit"]

    def fresh(self, name: str) -> Path:
        dst = self.root / name
        subprocess.run(["cp", "-r", str(self.seed_store), str(dst)], check=True)
        return dst

    def kill_run(self, store: Path, which: str, *, at_phase: str | None = None, after: str = "start",
                 delay: float = 0.0) -> str:
        """Run a writer of graph ``which`` and kill it: at ``at_phase`` (env), or ``delay`` s after phase ``after``.
        Returns the last phase it announced."""
        env = dict(os.environ)
        if at_phase:
            env["CIRCUITDB_CRASH_AT"] = at_phase
        proc = subprocess.Popen([sys.executable, str(WRITER), str(store), str(self.dirs[which])],
                                stdout=subprocess.PIPE, text=True, env=env)
        last = ""
        for line in proc.stdout:
            last = line.strip()
            if not at_phase and last == after:
                time.sleep(delay)
                proc.kill()
                break
        proc.wait()
        for line in proc.stdout:  # phases announced before the kill landed
            last = line.strip() or last
        return last

    def check(self, store: Path) -> dict[str, str]:
        """Open, list, read every graph; each must be a complete written version. Returns id → which version."""
        with EmbeddedStore(store) as s:
            listed = set(s.list_graphs()["id"])
            assert {"big", "small"} <= listed, f"lost a graph: listed {sorted(listed)}"
            assert listed <= {"big", "small", "new"}
            got = {}
            for gid in listed:
                g = s.read_graph(gid)  # raises StoreError on a count mismatch
                h = checksum(g)
                assert h in self.versions[gid], f"graph {gid!r} is not a version that was written (partial?)"
                got[gid] = h
            n_versions = int(s.run("MATCH (g:Graph) RETURN count(g)").iat[0, 0])
            assert n_versions == len(listed), "old or incomplete versions were not collected on open"
        return got


def _crash_runs(harness: Harness, n_kills: int, rng: random.Random) -> list[tuple[str, str]]:
    plans = []
    for i in range(n_kills):
        which = "B" if i % 3 else "N"
        kind = i % 3
        if kind == 0:
            plans.append((which, dict(at_phase=PHASES[(i // 3 * 7 + 6) % len(PHASES)])))
        elif kind == 1:
            plans.append((which, dict(after="commit", delay=rng.uniform(0, 1.3 * harness.commit_s))))
        else:
            plans.append((which, dict(after="journal", delay=rng.uniform(0, 2.0 + harness.commit_s))))
    outcomes = []
    for i, (which, plan) in enumerate(plans):
        store = harness.fresh(f"run{i}")
        last = harness.kill_run(store, which, **plan)
        harness.check(store)
        outcomes.append((which, last))
        subprocess.run(["rm", "-rf", str(store)], check=True)
    return outcomes


def _run_suite(tmp_path: Path, n_edges: int, n_kills: int) -> None:
    harness = Harness(tmp_path, n_edges)
    outcomes = _crash_runs(harness, n_kills, random.Random(20260101))
    in_commit = sum(1 for _, last in outcomes if last == "commit")
    print(f"{n_kills} kills, {in_commit} inside COMMIT (commit ≈ {harness.commit_s:.2f} s), last phases: "
          f"{sorted({last for _, last in outcomes})}")
    assert in_commit >= max(1, n_kills // 6), "too few kills landed inside COMMIT to mean anything"


def test_kills_at_every_phase_and_inside_commit_lose_nothing(tmp_path):
    _run_suite(tmp_path, n_edges=60_000, n_kills=6)


@pytest.mark.slow
def test_thirty_kills_on_a_large_graph(tmp_path):
    _run_suite(tmp_path, n_edges=400_000, n_kills=30)
