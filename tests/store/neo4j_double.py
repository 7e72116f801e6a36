"""A test double for the neo4j driver: records every call and emulates the statements of Neo4jStore in memory.

``FakeDriver`` has the surface Neo4jStore uses (``verify_connectivity``, ``session(database=, default_access_mode=)``,
``close``); sessions offer ``run`` (auto-commit), ``begin_transaction``, ``execute_read``, ``execute_write``;
transactions ``run``, ``commit``, ``rollback``, ``close``, ``closed``. Every statement is logged in ``driver.calls``
(and the module-wide :data:`EMITTED`, which the grammar test lints) with its parameters, access mode and transaction.

``MemoryGraphDB`` answers the ``NEO4J_*`` statements of :mod:`circuitdb.store.cypher` (matched by identity of text,
not by parsing) over Python dicts, copy-on-begin / swap-on-commit, so that round trips, idempotence and atomicity are
observable. It is NOT a Cypher engine: anything else gets ``canned`` records (default none). The live test
(test_neo4j_live.py) checks the same behaviour on a real server.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import neo4j

from circuitdb.graph import NODE_COLUMNS
from circuitdb.store import cypher as cy
from circuitdb.store.readonly import is_write_query

EMITTED: list[tuple[str, dict[str, Any]]] = []


@dataclass
class Call:
    query: str
    params: dict[str, Any]
    mode: str  # "READ" / "WRITE"
    tx: str  # "auto" or "tx<N>"


class FakeResult:
    def __init__(self, records: list[dict[str, Any]], keys: list[str] | None = None) -> None:
        self._records = [neo4j.Record(r) for r in records]
        self._keys = keys if keys is not None else (list(records[0]) if records else [])

    def keys(self) -> list[str]:
        return list(self._keys)

    def __iter__(self):
        return iter(self._records)

    def single(self) -> Any:
        return self._records[0] if self._records else None

    def consume(self) -> None:
        return None


@dataclass
class State:
    graphs: dict[str, dict] = field(default_factory=dict)
    nodes: dict[str, dict] = field(default_factory=dict)  # uid -> {"labels": [...], "props": {...}}
    edges: list[tuple[str, str, dict]] = field(default_factory=list)
    units: dict[str, dict] = field(default_factory=dict)
    instance_of: list[tuple[str, str]] = field(default_factory=list)
    circuits: dict[str, dict] = field(default_factory=dict)
    includes: list[tuple[str, str]] = field(default_factory=list)


class ConstraintError(neo4j.exceptions.ClientError):
    pass


class MemoryGraphDB:
    """In-memory answers to Neo4jStore's statements (see module docstring)."""

    def __init__(self) -> None:
        self.state = State()
        self.canned: dict[str, list[dict[str, Any]]] = {}
        self._kinds = {q: k for k, q in cy.NEO4J_CREATE_NODES.items()}
        names = ("kinds", "layers", "positions")
        combos = [tuple(f for j, f in enumerate(names) if i >> j & 1) for i in range(8)]
        self._edge_reads: dict[str, tuple[str, ...] | None] = {cy.read_subgraph_edges(c): c for c in combos}
        self._edge_reads[cy.READ_EDGES] = None

    def answer(self, s: State, q: str, p: dict[str, Any]) -> list[dict[str, Any]] | FakeResult:
        gid = p.get("graph_id")
        if q in cy.NEO4J_SCHEMA:
            return []
        if q == cy.COUNT_GRAPH:
            return [{"n": int(gid in s.graphs)}]
        if q == cy.NEO4J_DELETE_GRAPH_CIRCUITS:
            gone = [u for u, c in s.circuits.items() if c["graph_id"] == gid]
            for u in gone:
                del s.circuits[u]
            s.includes = [(c, n) for c, n in s.includes if c not in gone]
            return [{"n": len(gone)}]
        if q == cy.NEO4J_DELETE_EDGES_BATCH:
            mine = [i for i, (a, _, _) in enumerate(s.edges) if s.nodes[a]["props"]["graph_id"] == gid]
            drop = set(mine[: p["batch_size"]])
            s.edges = [e for i, e in enumerate(s.edges) if i not in drop]
            return [{"n": len(drop)}]
        if q == cy.NEO4J_DELETE_ORPHAN_UNITS:
            mine = {u for n, u in s.instance_of if s.nodes[n]["props"]["graph_id"] == gid}
            other = {u for n, u in s.instance_of if s.nodes[n]["props"]["graph_id"] != gid}
            for u in mine - other:
                del s.units[u]
            s.instance_of = [(n, u) for n, u in s.instance_of if u not in mine - other]
            return [{"n": len(mine - other)}]
        if q == cy.NEO4J_DELETE_NODES_BATCH:
            drop = set(itertools.islice((u for u, n in s.nodes.items() if n["props"]["graph_id"] == gid),
                                        p["batch_size"]))
            for u in drop:
                del s.nodes[u]
            s.edges = [e for e in s.edges if e[0] not in drop and e[1] not in drop]
            s.instance_of = [e for e in s.instance_of if e[0] not in drop]
            s.includes = [e for e in s.includes if e[1] not in drop]
            return [{"n": len(drop)}]
        if q == cy.NEO4J_DELETE_GRAPH:
            return [{"n": int(s.graphs.pop(gid, None) is not None)}]
        if q == cy.NEO4J_CREATE_GRAPH:
            if p["props"]["id"] in s.graphs:
                raise ConstraintError("Graph.id already exists")
            s.graphs[p["props"]["id"]] = dict(p["props"])
            return []
        if q in self._kinds:
            for r in p["rows"]:
                if r["uid"] in s.nodes:
                    raise ConstraintError(f"Node.uid {r['uid']} already exists")
                s.nodes[r["uid"]] = {"labels": ["Node", cy.NEO4J_KIND_LABELS[self._kinds[q]]],
                                     "props": {k: v for k, v in r.items() if v is not None}}
            return []
        if q == cy.NEO4J_MERGE_UNITS:
            for r in p["rows"]:
                s.units.setdefault(r["uid"], dict(r))
            return []
        if q == cy.NEO4J_CREATE_INSTANCE_OF:
            s.instance_of += [(r["s"], r["t"]) for r in p["rows"] if r["s"] in s.nodes and r["t"] in s.units]
            return []
        if q == cy.NEO4J_CREATE_EDGES:
            s.edges += [(r["s"], r["t"], {"weight": r["w"], "abs_weight": r["a"], "channel": r["c"]})
                        for r in p["rows"] if r["s"] in s.nodes and r["t"] in s.nodes]
            return []
        if q == cy.READ_GRAPH_PROPS:
            cols = ["id", "meta", "n_nodes", "n_edges"]
            return FakeResult([{c: s.graphs[gid].get(c) for c in cols}] if gid in s.graphs else [], cols)
        if q == cy.READ_NODES:
            cols = ["idx", *NODE_COLUMNS]
            return FakeResult([{c: n["props"].get(c) for c in cols} for n in s.nodes.values()
                               if n["props"]["graph_id"] == gid], cols)
        if q in self._edge_reads:
            return FakeResult(self._edges(s, p, self._edge_reads[q]), ["source", "target", "weight", "channel"])
        if q == cy.LIST_GRAPHS:
            cols = ["id", "model", "granularity", "method", "metric", "prompt", "n_nodes", "n_edges", "created_at"]
            return FakeResult([{c: g.get(c) for c in cols} for _, g in sorted(s.graphs.items())], cols)
        if q in (cy.LIST_CIRCUITS, cy.LIST_CIRCUITS_OF_GRAPH):
            cols = ["uid", "name", "graph_id", "method", "params", "scores", "n_nodes"]
            return FakeResult([{c: v.get(c) for c in cols} for _, v in sorted(s.circuits.items())
                               if q == cy.LIST_CIRCUITS or v["graph_id"] == gid], cols)
        if q == cy.FIND_CIRCUITS:
            cols = ["uid", "name", "graph_id", "method", "params", "scores", "edges", "created_at"]
            return FakeResult([{c: v.get(c) for c in cols} for _, v in sorted(s.circuits.items())
                               if v["name"] == p["name"]], cols)
        if q == cy.EXISTING_NODES:
            return FakeResult([{"uid": u} for u in p["uids"] if u in s.nodes], ["uid"])
        if q == cy.CIRCUIT_NODE_KEYS:
            ns = sorted((s.nodes[n]["props"] for c, n in s.includes if c == p["uid"]), key=lambda d: d["idx"])
            return FakeResult([{"key": n["key"], "idx": n["idx"]} for n in ns], ["key", "idx"])
        if q == cy.NEO4J_DELETE_CIRCUIT:
            s.circuits.pop(p["uid"], None)
            s.includes = [e for e in s.includes if e[0] != p["uid"]]
            return []
        if q == cy.NEO4J_CREATE_CIRCUIT:
            s.circuits[p["props"]["uid"]] = dict(p["props"])
            return []
        if q == cy.NEO4J_LINK_CIRCUIT:
            hits = [u for u in p["uids"] if u in s.nodes]
            s.includes += [(p["uid"], u) for u in hits]
            return [{"n": len(hits)}]
        return self.canned.get(q, [])

    @staticmethod
    def _edges(s: State, p: dict[str, Any], filters: tuple[str, ...] | None) -> list[dict[str, Any]]:
        out = []
        for a, b, r in s.edges:
            na, nb = s.nodes[a]["props"], s.nodes[b]["props"]
            if na["graph_id"] != p["graph_id"] or (filters is not None and r["abs_weight"] < p["min_abs_weight"]):
                continue
            ok = all(f not in (filters or ()) or (na[c] in p[f] and nb[c] in p[f])
                     for f, c in (("kinds", "kind"), ("layers", "layer"), ("positions", "pos")))
            if ok:
                out.append({"source": na["idx"], "target": nb["idx"], "weight": r["weight"], "channel": r["channel"]})
        return out


