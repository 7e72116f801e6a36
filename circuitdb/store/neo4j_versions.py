"""The Neo4j store's version write path (STORAGE_SPEC.md): chunk transactions of a new version, the flip that makes
it current, and the bounded deletes of versions nobody reads (after a flip, by :func:`gc`).

A write of graph ids ``gids``: :func:`write_versions` creates their Graph rows (``current = false``) and then nodes,
units + ``INSTANCE_OF`` links and edges in transactions of at most ``store.batch_size`` rows; :func:`flip` checks the
counts, re-links the ids' saved circuits to the new versions by node key (their edge memberships with them) and makes
the new versions current, in one small transaction; :func:`delete_version` removes a version in bounded
transactions. Functions of a connected :class:`~circuitdb.store.neo4j.Neo4jStore` (its managed transactions).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, StoreError
from circuitdb.graph import CHANNELS
from circuitdb.store import cypher as cy
from circuitdb.store import rows as rw
from circuitdb.store import versions as vs

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.graph import AttributionGraph
    from circuitdb.store.neo4j import Neo4jStore

log = logging.getLogger(__name__)

#: an incomplete version younger than this may still be being written by another process: gc leaves it alone
LEASE_SECONDS = 3600.0


def count_loop(store: "Neo4jStore", query: str, params: dict[str, Any]) -> None:
    """A bounded delete (``$batch_size`` per transaction) until it removes fewer than a batch."""
    p = {**params, "batch_size": store.batch_size}
    while (store._run_write(query, p) or [{"n": 0}])[0]["n"] >= store.batch_size:
        pass


def write_versions(store: "Neo4jStore", graphs: list["AttributionGraph"], gids: list[str]) -> list[str]:
    """Graph rows (not current), then nodes, units + links and edges in chunk transactions."""
    sids = [rw.new_sid(g) for g in gids]
    seq0 = time.time_ns()
    props = [rw.graph_props(g, gid, sid=sid, current=False, seq=seq0 + i)
             for i, (g, gid, sid) in enumerate(zip(graphs, gids, sids))]
    vs.phase("neo4j-versions")
    store._run_write(cy.NEO4J_CREATE_VERSIONS, {"rows": props})
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for g, gid, sid in zip(graphs, gids, sids):
        for kind, rows in rw.node_rows_by_kind(g, gid, sid=sid).items():
            by_kind.setdefault(kind, []).extend(rows)
    vs.phase("neo4j-nodes")
    for kind, rows in by_kind.items():
        for sl in store._chunks(len(rows)):
            store._run_write(cy.NEO4J_CREATE_NODES[kind], {"rows": rows[sl]})
            vs.phase("neo4j-chunk")
    _write_units(store, graphs, sids)
    vs.phase("neo4j-edges")
    src, dst, weight, chan = _edge_columns(graphs, sids)
    for sl in store._chunks(len(src)):
        p = {"s": src[sl].tolist(), "t": dst[sl].tolist(), "w": weight[sl].tolist(), "c": chan[sl].tolist()}
        store._run_write(cy.NEO4J_CREATE_EDGES, p)
        vs.phase("neo4j-chunk")
    return sids


def _write_units(store: "Neo4jStore", graphs: list["AttributionGraph"], sids: list[str]) -> None:
    frames, links = [], []
    for g, sid in zip(graphs, sids):
        units = rw.unit_uids(g)
        frames.append(rw.unit_frame(g, units))
        links.append(rw.instance_rows(g, sid, units=units))
    if not frames:
        return
    unit_df = pd.concat(frames, ignore_index=True).drop_duplicates("uid").set_index("uid", drop=False)
    link_df = pd.concat(links, ignore_index=True)
    vs.phase("neo4j-units")
    for sl in store._chunks(len(link_df)):
        s, t = link_df["from"].iloc[sl].tolist(), link_df["to"].iloc[sl].tolist()
        units = [{k: rw.plain_value(v) for k, v in rec.items()}
                 for rec in unit_df.loc[list(dict.fromkeys(t))].to_dict("records")]
        store._run_write(cy.NEO4J_MERGE_UNITS_AND_LINKS, {"units": units, "s": s, "t": t})
        vs.phase("neo4j-chunk")


def _edge_columns(graphs: list["AttributionGraph"], sids: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source uids, target uids, weights, channels (None = none) of all graphs, as flat arrays."""
    chans = np.asarray(CHANNELS, dtype=object)  # "" = no channel, as in the embedded store (queries filter on it)
    src, dst, w, c = [], [], [], []
    for g, sid in zip(graphs, sids):
        uids = rw.node_uids(g, sid)
        src.append(uids[g.src])
        dst.append(uids[g.dst])
        w.append(np.asarray(g.weight, dtype=np.float64))
        c.append(chans[g.channel])
    if not src:
        return (np.zeros(0, object),) * 2 + (np.zeros(0), np.zeros(0, object))  # type: ignore[return-value]
    return np.concatenate(src), np.concatenate(dst), np.concatenate(w), np.concatenate(c)


