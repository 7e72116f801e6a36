"""`Neo4jStore`: the attribution-graph store on a Neo4j 5 server, through the official ``neo4j`` driver.

Schema (STORAGE_SPEC.md, the same logical schema as the embedded store): ``(:Graph {sid, id, current, complete, seq,
written_at, n_nodes, n_edges, ...meta})`` per written version; ``(:Node:<Kind> {uid = sid/key, sid, graph_id, key,
name, kind, ...})`` with ``<Kind>`` one of ``Embed Head Mlp Feature Error Logit`` and ``name`` the Browser caption
(absent values are absent properties); ``(:Node)-[:ATTRIBUTES {weight, abs_weight, channel}]->(:Node)``,
``(:Node)-[:INSTANCE_OF]->(:Unit)`` (units shared across graphs), ``(:Circuit)-[:INCLUDES {edges}]->(:Node)`` (each
link lists the circuit's edges out of its node: :func:`circuitdb.store.rows.circuit_edge_lists`).

Writes fit a server: a graph goes in bounded chunk transactions (≤ ``batch_size`` rows each: nodes, units with
their INSTANCE_OF links, edges as columnar lists, never one map per edge) under a fresh storage id, then one small
flip transaction verifies the counts, re-links the id's circuits, and makes the new version current. Readers follow
only ``current`` Graph rows, so they see the old complete graph or the new one. Superseded versions are collected
after the flip; incomplete ones (a writer killed mid-write) by :meth:`Neo4jStore.gc` once older than a lease. That
write path lives in :mod:`circuitdb.store.neo4j_versions`.
Every transaction is a managed one (``execute_write`` / ``execute_read``): the driver retries transient errors
(deadlocks between writers MERGE-ing the same Units, leader switches, dropped connections) with backoff.

``connect()`` only checks connectivity: the schema (constraints, indexes) is created by the first write or by
:meth:`Neo4jStore.init` (``circuitdb neo4j init``), so a user who may only read can list and query. All Cypher
lives in :mod:`circuitdb.store.cypher`; values go in as parameters only. Configuration comes from the arguments or
from ``CIRCUITDB_NEO4J_URI`` / ``_USER`` / ``_PASSWORD`` / ``_DATABASE``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from circuitdb.errors import CircuitDBError, ConfigError, GraphNotFoundError, QueryError, StoreError
from circuitdb.graph import AttributionGraph
from circuitdb.store import cypher as cy
from circuitdb.store import neo4j_versions as nv
from circuitdb.store import rows as rw
from circuitdb.store import versions as vs
from circuitdb.store.base import GraphStore
from circuitdb.store.readonly import assert_read_only

log = logging.getLogger(__name__)

URI_ENV = "CIRCUITDB_NEO4J_URI"
USER_ENV = "CIRCUITDB_NEO4J_USER"
PASSWORD_ENV = "CIRCUITDB_NEO4J_PASSWORD"
DATABASE_ENV = "CIRCUITDB_NEO4J_DATABASE"
READ, WRITE = "READ", "WRITE"  # the values of neo4j.READ_ACCESS / neo4j.WRITE_ACCESS
#: client errors that a concurrent writer can cause and that a retry resolves (the driver retries transient ones)
_RETRY_CODES = ("Neo.ClientError.Statement.EntityNotFound", "Neo.ClientError.Schema.ConstraintValidationFailed")


def _driver_errors() -> tuple[type[BaseException], ...]:
    try:
        from neo4j.exceptions import DriverError, Neo4jError
    except ImportError:  # pragma: no cover - the driver is a dependency
        return (OSError,)
    return (Neo4jError, DriverError, OSError)


class Neo4jStore(GraphStore):
    """Attribution graphs in Neo4j. ``driver`` injects a ready driver (or a test double); the constructor does no I/O.

    Example::

        with Neo4jStore("neo4j://localhost:7687", password="...") as store:
            store.write_graph(graph)
            sub = store.read_subgraph(graph.id, min_abs_weight=0.1, kinds=["head", "logit"])
    """

    def __init__(self, uri: str | None = None, *, user: str | None = None, password: str | None = None,
                 database: str | None = None, batch_size: int = 20_000, driver: Any = None) -> None:
        self.uri = uri or os.environ.get(URI_ENV) or ""
        if not self.uri and driver is None:
            raise ConfigError(f"no Neo4j URI: pass one (neo4j://host:7687, bolt://host:7687) or set {URI_ENV}")
        self.user = user if user is not None else os.environ.get(USER_ENV, "neo4j")
        self._password = password if password is not None else os.environ.get(PASSWORD_ENV)
        self.database = database or os.environ.get(DATABASE_ENV) or None
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self._driver = driver
        self._owns_driver = driver is None
        self._connected = False
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"Neo4jStore(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> "Neo4jStore":
        """Create the driver (unless injected) and verify connectivity. Writes nothing (see :meth:`init`)."""
        if self._connected:
            return self
        if self._driver is None:
            try:
                import neo4j
            except ImportError as e:  # pragma: no cover - the driver is a dependency
                raise StoreError("the neo4j driver is not installed; pip install 'neo4j>=5'") from e
            auth = (self.user, self._password) if self._password else None
            try:
                self._driver = neo4j.GraphDatabase.driver(self.uri, auth=auth, notifications_min_severity="OFF")
            except (ValueError, neo4j.exceptions.ConfigurationError) as e:
                raise ConfigError(f"bad Neo4j URI {self.uri!r}: {e}; use neo4j://host:7687 or bolt://host:7687") from e
        try:
            with self._errors("connecting to"):
                self._driver.verify_connectivity()
        except ValueError as e:  # an address the driver cannot resolve
            raise ConfigError(f"bad Neo4j URI {self.uri!r}: {e}; use neo4j://host:7687 or bolt://host:7687") from e
        self._connected = True
        log.info("connected to Neo4j at %s (database %s)", self.uri, self.database or "default")
        return self

    def init(self) -> "Neo4jStore":
        """Create circuitdb's constraints and indexes (idempotent; needs schema rights) and wait until they are
        online. The first write does it too."""
        if self._schema_ready:
            return self
        self.connect()
        with self._errors("creating the schema in"), self._session(WRITE) as s:
            for stmt in cy.NEO4J_SCHEMA:  # schema statements cannot share a transaction with data
                s.run(stmt).consume()
            s.run(cy.NEO4J_AWAIT_INDEXES).consume()
        self._schema_ready = True
        return self

    def close(self) -> None:
        if self._driver is not None and self._owns_driver:
            self._driver.close()
            self._driver = None
        self._connected = False

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _errors(self, what: str, cls: type[CircuitDBError] = StoreError) -> Iterator[None]:
        try:
            yield
        except CircuitDBError:
            raise
        except _driver_errors() as e:
            raise cls(f"Neo4j {what} {self.uri} failed: {e}") from e

    def _session(self, mode: str) -> Any:
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _read(self, query: str, params: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        """Run one read in a READ-access managed transaction; (column names, rows)."""
        return self._read_all([(query, params)])[0]

    def _read_all(self, statements: list[tuple[str, dict[str, Any]]], *, need_first: bool = False
                  ) -> list[tuple[list[str], list[list[Any]]]]:
        """Several reads in ONE READ-access transaction (a consistent snapshot); with ``need_first``, nothing more
        is read when the first statement returns no row."""
        self.connect()

        def work(tx: Any) -> list[tuple[list[str], list[list[Any]]]]:
            out = []
            for query, params in statements:
                result = tx.run(query, params)
                out.append((list(result.keys()), [list(rec.values()) for rec in result]))
                if need_first and not out[0][1]:
                    break
            return out

        with self._session(READ) as s:
            return s.execute_read(work)

    def _write(self, work: Callable[[Any], Any], *, attempts: int = 6) -> Any:
        """``work(tx)`` in one managed write transaction (the driver retries transient errors with backoff); also
        retried: the client errors a concurrent writer can cause (a unit deleted or created under us)."""
        self.connect()
        for attempt in range(attempts):
            try:
                with self._session(WRITE) as s:
                    return s.execute_write(work)
            except _driver_errors() as e:
                if getattr(e, "code", None) not in _RETRY_CODES or attempt == attempts - 1:
                    raise
                delay = 0.05 * 2 ** attempt * (1 + random.random())
                log.info("retrying a write after %s (%.2f s)", getattr(e, "code", e), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_write(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._write(lambda tx: [dict(r) for r in tx.run(query, params)])

    def _chunks(self, n: int) -> Iterator[slice]:
        for i in range(0, n, self.batch_size):
            yield slice(i, min(n, i + self.batch_size))

    # ------------------------------------------------------------------ writes
    def write_graph(self, graph: AttributionGraph, *, graph_id: str | None = None) -> str:
        """Store ``graph`` under ``graph_id`` (default ``graph.id``) as a new version: chunk transactions, then
        the flip; the previous version stays visible until the new one is complete and is collected after."""
        return self.write_graphs([graph], [graph_id])[0]

    def write_graphs(self, graphs: Iterable[AttributionGraph], graph_ids: Iterable[str | None] | None = None
                     ) -> list[str]:
        """Write many graphs in few transactions: their rows share the chunk transactions, and ONE flip makes them
        all visible, each complete. Returns the graph ids."""
        graphs = list(graphs)
        gids = rw.check_graph_ids(graphs, [None] * len(graphs) if graph_ids is None else list(graph_ids))
        if not graphs:
            return []
        what = f"graph {gids[0]!r}" if len(gids) == 1 else f"{len(gids)} graphs"
        with self._errors(f"writing {what} to"):
            self.init()
            sids = nv.write_versions(self, graphs, gids)
            stale = nv.flip(self, graphs, gids, sids)
            vs.phase("collect")
            for sid in stale:
                nv.delete_version(self, sid)
        vs.phase("done")
        for gid, g in zip(gids, graphs):
            log.info("wrote graph %r: %d nodes, %d edges", gid, g.n_nodes, g.n_edges)
        return gids

    def delete_graph(self, graph_id: str) -> bool:
        """Hide every version of ``graph_id`` and drop its circuits in one transaction, then delete the versions
        in bounded transactions. True if it existed."""
        with self._errors(f"deleting graph {graph_id!r} from"):
            existed = self.has_graph(graph_id)

            def hide(tx: Any) -> list[dict[str, Any]]:
                tx.run(cy.NEO4J_DELETE_GRAPH_CIRCUITS, {"graph_id": graph_id}).consume()
                tx.run(cy.NEO4J_HIDE_GRAPH, {"graph_id": graph_id}).consume()
                return [dict(r) for r in tx.run(cy.NEO4J_VERSIONS_OF, {"graph_id": graph_id})]

            for v in self._write(hide):
                if v["complete"]:  # an incomplete one may be another writer's, still writing: gc after the lease
                    nv.delete_version(self, v["sid"])
        log.info("deleted graph %r" if existed else "no graph %r to delete", graph_id)
        return existed

    def gc(self, *, full: bool = False, lease_seconds: float | None = None) -> int:
        """Delete the versions nobody reads: superseded ones, and incomplete ones older than ``lease_seconds``
        (default 1 h; a younger one may be another process's write in progress). Returns how many went. ``full`` has
        nothing more to find here: a Neo4j write creates its Graph row first, so every version has one."""
        with self._errors("collecting old versions in"):
            return nv.gc(self, nv.LEASE_SECONDS if lease_seconds is None else lease_seconds)

    # ------------------------------------------------------------------ reads
    def read_graph(self, graph_id: str) -> AttributionGraph:
        return self.read_subgraph(graph_id)

    def read_subgraph(self, graph_id: str, *, min_abs_weight: float = 0.0, kinds: Iterable[str] | None = None,
                      layers: Iterable[int] | None = None, positions: Iterable[int] | None = None) -> AttributionGraph:
        """Edges with |weight| ≥ ``min_abs_weight`` whose both ends pass the node filters, and the nodes they touch;
        with no filter at all, the whole graph (isolated nodes included). Checked against the recorded counts."""
        kinds_l, layers_l, pos_l = rw.node_filters(kinds, layers, positions)
        w = rw.check_weight_floor(min_abs_weight)
        whole = w <= 0 and kinds_l is None and layers_l is None and pos_l is None
        p: dict[str, Any] = {"graph_id": graph_id}
        params: dict[str, Any] = {**p, "min_abs_weight": w}
        for name, vals in (("kinds", kinds_l), ("layers", layers_l), ("positions", pos_l)):
            if vals is not None:
                params[name] = vals
        filters = [k for k in ("kinds", "layers", "positions") if k in params]
        statements = [(cy.READ_GRAPH_PROPS, p), (cy.READ_NODES, p)]
        statements += [(cy.neo4j_columnar_edges(cy.READ_EDGES), p)] if whole else [
            (cy.neo4j_columnar_edges(cy.read_subgraph_edges(filters)), params), (cy.COUNT_EDGES, p)]
        with self._errors(f"reading graph {graph_id!r} from"):
            found = self._read_all(statements, need_first=True)
        if len(found) < len(statements):
            known = self.list_graphs()["id"].tolist()
            shown = ", ".join(map(repr, known[:20])) + (" …" if len(known) > 20 else "")
            raise GraphNotFoundError(f"no graph {graph_id!r} in {self.uri}; stored graphs: {shown or '(none)'}")
        (cols, rows), (node_cols, node_rows), (edge_cols, edge_rows) = found[:3]
        props = dict(zip(cols, rows[0]))
        nodes = pd.DataFrame(node_rows, columns=node_cols)
        edges = dict(zip(edge_cols, edge_rows[0]))
        n_edges = len(edges["source"]) if whole else int(found[3][1][0][0])
        vs.verify_counts(self.uri, graph_id, props, len(nodes), n_edges)
        channel = np.array(["" if c is None else c for c in edges["channel"]], dtype=object)
        return rw.graph_from_columns(rw.meta_from_props(props), nodes, np.asarray(edges["source"], dtype=np.int64),
                                     np.asarray(edges["target"], dtype=np.int64),
                                     np.asarray(edges["weight"], dtype=np.float64), channel, keep_isolated=whole)

    def list_graphs(self) -> pd.DataFrame:
        with self._errors("listing graphs in"):
            cols, rows = self._read(cy.LIST_GRAPHS, {})
        return pd.DataFrame(rows, columns=cols or list(rw.LIST_GRAPHS_COLUMNS))

    def has_graph(self, graph_id: str) -> bool:
        with self._errors(f"looking up graph {graph_id!r} in"):
            _, rows = self._read(cy.COUNT_GRAPH, {"graph_id": graph_id})
        return bool(rows and rows[0][0])

    def _node_uid_prefix(self, graph_id: str) -> str:
        """Node uids are ``sid/key``: labels go on the current version."""
        with self._errors(f"reading graph {graph_id!r} from"):
            _, rows = self._read(cy.READ_GRAPH_PROPS, {"graph_id": graph_id})
        if not rows:
            raise GraphNotFoundError(f"no graph {graph_id!r} in {self.uri}")
        return str(rows[0][0])

    def complete_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` have a complete (current) version in the store."""
        ids = [str(i) for i in ids]
        out: set[str] = set()
        with self._errors("looking up graph ids in"):
            for i in range(0, len(ids), 10_000):
                out.update(r[0] for r in self._read(cy.CURRENT_IDS, {"ids": ids[i:i + 10_000]})[1])
        return out

    # ------------------------------------------------------------------ queries
    def run(self, cypher: str, params: dict[str, Any] | None = None, *, write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters; a DataFrame (nodes / relationships become property dicts, paths lists).

        Without ``write=True`` a statement that writes is refused here (QueryError) and, as the real wall, runs in
        a READ-access transaction in which the server refuses to write."""
        if not isinstance(cypher, str) or not cypher.strip():
            raise QueryError(f"empty query {cypher!r}")
        if not write:
            assert_read_only(cypher)
        params = rw.plain_params(params or {})

        def work(tx: Any) -> tuple[list[str], list[list[Any]]]:
            result = tx.run(cypher, params)
            return list(result.keys()), [[rw.plain_value(v) for v in rec.values()] for rec in result]

        with self._errors("query on", QueryError):
            self.connect()
            with self._session(WRITE if write else READ) as s:
                cols, rows = (s.execute_write if write else s.execute_read)(work)
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ circuits
    def save_circuit(self, name: str, graph_id: str, node_keys: list[str], *, method: str,
                     params: dict[str, Any], scores: dict[str, Any], edges: pd.DataFrame | None = None) -> str:
        props, keys, _ = rw.circuit_rows(name, graph_id, node_keys, method=method, params=params, scores=scores,
                                         edges=edges)
        uid = props["uid"]

        def work(tx: Any) -> None:  # the current version is looked up inside the transaction that links to it
            if not tx.run(cy.COUNT_GRAPH, {"graph_id": graph_id}).single()[0]:
                raise GraphNotFoundError(f"cannot save circuit {name!r}: no graph {graph_id!r} in {self.uri}")
            tx.run(cy.NEO4J_DELETE_CIRCUIT, {"uid": uid}).consume()
            tx.run(cy.NEO4J_CREATE_CIRCUIT, {"props": props}).consume()
            rows = [{"k": k, "edges": e} for k, e in zip(keys, rw.circuit_edge_lists(name, keys, edges))]
            linked = sum(tx.run(cy.NEO4J_LINK_CIRCUIT, {"graph_id": graph_id, "uid": uid, "rows": rows[sl]}
                                ).single()["n"] for sl in self._chunks(len(rows)))
            if linked != len(keys):
                found = {r["key"] for r in tx.run(cy.EXISTING_KEYS, {"graph_id": graph_id, "keys": keys})}
                missing = [k for k in keys if k not in found]
                raise ConfigError(f"circuit {name!r}: node key(s) {missing[:10]} are not in graph {graph_id!r} "
                                  f"({len(missing)} of {len(keys)} missing)")

        with self._errors(f"saving circuit {name!r} of graph {graph_id!r} to"):
            self.init()
            self._write(work)
        log.info("saved circuit %r of graph %r (%d nodes)", name, graph_id, len(keys))
        return uid

    def list_circuits(self, graph_id: str | None = None) -> pd.DataFrame:
        with self._errors("listing circuits in"):
            if graph_id is None:
                cols, rows = self._read(cy.LIST_CIRCUITS, {})
            else:
                cols, rows = self._read(cy.LIST_CIRCUITS_OF_GRAPH, {"graph_id": graph_id})
        return pd.DataFrame(rows, columns=cols or list(rw.LIST_CIRCUITS_COLUMNS))

    def read_circuit_record(self, name: str, graph_id: str | None = None) -> dict[str, Any]:
        with self._errors(f"reading circuit {name!r} from"):
            cols, rows = self._read(cy.FIND_CIRCUITS, {"name": name})
            found = [dict(zip(cols, r)) for r in rows if graph_id is None or r[cols.index("graph_id")] == graph_id]
            if len(found) == 1:
                _, key_rows = self._read(cy.CIRCUIT_NODE_KEYS, {"uid": found[0]["uid"]})
        if not found:
            known = self.list_circuits(graph_id)["name"].tolist()
            where = f" of graph {graph_id!r}" if graph_id is not None else ""
            raise ConfigError(f"no circuit {name!r}{where}; saved circuits: {', '.join(map(repr, known)) or '(none)'}")
        if len(found) > 1:
            graphs = ", ".join(repr(c["graph_id"]) for c in found)
            raise ConfigError(f"circuit {name!r} exists in several graphs ({graphs}); pass graph_id")
        return rw.circuit_record(found[0], [r[0] for r in key_rows])