class FakeTransaction:
    def __init__(self, driver: "FakeDriver", mode: str, name: str) -> None:
        self.driver, self.mode, self.name = driver, mode, name
        self.state = copy.deepcopy(driver.db.state)
        self._closed = False
        driver.events.append(("begin", name, mode))

    def run(self, query: str, parameters: dict[str, Any] | None = None, **kw: Any) -> FakeResult:
        if self._closed:
            raise neo4j.exceptions.TransactionError(self, "Transaction closed")
        return self.driver._run(self.state, query, {**(parameters or {}), **kw}, self.mode, self.name)

    def commit(self) -> None:
        self.driver.events.append(("commit", self.name))
        if self.driver.fail_commit:
            self._closed = True
            raise neo4j.exceptions.ServiceUnavailable("connection lost during commit")
        self.driver.db.state = self.state
        self._closed = True

    def rollback(self) -> None:
        self.driver.events.append(("rollback", self.name))
        self._closed = True

    def close(self) -> None:
        if not self._closed:
            self.rollback()

    def closed(self) -> bool:
        return self._closed


class FakeSession:
    def __init__(self, driver: "FakeDriver", database: str | None, mode: str) -> None:
        self.driver, self.database, self.mode = driver, database, mode

    def __enter__(self) -> "FakeSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.driver.events.append(("session_closed", self.mode))

    def run(self, query: str, parameters: dict[str, Any] | None = None, **kw: Any) -> FakeResult:
        tx = FakeTransaction(self.driver, self.mode, "auto")
        try:
            out = tx.run(query, parameters, **kw)
            tx.commit()
            return out
        finally:
            tx.close()

    def begin_transaction(self, **kw: Any) -> FakeTransaction:
        return FakeTransaction(self.driver, self.mode, f"tx{next(self.driver.tx_ids)}")

    def _managed(self, fn: Callable[[Any], Any], mode: str) -> Any:
        tx = FakeTransaction(self.driver, mode, f"managed-{mode.lower()}{next(self.driver.tx_ids)}")
        try:
            out = fn(tx)
            tx.commit()
            return out
        finally:
            tx.close()

    def execute_read(self, fn: Callable[[Any], Any]) -> Any:
        return self._managed(fn, "READ")

    def execute_write(self, fn: Callable[[Any], Any]) -> Any:
        return self._managed(fn, "WRITE")


