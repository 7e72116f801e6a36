"""Graph versions of the embedded store (STORAGE_SPEC.md): the crash-safe write, the flip, repair and collection.

A write of graph id ``g`` is a new version ``sid = g@<random>`` (:func:`circuitdb.store.rows.new_sid`):

1. ``PATH/pending/<uuid>.json`` names the sids being written, so a crash between the steps below leaves a note of
   what to collect (written and fsynced on a thread while step 2 copies; joined — durable — before ``COMMIT``);
2. ONE transaction of ``COPY`` only: missing units, nodes, ``INSTANCE_OF``, edges, re-linked circuit memberships
   (``INCLUDES`` of the id's saved circuits, by node key) and the ``Graph`` rows with ``current = false``;
3. the flip, its own small transaction: ``current = (sid = new sid)`` for every row of the id;
4. the superseded versions (the sids the ids had before the write) are deleted, and the journal file removed.

A write that fails is a StoreError naming the graph(s) (:func:`_write_error`); after a failed ``COMMIT`` (a full
disk fails its checkpoint) nothing more is written in this process — the journal stays for the next open.

On open (:func:`recover`): an id with zero or several current rows gets its newest version whose recorded counts
verify; then every non-current version, and every journal sid that is not current, is deleted.

Write phases are announced to :data:`phase_hook` (tests) and ``CIRCUITDB_CRASH_AT=<phase>`` kills the process
(SIGKILL) when that phase starts, so a crash test can aim at any of: ``journal``, ``copy-units``, ``copy-nodes``,
``copy-instances``, ``copy-edges``, ``copy-includes``, ``copy-graphs``, ``commit`` (just before ``COMMIT``; a test
kills a random time later to land inside it), ``committed``, ``flip``, ``flipped``, ``collect``, ``done``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from circuitdb.errors import CircuitDBError, ConfigError, StoreError
from circuitdb.store import cypher as cy
from circuitdb.store import rows as rw

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.graph import AttributionGraph
    from circuitdb.store.embedded import EmbeddedStore

log = logging.getLogger(__name__)

CRASH_ENV = "CIRCUITDB_CRASH_AT"
PENDING_DIR = "pending"
#: called with each write phase's name (tests: a crash harness announces phases to its parent)
phase_hook: Callable[[str], None] | None = None


def phase(name: str) -> None:
    if phase_hook is not None:
        phase_hook(name)
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------------- journal
class _Journal:
    """``PATH/pending/<uuid>.json`` naming the sids of one write, written and fsynced (file and directory) on a
    thread while the rows are copied; :meth:`wait` before ``COMMIT`` makes it durable first (a disk error there is
    raised, and the write rolls back)."""

    def __init__(self, path: Path, sids: list[str]) -> None:
        self.dir = path / PENDING_DIR
        self.file = self.dir / f"{uuid.uuid4().hex}.json"
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, args=(sids,), name="circuitdb-journal", daemon=True)
        self._thread.start()

    def _write(self, sids: list[str]) -> None:
        try:
            self.dir.mkdir(exist_ok=True)
            with open(self.file, "w", encoding="utf-8") as fh:
                json.dump(sids, fh)
                fh.flush()
                os.fsync(fh.fileno())
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001 - handed to wait()
            self._error = e

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def remove(self) -> None:
        self._thread.join()
        self.file.unlink(missing_ok=True)


def _journal(path: Path) -> tuple[list[Path], set[str]]:
    files = sorted((path / PENDING_DIR).glob("*.json")) if (path / PENDING_DIR).is_dir() else []
    sids: set[str] = set()
    for f in files:
        try:
            sids.update(str(s) for s in json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # a journal file torn by a crash while it was written: nothing was written
            log.warning("ignoring unreadable write journal %s", f)
    return files, sids


# ---------------------------------------------------------------------------------------------------- schema
def check_schema(store: "EmbeddedStore") -> None:
    """Create the tables (writable stores) after refusing a store written by an older schema."""
    tables = set(store._df(cy.LB_TABLE_NAMES)["name"].tolist())
    if "Graph" in tables and "sid" not in store._df(cy.LB_GRAPH_COLUMNS)["name"].tolist():
        raise StoreError(
            f"the embedded store {str(store.path)!r} has the unversioned schema of circuitdb ≤ 0.1 (no Graph.sid); "
            "export its graphs with that version (circuitdb export) and import them into a new store")
    if not store.read_only:
        for stmt in cy.LB_SCHEMA:
            store._exec(stmt)
        if "step" not in store._df(cy.LB_GRAPH_COLUMNS)["name"].tolist():  # stores from before Graph.step
            store._exec(cy.LB_ADD_GRAPH_STEP)
        if "edges" not in store._df(cy.LB_INCLUDES_COLUMNS)["name"].tolist():  # before circuit edge memberships
            store._exec(cy.LB_ADD_INCLUDES_EDGES)


# ---------------------------------------------------------------------------------------------------- counts
def verify_counts(uri: str, graph_id: str, props: dict[str, Any], n_nodes: int, n_edges: int) -> None:
    """Raise StoreError naming the graph when a read got other counts than the Graph row recorded."""
    want = (int(props["n_nodes"]), int(props["n_edges"]))
    if (int(n_nodes), int(n_edges)) != want:
        raise StoreError(
            f"graph {graph_id!r} in {uri} is damaged: read {n_nodes} nodes and {n_edges} edges, but its version "
            f"{props.get('sid')!r} recorded {want[0]} and {want[1]}; re-import it (circuitdb import) or delete it")


def _version_verifies(store: "EmbeddedStore", sid: str, n_nodes: int, n_edges: int) -> bool:
    p = {"sid": sid}
    return (int(store._df(cy.LB_COUNT_VERSION_NODES, p).iat[0, 0]) == int(n_nodes)
            and int(store._df(cy.LB_COUNT_VERSION_EDGES, p).iat[0, 0]) == int(n_edges))


# ---------------------------------------------------------------------------------------------------- repair / gc
def recover(store: "EmbeddedStore") -> None:
    """Repair ids with zero or several current versions, then collect what nobody reads (see module doc)."""
    files, journal = _journal(store.path)
    versions = store._df(cy.LB_VERSIONS)
    fix = []
    for gid, grp in versions.groupby("id", sort=False):
        if int(grp["current"].fillna(False).astype(bool).sum()) == 1:
            continue
        for row in grp.sort_values("seq", ascending=False).itertuples():
            if _version_verifies(store, row.sid, row.n_nodes, row.n_edges):
                fix.append({"id": gid, "sid": row.sid})
                log.warning("graph %r: repaired to its newest complete version %r", gid, row.sid)
                break
        else:
            log.error("graph %r: no complete version left (%d incomplete); collecting them", gid, len(grp))
    if fix:
        with store._transaction():
            store._exec(cy.LB_FLIP, {"rows": fix})
    collect(store, extra=journal)
    for f in files:
        f.unlink(missing_ok=True)


def collect(store: "EmbeddedStore", *, extra: "set[str] | frozenset[str]" = frozenset(), full: bool = False) -> int:
    """Delete every non-current version (and the sids in ``extra`` that are not current; with ``full``, any sid
    some node carries without a current Graph row). Returns how many versions were deleted."""
    versions = store._df(cy.LB_VERSIONS)
    current = versions["current"].fillna(False).astype(bool)
    live = set(versions.loc[current, "sid"])
    dead = set(versions.loc[~current, "sid"]) | (set(extra) - live)
    if full:
        dead |= set(store._df(cy.LB_NODE_SIDS)["sid"].dropna()) - live
    if not dead:
        return 0
    phase("collect")
    with store._transaction():
        for sid in sorted(dead):
            delete_version_in_tx(store, sid)
    log.info("collected %d old or incomplete graph version(s)", len(dead))
    return len(dead)


def delete_version_in_tx(store: "EmbeddedStore", sid: str) -> None:
    p = {"sid": sid}
    store._exec(cy.LB_DELETE_ORPHAN_UNITS, p)
    store._exec(cy.LB_DELETE_VERSION_NODES, p)
    store._exec(cy.LB_DELETE_VERSION, p)


# ---------------------------------------------------------------------------------------------------- writes
def _relink_circuits(store: "EmbeddedStore", graph_id: str, graph: "AttributionGraph", sid: str) -> pd.DataFrame:
    """``INCLUDES`` rows linking the saved circuits of ``graph_id`` to the new version's nodes by key; refuses
    (ConfigError naming them) when a circuit's node is not in the new graph."""
    rows = store._df(cy.CIRCUIT_KEYS_OF_GRAPH, {"graph_id": graph_id})
    if not len(rows):
        return pd.DataFrame({"from": [], "to": [], "edges": []})
    keys = set(graph.keys.tolist())
    lost = rows[~rows["key"].isin(keys)]
    if len(lost):
        names = sorted(set(lost["name"].astype(str)))
        raise ConfigError(
            f"rewriting graph {graph_id!r} would break its saved circuit(s) {names}: node(s) "
            f"{sorted(set(lost['key']))[:5]} are not in the new graph; delete those circuits first "
            "(store.delete_graph / re-save them) or keep those nodes")
    return pd.DataFrame({"from": rows["uid"].tolist(), "to": [rw.node_uid(sid, k) for k in rows["key"].tolist()],
                         "edges": [list(e) if isinstance(e, (list, tuple)) else [] for e in rows["edges"]]})


