"""kill -9 at random moments of a real ``circuitdb ingest`` process, then a re-run: the store holds exactly the
job's graphs, each once and complete, equal to an uninterrupted run's — on the embedded store and on the live Neo4j
server (``neo4j_server`` fixture; the uninterrupted run goes into an embedded store, so the stores are checked
against each other, and the job has a fresh name, so its ids are its own on a shared server)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from circuitdb.ingest.runner import run_job
from circuitdb.ingest.spec import load_job
from circuitdb.store.base import open_store
from ingest_fixtures import graphs_by_id, same_graphs

JOB = """
name = "{name}"
[model]
name = "toy-induction-2l"
[data]
task = "induction"
n = {n}
seed = 3
options = {{ half_len = 8 }}
[attribution]
granularity = "component"
method = "eap"
metric = "logprob"
batch_size = 4
head_stats = false
[write]
graphs_per_transaction = 3
queue = 2
"""


def _child_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the children reuse compiled imports
    env["CIRCUITDB_STORE"] = ""
    return env


def _run_and_kill(job: Path, store: str, rng: random.Random, deadline: float) -> str:
    """Start an ingest process; once it has written its first transaction, kill -9 it after a random delay.
    Returns 'killed' or 'finished'."""
    proc = subprocess.Popen([sys.executable, "-m", "circuitdb", "-v", "ingest", str(job), "--store", store, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env())
    writing = threading.Event()

    def watch() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]  (the CLI logs through rich, to stdout)
            if "ingest: wrote" in line:
                writing.set()

    threading.Thread(target=watch, daemon=True).start()
    while not writing.is_set() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        return "finished"
    time.sleep(rng.uniform(0.0, 1.5))
    if proc.poll() is not None:
        return "finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return "killed"


def _rounds(tmp_path: Path, n: int, kills: int, seed: int, store: str | None = None) -> None:
    """``kills`` killed runs of one job into ``store`` (default a fresh embedded store), then a run to the end."""
    name = f"crash-{seed}-{uuid.uuid4().hex[:8]}"
    job = tmp_path / "crash.toml"
    job.write_text(JOB.format(n=n, name=name))
    ref = run_job(load_job(job), store=f"embedded:{tmp_path}/ref")
    store = store or f"embedded:{tmp_path}/killed"
    rng = random.Random(seed)
    outcomes = [_run_and_kill(job, store, rng, time.time() + 600) for _ in range(kills)]
    final = subprocess.run([sys.executable, "-m", "circuitdb", "ingest", str(job), "--store", store, "-q"],
                           capture_output=True, text=True, env=_child_env(), timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert outcomes.count("killed") >= 1, outcomes
    with open_store(f"embedded:{tmp_path}/ref") as a, open_store(store) as b:
        listed = [i for i in b.list_graphs()["id"].tolist() if i.startswith(name + "-")]
        assert len(listed) == len(set(listed)) == n  # none twice, none missing
        assert sorted(listed) == sorted(ref.graph_ids)
        mine = {gid: b.read_graph(gid) for gid in listed}
        assert same_graphs(graphs_by_id(a), mine) == []  # none partial, none different
        if b.uri.startswith("bolt"):  # Neo4j: versions a killed writer left incomplete are hidden; collect them
            b.gc(lease_seconds=0)
        # then exactly one stored version per graph and no stray nodes (embedded: collected when it was opened)
        rows = b.run("MATCH (g:Graph) WHERE g.id STARTS WITH $p RETURN count(g) AS n", {"p": name + "-"})
        nodes = b.run("MATCH (x:Node) WHERE x.graph_id STARTS WITH $p RETURN count(x) AS n", {"p": name + "-"})
        assert int(rows["n"].iat[0]) == n
        assert int(nodes["n"].iat[0]) == sum(g.n_nodes for g in mine.values())

def test_kill_minus_9_twice_then_rerun(tmp_path: Path) -> None:
    _rounds(tmp_path, n=24, kills=2, seed=0)


@pytest.mark.slow
def test_kill_minus_9_many_rounds(tmp_path: Path) -> None:
    _rounds(tmp_path, n=60, kills=6, seed=1)


@pytest.mark.neo4j
def test_kill_minus_9_on_neo4j_then_rerun(tmp_path: Path, neo4j_server: dict) -> None:
    _rounds(tmp_path, n=24, kills=2, seed=2, store=neo4j_server["CIRCUITDB_NEO4J_URI"])


@pytest.mark.neo4j
@pytest.mark.slow
def test_kill_minus_9_on_neo4j_many_rounds(tmp_path: Path, neo4j_server: dict) -> None:
    _rounds(tmp_path, n=60, kills=8, seed=3, store=neo4j_server["CIRCUITDB_NEO4J_URI"])