class FakeDriver:
    """``fail_on(query, params) -> bool`` makes that statement raise a TransientError; ``fail_commit`` makes commits
    fail (the transaction's changes are then lost, as on a server)."""

    def __init__(self, db: MemoryGraphDB | None = None) -> None:
        self.db = db or MemoryGraphDB()
        self.calls: list[Call] = []
        self.events: list[tuple] = []
        self.sessions: list[dict[str, Any]] = []
        self.fail_on: Callable[[str, dict], bool] | None = None
        self.fail_commit = False
        self.closed = False
        self.tx_ids = itertools.count()

    def verify_connectivity(self) -> None:
        self.events.append(("verify_connectivity",))

    def session(self, database: str | None = None, default_access_mode: str = "WRITE", **kw: Any) -> FakeSession:
        self.sessions.append({"database": database, "default_access_mode": default_access_mode, **kw})
        return FakeSession(self, database, default_access_mode)

    def close(self) -> None:
        self.closed = True

    def _run(self, state: State, query: str, params: dict[str, Any], mode: str, tx: str) -> FakeResult:
        self.calls.append(Call(query, params, mode, tx))
        EMITTED.append((query, params))
        if self.fail_on is not None and self.fail_on(query, params):
            raise neo4j.exceptions.TransientError("injected failure")
        if mode == "READ" and is_write_query(query):  # as the server does in READ access mode
            raise neo4j.exceptions.ClientError("Writing in read access mode not allowed")
        out = self.db.answer(state, query, params)
        return out if isinstance(out, FakeResult) else FakeResult(out)

    def queries(self, tx: str | None = None) -> list[str]:
        return [c.query for c in self.calls if tx is None or c.tx == tx]