def _graph_table(props: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    ints = {"seq", "n_nodes", "n_edges", "schema_version", "step"}
    types = {c: pa.int64() if c in ints else pa.bool_() if c == "current" else pa.string() for c in rw.GRAPH_PROPS}
    return pa.table({c: pa.array([p[c] for p in props], type=types[c]) for c in rw.GRAPH_PROPS})


def write_versions(store: "EmbeddedStore", graphs: "list[AttributionGraph]", gids: list[str]) -> list[str]:
    """Write each graph as a new version under its (checked, distinct) id ``gids[i]``: one COPY-only transaction,
    the flip, then the deletion of the superseded versions of those ids (module doc)."""
    import pyarrow as pa

    old = store._df(cy.LB_OLD_VERSIONS, {"ids": gids})  # the ids' existing versions: superseded by this write
    rewritten = set(old["id"])
    top = store._df(cy.LB_MAX_SEQ).iat[0, 0]
    seq0 = (0 if pd.isna(top) else int(top)) + 1
    nodes, edges, inst, units, props, includes, sids = [], [], [], [], [], [], []
    seen_units: set[str] = set()
    for i, (gid, g) in enumerate(zip(gids, graphs)):
        sid = rw.new_sid(gid)
        uids = rw.node_uids(g, sid)
        unit_ids = rw.unit_uids(g)
        sids.append(sid)
        nodes.append(rw.node_table(g, gid, uids, sid=sid))
        edges.append(rw.edge_table(g, gid, uids))
        inst.append(rw.instance_rows(g, gid, uids, unit_ids))
        fresh = set(unit_ids.tolist()) - seen_units  # graphs of one model share their units: build their rows once
        if fresh or not units:
            units.append(rw.unit_frame(g, unit_ids))
            seen_units |= fresh
        props.append(rw.graph_props(g, gid, sid=sid, current=False, seq=seq0 + i))
        if gid in rewritten:  # only an id that has a version can have saved circuits
            includes.append(_relink_circuits(store, gid, g, sid))
    unit_df = pd.concat(units, ignore_index=True).drop_duplicates("uid")
    missing = store._missing(cy.EXISTING_UNITS, unit_df["uid"].tolist())
    phase("journal")
    journal = _Journal(store.path, sids)
    copied = False
    try:
        with store._transaction(commit_phase="commit"):
            for name, query, frame in (
                ("copy-units", cy.LB_COPY_UNITS, rw.unit_table(unit_df[unit_df["uid"].isin(missing)])),
                ("copy-nodes", cy.LB_COPY_NODES, pa.concat_tables(nodes)),
                ("copy-instances", cy.LB_COPY_INSTANCE_OF, pd.concat(inst, ignore_index=True)),
                ("copy-edges", cy.LB_COPY_EDGES, pa.concat_tables(edges)),
                ("copy-includes", cy.LB_COPY_INCLUDES, pd.concat(includes, ignore_index=True) if includes else ()),
                ("copy-graphs", cy.LB_COPY_GRAPHS, _graph_table(props)),
            ):
                phase(name)
                store._copy(query, frame)
            journal.wait()  # durable before COMMIT can make the versions durable
            copied = True
    except BaseException as e:
        if not copied:  # rolled back: nothing of these versions is stored
            journal.remove()
        # else COMMIT itself failed (a full disk fails its checkpoint: "committed successfully, but the post-commit
        # checkpoint failed"): whatever it kept is not current, and the journal names it for the next open. No
        # write is tried now: after a failed checkpoint on a full disk, one more write made Ladybug 0.22 abort the
        # process when the database closed (std::terminate in the close), while closing without one was clean.
        raise _write_error(store, gids, e, "before the new version was complete") from e
    finally:
        store._forget_copies()
    phase("committed")
    phase("flip")
    try:
        with store._transaction():
            store._exec(cy.LB_FLIP, {"rows": [{"id": g, "sid": s} for g, s in zip(gids, sids)]})
    except BaseException as e:
        if not _disk_full(e):  # complete but not current: nobody reads them (on a full disk: the next open)
            _collect_quietly(store, sids)
        raise _write_error(store, gids, e, "when it was to become current") from e
    phase("flipped")
    try:
        _delete_versions(store, sorted(old["sid"]))
        journal.remove()
    except Exception:  # the new versions are current; the old ones are collected on the next open
        log.warning("graph(s) %s written; deleting the superseded version(s) failed, the next open collects them",
                    gids, exc_info=True)
    phase("done")
    for gid, g in zip(gids, graphs):
        log.info("wrote graph %r: %d nodes, %d edges", gid, g.n_nodes, g.n_edges)
    return gids


def _delete_versions(store: "EmbeddedStore", sids: list[str]) -> None:
    if not sids:
        return
    phase("collect")
    with store._transaction():
        for sid in sids:
            delete_version_in_tx(store, sid)
    log.info("collected %d superseded graph version(s)", len(sids))


def _collect_quietly(store: "EmbeddedStore", sids: list[str]) -> None:
    try:
        collect(store, extra=set(sids))
    except Exception:  # pragma: no cover - the journal stays; the next open collects them
        log.warning("could not collect the unfinished versions %s now; the next open does", sids, exc_info=True)


def _write_error(store: "EmbeddedStore", gids: list[str], e: BaseException, when: str) -> BaseException:
    """A StoreError naming the graph(s) for an engine or disk failure; other errors (ours, KeyboardInterrupt) as
    they are. The engine's "Transaction committed successfully, but the post-commit checkpoint failed" is not
    repeated: nothing of the write became current, whatever the engine kept is collected on the next open."""
    if isinstance(e, (CircuitDBError, KeyboardInterrupt, SystemExit)) or not isinstance(e, (RuntimeError, OSError)):
        return e
    what = f"graph {gids[0]!r}" if len(gids) == 1 else f"{len(gids)} graphs ({', '.join(map(repr, gids[:3]))}…)"
    text = str(e)
    if "committed successfully" in text and ": " in text:  # the cause is what failed the checkpoint
        text = text.split("recovered on restart: ", 1)[-1]
    cause = _disk_full(e) or "the database engine failed"
    return StoreError(
        f"writing {what} to the embedded store {str(store.path)!r} failed {when}: {cause} ({text}). Nothing of "
        "this write is visible: the stored version, if any, is unchanged and current; what the write left is "
        "collected the next time the store is opened" + (" with space free" if _disk_full(e) else ""))


def _disk_full(e: BaseException) -> str | None:
    """What ran out when ``e`` is a disk-space failure (ENOSPC, EFBIG, EDQUOT — as an OSError or in the engine's
    message), else None."""
    import errno

    code = e.errno if isinstance(e, OSError) else None
    text = str(e).lower()
    if code == errno.ENOSPC or "no space left" in text:
        return "the disk is full"
    if code == errno.EFBIG or "file too large" in text:
        return "a file size limit was reached"
    if code == errno.EDQUOT or "quota exceeded" in text:
        return "the disk quota is exceeded"
    return None