def flip(store: "Neo4jStore", graphs: list["AttributionGraph"], gids: list[str], sids: list[str]) -> list[str]:
    """One transaction: counts verified, circuits re-linked by key, the new versions current. Returns the
    superseded sids. On any failure the new versions are collected and the old ones stay current."""
    vs.phase("flip")

    def work(tx: Any) -> list[str]:
        relink = []
        for g, gid, sid in zip(graphs, gids, sids):
            got = tx.run(cy.NEO4J_VERSION_COUNTS, {"sid": sid}).single()
            if (got["n_nodes"], got["n_edges"]) != (g.n_nodes, g.n_edges):
                raise StoreError(f"graph {gid!r}: version {sid!r} holds {got['n_nodes']} nodes and "
                                 f"{got['n_edges']} edges after writing {g.n_nodes} and {g.n_edges}; not flipped")
            relink += _relink_rows(tx, g, gid, sid)
        if relink:
            tx.run(cy.NEO4J_RELINK_CIRCUITS, {"rows": relink}).consume()
        return [r["sid"] for r in tx.run(cy.NEO4J_FLIP, {"rows": [{"id": g, "sid": s} for g, s in zip(gids, sids)]})]

    try:
        stale = store._write(work)
    except BaseException:
        try:  # nothing reads the unflipped versions: collect them now (gc would after the lease)
            for sid in sids:
                delete_version(store, sid)
        except Exception:  # pragma: no cover - gc collects them
            log.exception("could not collect the unflipped versions %s", sids)
        raise
    vs.phase("flipped")
    return stale


def _relink_rows(tx: Any, graph: "AttributionGraph", graph_id: str, sid: str) -> list[dict[str, Any]]:
    """INCLUDES rows linking the id's saved circuits to the new version by node key (with their edge memberships);
    refuses (ConfigError naming them) when a circuit's node is not in the new graph."""
    rows = [dict(r) for r in tx.run(cy.NEO4J_CIRCUIT_KEYS, {"graph_id": graph_id})]
    keys = set(graph.keys.tolist())
    lost = [r for r in rows if r["key"] not in keys]
    if lost:
        names = sorted({r["name"] for r in lost})
        raise ConfigError(
            f"rewriting graph {graph_id!r} would break its saved circuit(s) {names}: node(s) "
            f"{sorted({r['key'] for r in lost})[:5]} are not in the new graph; delete those circuits first or "
            "keep those nodes")
    return [{"c": r["uid"], "n": rw.node_uid(sid, r["key"]), "edges": r["edges"]} for r in rows]


def delete_version(store: "Neo4jStore", sid: str) -> None:
    """Delete one version in bounded transactions; its Graph row goes last (so gc finds a half-deleted one)."""
    p = {"sid": sid}
    count_loop(store, cy.NEO4J_DELETE_VERSION_EDGES, p)
    count_loop(store, cy.NEO4J_DELETE_ORPHAN_UNITS, p)
    count_loop(store, cy.NEO4J_DELETE_VERSION_NODES, p)
    store._run_write(cy.NEO4J_DELETE_VERSION, p)


def gc(store: "Neo4jStore", lease_seconds: float = LEASE_SECONDS) -> int:
    """Delete the versions nobody reads (see :meth:`Neo4jStore.gc`); how many went."""
    cutoff = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=float(lease_seconds))
              ).isoformat(timespec="microseconds")
    _, rows = store._read(cy.NEO4J_COLLECTABLE, {"cutoff": cutoff})
    for sid, gid, complete in rows:
        log.info("collecting %s version %r of graph %r", "superseded" if complete else "incomplete", sid, gid)
        delete_version(store, sid)
    return len(rows)