# ---------------------------------------------------------------------- fixtures shared by the Neo4j tests
NASTY_ID = "g'1\"} //x\\`) DETACH DELETE n //"


def sample_graph(graph_id: str = "sample", *, model: str = "toy", scale: float = 1.0):
    """Every node kind, per-position keys, NaN and finite optional floats, q/k/v channels, quotes in labels."""
    import numpy as np
    import pandas as pd

    from circuitdb.graph import AttributionGraph

    nodes = pd.DataFrame({
        "key": ["E@0", "E@1", "A0.1@1", "A0.1@0", "M0@1", "F0:3@1", "ERR0@1", "A1.0@1", "L:5@1"],
        "kind": ["embed", "embed", "head", "head", "mlp", "feature", "error", "head", "logit"],
        "layer": [-1, -1, 0, 0, 0, 0, 0, 1, 2],
        "head": [-1, -1, 1, 1, -1, -1, -1, 0, -1],
        "pos": [0, 1, 1, 0, 1, 1, 1, 1, 1],
        "feature": [-1, -1, -1, -1, -1, 3, -1, -1, -1],
        "token": [10, 11, -1, -1, -1, -1, -1, -1, 5],
        "dictionary": ["", "", "", "", "", "tc'0", "", "", ""],
        "label": ["the", "cat", "", "", "", "a \"quoted\" } // label", "", "", " France"],
        "activation": [np.nan, np.nan, 1.5, 0.5, np.nan, 0.25, np.nan, 2.0, np.nan],
        "probability": [np.nan] * 8 + [0.75],
    })
    e = [(0, 3, 0.4, 3), (1, 2, 0.9, 1), (0, 2, -0.2, 2), (3, 2, 0.05, 2), (2, 4, 1.2, 0), (4, 5, -0.7, 0),
         (5, 7, 0.6, 0), (6, 7, 0.01, 0), (2, 7, -1.1, 1), (7, 8, 2.5, 0), (5, 8, 0.3, 0), (1, 8, -0.02, 0)]
    src, dst, w, ch = (np.array(c) for c in zip(*e))
    return AttributionGraph(nodes, src, dst, w * scale, ch, {"id": graph_id, "model": model, "granularity": "feature",
                                                           "method": "test", "prompt": "the cat"})


#: the ad-hoc texts exercise() passes to run() (everything else Neo4jStore sends comes from circuitdb.store.cypher)
EXERCISE_READ = "MATCH (n:Node {graph_id: $graph_id}) RETURN n.key AS key ORDER BY key"
EXERCISE_WRITE = "MATCH (n:Node {uid: $uid}) SET n.label = $label"
EXERCISE_REFUSED = "MATCH (n:Node) DETACH DELETE n"


def exercise(store) -> None:
    """Call every public method of a connected Neo4jStore (the grammar test lints what this emits)."""
    import pytest

    from circuitdb.errors import ConfigError, GraphNotFoundError, QueryError

    g = sample_graph(NASTY_ID)
    store.write_graph(g)
    store.write_graph(g)  # the replace path
    store.read_graph(NASTY_ID)
    store.read_subgraph(NASTY_ID, min_abs_weight=0.1, kinds=["head", "logit"], layers=[0, 1, 2], positions=[1])
    store.list_graphs()
    store.has_graph(NASTY_ID)
    store.save_circuit("c'1", NASTY_ID, ["A0.1@1", "L:5@1"], method="topn", params={"n": 2}, scores={"f": 1.0})
    with pytest.raises(ConfigError):
        store.save_circuit("bad", NASTY_ID, ["A0.1@1", "nope"], method="topn", params={}, scores={})
    store.list_circuits()
    store.list_circuits(NASTY_ID)
    store.read_circuit_record("c'1", NASTY_ID)
    store.run(EXERCISE_READ, {"graph_id": NASTY_ID})
    with pytest.raises(QueryError):
        store.run(EXERCISE_REFUSED)
    store.run(EXERCISE_WRITE, {"uid": NASTY_ID + "/E@0", "label": "x"}, write=True)
    store.delete_graph(NASTY_ID)
    with pytest.raises(GraphNotFoundError):
        store.read_graph(NASTY_ID)
    assert store.delete_graph(NASTY_ID) is False
