"""Full disk: a write that runs out of space leaves the stored version intact and readable, raises StoreError naming
the graph (no traceback, no "committed successfully"), and once space is back the store opens cleanly — repaired,
what the failed write left collected — and takes the write.

Two real mechanisms, each in a writer subprocess (tests/store/disk_writer.py):
- ``tmpfs``: a tmpfs mounted small (root, and a container that permits ``mount``); "space back" = remount bigger;
  the engine sees ENOSPC. Measured on Ladybug 0.22: COMMIT raises "Transaction committed successfully, but the
  post-commit checkpoint failed … No space left on device"; the write's rows are durable but were never made
  current.
- ``fsize``: ``RLIMIT_FSIZE`` a little above the store's size with SIGXFSZ ignored (EFBIG): runs anywhere on Linux.
Each skips (saying why) where its mechanism is unavailable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_graphs import mixed_graph

from circuitdb.store import cypher as cy
from circuitdb.store.embedded import DB_FILE, EmbeddedStore
from circuitdb.store.versions import PENDING_DIR

WRITER = Path(__file__).with_name("disk_writer.py")
N_BIG = 150_000  # ~8 MB of rows: more than the space left in either mechanism


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(WRITER), *args], capture_output=True, text=True, timeout=600,
                          env=env)


def _mount_tmpfs(where: Path, size_mb: int, remount: bool = False) -> str | None:
    """Mount (or resize) a tmpfs; the reason it cannot, or None."""
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    opts = f"{'remount,' if remount else ''}size={size_mb}m"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    return None if r.returncode == 0 else f"mount -t tmpfs refused: {r.stderr.strip() or r.returncode}"


@pytest.fixture
def disk(request, tmp_path):
    """(store directory, how to give space back, whether the writer runs under RLIMIT_FSIZE) for the mechanism in
    ``request.param``."""
    if request.param == "tmpfs":
        where = tmp_path / "disk"
        where.mkdir()
        why = _mount_tmpfs(where, 12)
        if why:
            pytest.skip(why)
        try:
            yield where / "store", lambda: _mount_tmpfs(where, 96, remount=True), False
        finally:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
    else:
        if not hasattr(__import__("resource"), "RLIMIT_FSIZE"):
            pytest.skip("no RLIMIT_FSIZE on this platform")
        yield tmp_path / "store", lambda: None, True


def _versions(store: EmbeddedStore):
    return store._df(cy.LB_VERSIONS)


@pytest.mark.parametrize("disk", ["tmpfs", "fsize"], indirect=True)
def test_full_disk_keeps_the_old_version_and_recovers(disk, tmp_path):
    root, give_space_back, fsize = disk
    old, other = mixed_graph("g", n_edges=2000), mixed_graph("other", n_edges=500, seed=3)
    with EmbeddedStore(root) as store:
        store.write_graph(old)
        store.write_graph(other)
    new = mixed_graph("g", n_edges=N_BIG, seed=1, n_feat=40)
    new_dir = new.save(tmp_path / "graph-new")
    limit = [str((root / DB_FILE).stat().st_size + (1 << 20))] if fsize else []  # 1 MiB more than it holds
    r = _run(str(root), str(new_dir), *limit)
    assert r.returncode == 0, r.stderr[-3000:]  # no crash, no abort at close
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["error"] == "StoreError", out
    msg = out["message"]
    cause = "a file size limit was reached" if fsize else "the disk is full"
    assert "'g'" in msg and cause in msg and "unchanged" in msg, msg
    assert "committed successfully" not in msg, msg
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert out["n_edges"] == old.n_edges and not out["equals_new"], out  # the old version, read after the failure
    assert out["closed"]

    give_space_back()
    with EmbeddedStore(root) as store:  # opens cleanly: repair + collection of what the failed write left
        assert sorted(store.list_graphs()["id"]) == ["g", "other"]
        assert store.read_graph("g").equals(old)
        assert store.read_graph("other").equals(other)
        v = _versions(store)
        assert len(v) == 2 and v["current"].all(), v  # nothing but the two current versions
        assert not any((root / PENDING_DIR).glob("*.json"))
        store.write_graph(new)  # space is back: the write goes through
        assert store.read_graph("g").equals(new)
        assert len(_versions(store)) == 2
