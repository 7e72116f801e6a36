"""`Neo4jStore`: the attribution-graph store on a Neo4j 5 server, through the official ``neo4j`` driver.

Schema (DESIGN.md): ``(:Graph {id, ...})``, ``(:Node:<Kind> {uid, graph_id, key, kind, ...})`` where ``<Kind>`` is
one of ``Embed Head Mlp Feature Error Logit`` (for Browser styling), ``(:Node)-[:ATTRIBUTES {weight, abs_weight,
channel}]->(:Node)``, ``(:Node)-[:INSTANCE_OF]->(:Unit)``, ``(:Circuit)-[:INCLUDES]->(:Node)``. ``connect()`` creates
uniqueness constraints on ``Node.uid``, ``Graph.id``, ``Unit.uid``, ``Circuit.uid`` and indexes on ``Node.graph_id``,
``Circuit.graph_id`` and ``ATTRIBUTES.abs_weight`` (all ``IF NOT EXISTS``).

All Cypher text lives in :mod:`circuitdb.store.cypher` (``NEO4J_*`` writes, the portable reads); values go in as
parameters only. Writes are batched ``UNWIND $rows`` statements of at most ``batch_size`` rows. Reads run in
READ-access sessions (routed to readers in a cluster; the server refuses writes in them). Configuration comes from the
arguments or from ``CIRCUITDB_NEO4J_URI`` / ``_USER`` / ``_PASSWORD`` / ``_DATABASE``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from circuitdb.errors import CircuitDBError, ConfigError, GraphNotFoundError, QueryError, StoreError, one_of
from circuitdb.graph import KINDS, AttributionGraph
from circuitdb.store import cypher as cy
from circuitdb.store import rows as rw
from circuitdb.store.base import GraphStore
from circuitdb.store.readonly import assert_read_only

log = logging.getLogger(__name__)

URI_ENV = "CIRCUITDB_NEO4J_URI"
USER_ENV = "CIRCUITDB_NEO4J_USER"
PASSWORD_ENV = "CIRCUITDB_NEO4J_PASSWORD"
DATABASE_ENV = "CIRCUITDB_NEO4J_DATABASE"
READ, WRITE = "READ", "WRITE"  # the values of neo4j.READ_ACCESS / neo4j.WRITE_ACCESS


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
                 database: str | None = None, batch_size: int = 10_000, driver: Any = None) -> None:
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

    def __repr__(self) -> str:
        return f"Neo4jStore(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> "Neo4jStore":
        """Create the driver (unless injected), verify connectivity, create constraints and indexes. Idempotent."""
        if self._connected:
            return self
        if self._driver is None:
            try:
                import neo4j
            except ImportError as e:  # pragma: no cover - the driver is a dependency
                raise StoreError("the neo4j driver is not installed; pip install 'neo4j>=5'") from e
            auth = (self.user, self._password) if self._password else None
            try:
                self._driver = neo4j.GraphDatabase.driver(self.uri, auth=auth)
            except (ValueError, neo4j.exceptions.ConfigurationError) as e:
                raise ConfigError(f"bad Neo4j URI {self.uri!r}: {e}; use neo4j://host:7687 or bolt://host:7687") from e
        with self._errors("connecting to"):
            self._driver.verify_connectivity()
            with self._session(WRITE) as s:  # schema statements cannot share a transaction with data
                for stmt in cy.NEO4J_SCHEMA:
                    s.run(stmt).consume()
        self._connected = True
        log.info("connected to Neo4j at %s (database %s)", self.uri, self.database or "default")
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

    def _read_one(self, query: str, params: dict[str, Any]) -> Any:
        _, rows = self._read(query, params)
        return rows[0][0] if rows else None

    @contextmanager
    def _write_tx(self) -> Iterator[Any]:
        """One explicit write transaction: committed when the block ends, rolled back on any error."""
        self.connect()
        with self._session(WRITE) as s:
            tx = s.begin_transaction()
            try:
                yield tx
                tx.commit()
            except BaseException:
                if not tx.closed():
                    try:
                        tx.rollback()
                    except Exception as e:  # keep the original error; the server drops the transaction anyway
                        log.warning("rollback failed after an error in a write transaction: %s", e)
                raise

    @staticmethod
    def _count(tx: Any, query: str, params: dict[str, Any]) -> int:
        rec = tx.run(query, params).single()
        return int(rec["n"]) if rec is not None else 0

    def _delete_in(self, tx: Any, graph_id: str) -> bool:
        """Delete a graph's circuits, edges (batched), orphaned units, nodes (batched) and Graph node inside ``tx``."""
        p = {"graph_id": graph_id}
        bs = {"graph_id": graph_id, "batch_size": self.batch_size}
        existed = self._count(tx, cy.COUNT_GRAPH, p) > 0
        tx.run(cy.NEO4J_DELETE_GRAPH_CIRCUITS, p).consume()
        while self._count(tx, cy.NEO4J_DELETE_EDGES_BATCH, bs) >= self.batch_size:
            pass
        tx.run(cy.NEO4J_DELETE_ORPHAN_UNITS, p).consume()
        while self._count(tx, cy.NEO4J_DELETE_NODES_BATCH, bs) >= self.batch_size:
            pass
        tx.run(cy.NEO4J_DELETE_GRAPH, p).consume()
        return existed

    def _batches(self, rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        for i in range(0, len(rows), self.batch_size):
            yield rows[i:i + self.batch_size]

    # ------------------------------------------------------------------ graphs
    def write_graph(self, graph: AttributionGraph, *, graph_id: str | None = None) -> str:
        """Store ``graph`` under ``graph_id`` (default ``graph.id``), replacing any graph of that id.

        The whole replace — deleting the old graph in batches and writing the new one in ``UNWIND`` batches — runs in
        ONE write transaction, so a failure at any point leaves the previous graph untouched. The price: the server
        holds the entire transaction state in memory until commit (roughly a few hundred bytes per node/edge written
        or deleted). For graphs of many millions of edges raise ``db.memory.transaction.total.max`` and the heap
        (``NEO4J_server_memory_heap_max__size`` in docker-compose.yml), or split the graph.
        """
        gid = rw.check_graph_id(graph_id or graph.id)
        props = rw.graph_props(graph, gid)
        nodes_by_kind = rw.node_rows_by_kind(graph, gid)
        units = rw.unit_rows(graph)
        instances = rw.instance_row_dicts(graph, gid)
        with self._errors(f"writing graph {gid!r} to"), self._write_tx() as tx:
            replaced = self._delete_in(tx, gid)
            tx.run(cy.NEO4J_CREATE_GRAPH, {"props": props}).consume()
            for kind, rows in nodes_by_kind.items():
                for batch in self._batches(rows):
                    tx.run(cy.NEO4J_CREATE_NODES[kind], {"rows": batch}).consume()
            for batch in self._batches(units):
                tx.run(cy.NEO4J_MERGE_UNITS, {"rows": batch}).consume()
            for batch in self._batches(instances):
                tx.run(cy.NEO4J_CREATE_INSTANCE_OF, {"rows": batch}).consume()
            for batch in rw.edge_row_batches(graph, self.batch_size, gid):
                tx.run(cy.NEO4J_CREATE_EDGES, {"rows": batch}).consume()
        log.info("%s graph %r: %d nodes, %d edges", "replaced" if replaced else "wrote", gid, graph.n_nodes,
                 graph.n_edges)
        return gid

    def read_graph(self, graph_id: str) -> AttributionGraph:
        return self.read_subgraph(graph_id)

    def read_subgraph(self, graph_id: str, *, min_abs_weight: float = 0.0, kinds: Iterable[str] | None = None,
                      layers: Iterable[int] | None = None, positions: Iterable[int] | None = None) -> AttributionGraph:
        """Edges with |weight| ≥ ``min_abs_weight`` whose both ends pass the node filters, and the nodes they touch;
        with no filter at all, the whole graph (isolated nodes included). The metadata is the parent's."""
        kinds_l, layers_l, pos_l = rw.node_filters(kinds, layers, positions)
        if kinds_l is not None and set(kinds_l) - set(KINDS):
            raise ConfigError(one_of(sorted(set(kinds_l) - set(KINDS))[0], KINDS, "node kind"))
        min_w = float(min_abs_weight)
        filters = {"kinds": kinds_l, "layers": layers_l, "positions": pos_l}
        params: dict[str, Any] = {"graph_id": graph_id, "min_abs_weight": min_w}
        params.update({k: v for k, v in filters.items() if v is not None})
        edges_q = cy.read_subgraph_edges([k for k, v in filters.items() if v is not None])
        with self._errors(f"reading graph {graph_id!r} from"):
            found = self._read_all([(cy.READ_GRAPH_PROPS, {"graph_id": graph_id}),
                                    (cy.READ_NODES, {"graph_id": graph_id}), (edges_q, params)], need_first=True)
            if len(found) < 3:
                known = self.list_graphs()["id"].tolist()
                raise GraphNotFoundError(f"no graph {graph_id!r} in {self.uri}; stored graphs: "
                                         f"{', '.join(map(repr, known[:20])) or '(none)'}")
        (cols, rows), (node_cols, node_rows), (_, edge_rows) = found
        whole = min_w <= 0 and all(v is None for v in filters.values())
        return rw.graph_from_rows(dict(zip(cols, rows[0])), pd.DataFrame(node_rows, columns=node_cols), edge_rows,
                                  keep_isolated=whole)

    def list_graphs(self) -> pd.DataFrame:
        with self._errors("listing graphs in"):
            cols, rows = self._read(cy.LIST_GRAPHS, {})
        return pd.DataFrame(rows, columns=cols or list(rw.LIST_GRAPHS_COLUMNS))

    def has_graph(self, graph_id: str) -> bool:
        with self._errors(f"looking up graph {graph_id!r} in"):
            return bool(self._read_one(cy.COUNT_GRAPH, {"graph_id": graph_id}))

    def delete_graph(self, graph_id: str) -> bool:
        with self._errors(f"deleting graph {graph_id!r} from"), self._write_tx() as tx:
            existed = self._delete_in(tx, graph_id)
        log.info("deleted graph %r" if existed else "no graph %r to delete", graph_id)
        return existed

    # ------------------------------------------------------------------ queries
    def run(self, cypher: str, params: dict[str, Any] | None = None, *, write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters; a DataFrame (nodes / relationships become property dicts, paths lists).

        Without ``write=True`` a statement that writes is refused here (QueryError) and, as a second wall, runs in a
        READ-access transaction in which the server refuses to write."""
        if not write:
            assert_read_only(cypher)
        params = rw.plain_params(params or {})
        self.connect()

        def work(tx: Any) -> tuple[list[str], list[list[Any]]]:
            result = tx.run(cypher, params)
            return list(result.keys()), [[rw.plain_value(v) for v in rec.values()] for rec in result]

        with self._errors("query on", QueryError), self._session(WRITE if write else READ) as s:
            cols, rows = (s.execute_write if write else s.execute_read)(work)
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ circuits
    def save_circuit(self, name: str, graph_id: str, node_keys: list[str], *, method: str,
                     params: dict[str, Any], scores: dict[str, Any], edges: pd.DataFrame | None = None) -> str:
        props, keys, uids = rw.circuit_rows(name, graph_id, node_keys, method=method, params=params, scores=scores,
                                            edges=edges)
        uid = props["uid"]
        with self._errors(f"saving circuit {name!r} of graph {graph_id!r} to"), self._write_tx() as tx:
            if not self._count(tx, cy.COUNT_GRAPH, {"graph_id": graph_id}):
                raise GraphNotFoundError(f"cannot save circuit {name!r}: no graph {graph_id!r} in {self.uri}")
            tx.run(cy.NEO4J_DELETE_CIRCUIT, {"uid": uid}).consume()
            tx.run(cy.NEO4J_CREATE_CIRCUIT, {"props": props}).consume()
            linked = sum(self._count(tx, cy.NEO4J_LINK_CIRCUIT, {"uid": uid, "uids": b}) for b in self._batches(uids))
            if linked != len(uids):
                found = {r["uid"] for r in tx.run(cy.EXISTING_NODES, {"uids": uids})}
                missing = [k for k, u in zip(keys, uids) if u not in found]
                raise ConfigError(f"circuit {name!r}: node key(s) {missing[:10]} are not in graph {graph_id!r} "
                                  f"({len(missing)} of {len(keys)} missing)")
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
