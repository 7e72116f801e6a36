"""`EmbeddedStore`: the default graph store, an embedded Ladybug (Kuzu fork) database in a directory.

Layout: ``PATH/`` (created on first use) holds the database file ``PATH/graphs.lbdb`` (+ its WAL) and
``PATH/pending/`` (the write journal, below). Schema and all statement text: :mod:`circuitdb.store.cypher` (``LB_*``
and the portable reads); row format: :mod:`.rows`; versions, the flip, repair and collection: :mod:`.versions`.

Crash-safe writes (STORAGE_SPEC.md). Every write of a graph id is a new *version* with a fresh storage id ``sid``;
node uids are ``sid/key``. A write is (1) a journal file naming the sids, (2) ONE transaction of ``COPY`` statements
only — units, nodes, ``INSTANCE_OF``, edges, re-linked circuit memberships and the ``Graph`` rows themselves, with
``current = false`` — then (3) a small flip transaction that makes the new rows current and the older ones not, and
(4) the deletion of the superseded versions. Readers see only current rows, so a crash anywhere leaves the old
complete version or the new complete version. Ladybug 0.22 made this necessary: a transaction of COPYs plus one
``CREATE`` killed inside ``COMMIT`` came back with the ``CREATE`` but without the COPYs (a listed, empty graph);
COPY-only transactions came back all or nothing (docs/design.md has the reproduction). On open the store repairs
(an id with zero or two current rows gets its newest version whose recorded counts verify) and collects
non-current versions and journal leftovers. Reads check what they got against the recorded counts.

Ladybug 0.22 caches a prepared statement per query text and scanned object; such a cached ``COPY`` pins memory, and
re-executing one after a rollback segfaults. So every write builds fresh frames and drops the cached ``COPY``
statements afterwards (:meth:`EmbeddedStore._forget_copies`).

User Cypher (``run`` without ``write=True``): see :mod:`.readonly` and :meth:`EmbeddedStore.run`.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pandas as pd

from circuitdb.errors import CircuitDBError, ConfigError, GraphNotFoundError, QueryError, StoreError
from circuitdb.store import cypher as cy
from circuitdb.store import rows as rw
from circuitdb.store import versions as vs
from circuitdb.store.base import GraphStore
from circuitdb.store.plan_check import EXPLAIN, assert_plan_reads
from circuitdb.store.readonly import assert_read_only

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.graph import AttributionGraph

log = logging.getLogger(__name__)

DB_FILE = "graphs.lbdb"


class EmbeddedStore(GraphStore):
    """Attribution graphs in an embedded Ladybug database under ``path`` (a directory, created on first use).

    Example::

        with EmbeddedStore("./circuitdb-data") as store:
            store.write_graph(graph)
            sub = store.read_subgraph(graph.id, min_abs_weight=0.1, kinds=["head", "logit"])
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, buffer_pool_size: int = 0) -> None:
        self.path = Path(path).expanduser()
        self.read_only = bool(read_only)
        self.buffer_pool_size = int(buffer_pool_size)
        self.uri = f"embedded:{path}"
        self._db: Any = None
        self._conn: Any = None
        self._read_plans: set[tuple[str, tuple[tuple[str, str], ...]]] = set()  # texts whose plan only reads

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r}, read_only={self.read_only})"

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> "EmbeddedStore":
        """Open the database (creating the directory and schema if missing), then repair and collect versions a
        crash left behind (not when read-only). Idempotent."""
        if self._conn is not None:
            return self
        import ladybug

        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"embedded store path {str(self.path)!r} is a file; it must be a directory")
        db_file = self.path / DB_FILE
        if self.read_only and not db_file.exists():
            raise StoreError(f"no embedded store at {str(self.path)!r} (missing {DB_FILE}); write a graph first")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = ladybug.Database(str(db_file), read_only=self.read_only,
                                        buffer_pool_size=self.buffer_pool_size)
            self._conn = ladybug.Connection(self._db)
            vs.check_schema(self)
            if not self.read_only:
                vs.recover(self)
        except (RuntimeError, OSError) as e:
            self.close()
            if "lock" in str(e).lower():
                raise StoreError(
                    f"the embedded store {str(db_file)!r} is locked by another process ({e}); close that process "
                    "(another circuitdb command, a notebook) or open this store read-only") from e
            raise StoreError(f"cannot open the embedded store at {str(self.path)!r}: {e}") from e
        except CircuitDBError:
            self.close()
            raise
        log.debug("opened embedded store %s", self.path)
        return self

    def close(self) -> None:
        for obj in (self._conn, self._db):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # pragma: no cover - closing twice / during interpreter exit
                    pass
        self._conn = self._db = None

    # ------------------------------------------------------------------ plumbing
    def _exec(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.connect()
        return self._conn.execute(query, params or {})

    def _df(self, query: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._exec(query, params).get_as_df()

    @contextmanager
    def _errors(self, what: str, cls: type[CircuitDBError] = StoreError) -> Iterator[None]:
        try:
            yield
        except CircuitDBError:
            raise
        except RuntimeError as e:
            raise cls(f"{what} the embedded store {str(self.path)!r} failed: {e}") from e

    @contextmanager
    def _transaction(self, read_only: bool = False, *, commit_phase: str | None = None) -> Iterator[None]:
        """One explicit transaction: committed when the block ends, rolled back on any error. ``commit_phase``:
        the write phase announced just before ``COMMIT`` (:func:`circuitdb.store.versions.phase`)."""
        if not read_only and self.read_only:
            raise StoreError(f"the embedded store {str(self.path)!r} is open read-only")
        self._exec(cy.LB_BEGIN_READ_ONLY if read_only else cy.LB_BEGIN)
        try:
            yield
        except BaseException:
            try:
                self._conn.execute(cy.LB_ROLLBACK)
            except RuntimeError:  # a failed statement already rolled the transaction back
                pass
            raise
        if commit_phase:
            vs.phase(commit_phase)
        self._exec(cy.LB_COMMIT)

    def _copy(self, query: str, frame: Any) -> None:
        """``COPY … FROM $rows`` of a pandas frame (index reset) or an Arrow table; nothing for zero rows."""
        if len(frame):
            self._exec(query, {"rows": frame.reset_index(drop=True) if isinstance(frame, pd.DataFrame) else frame})

    def _forget_copies(self) -> None:
        """Drop Ladybug's cached prepared ``COPY`` statements (ladybug 0.22 private cache, keyed per scanned object).

        Each one pins the buffer-pool pages of the frame it scanned (~30 MB per 20k edges: a long ingest ran out of
        memory, or with a bounded pool failed "buffer pool is full"), and re-executing one after a ROLLBACK
        segfaults. Nothing reuses them: every write scans fresh frames."""
        cache = getattr(self._conn, "_pybind_implicit_prepared_cache", None)
        if not isinstance(cache, dict):
            return
        for key in [k for k in cache if isinstance(k, tuple) and str(k[0]).startswith("COPY ")]:
            stmt = cache.pop(key)
            close = getattr(stmt, "close", None)
            if callable(close):
                close()

    def _missing(self, uid_query: str, uids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(uids), 10_000):
            chunk = uids[i:i + 10_000]
            found.update(self._df(uid_query, {"uids": chunk})["uid"].tolist())
        return set(uids) - found

    # ------------------------------------------------------------------ graphs
    def write_graph(self, graph: "AttributionGraph", *, graph_id: str | None = None) -> str:
        """Store ``graph`` under ``graph_id`` (default ``graph.id``) as a new version; the previous version stays
        visible until the new one is complete, then is deleted. Saved circuits of the id are re-linked to the new
        version by node key (refused, naming them, when a circuit's node is missing from the new graph)."""
        return self.write_graphs([graph], [graph_id])[0]

    def write_graphs(self, graphs: "Iterable[AttributionGraph]", graph_ids: "Iterable[str | None] | None" = None
                     ) -> list[str]:
        """Write many graphs in ONE data transaction and one flip: each becomes visible complete, all at once."""
        graphs = list(graphs)
        gids = rw.check_graph_ids(graphs, [None] * len(graphs) if graph_ids is None else list(graph_ids))
        if self.read_only:
            raise StoreError(f"the embedded store {str(self.path)!r} is open read-only")
        if not graphs:
            return []
        with self._errors("writing " + (f"graph {gids[0]!r}" if len(gids) == 1 else f"{len(gids)} graphs") + " to"):
            self.connect()
            return vs.write_versions(self, graphs, gids)

    def _current(self, graph_id: str) -> dict[str, Any]:
        """The current Graph row of ``graph_id`` (inside the caller's transaction); GraphNotFoundError if none."""
        df = self._df(cy.READ_GRAPH_PROPS, {"graph_id": graph_id})
        if not len(df):
            ids = self.list_graphs()["id"].tolist()
            shown = ", ".join(map(repr, ids[:20])) + (" …" if len(ids) > 20 else "")
            raise GraphNotFoundError(f"no graph {graph_id!r} in {self.uri}; stored graphs: {shown or '(none)'}")
        if len(df) > 1:
            raise StoreError(f"graph {graph_id!r} has {len(df)} current versions in {self.uri} (an interrupted "
                             "write); open the store once without read_only to repair it")
        return df.iloc[0].to_dict()

    def _edges(self, query: str, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        tab = self._exec(query, params).get_as_arrow()
        return (tab.column("source").to_numpy(), tab.column("target").to_numpy(), tab.column("weight").to_numpy(),
                tab.column("channel").fill_null("").to_numpy(zero_copy_only=False))

    def read_graph(self, graph_id: str) -> "AttributionGraph":
        return self.read_subgraph(graph_id)

    def read_subgraph(self, graph_id: str, *, min_abs_weight: float = 0.0, kinds: Iterable[str] | None = None,
                      layers: Iterable[int] | None = None, positions: Iterable[int] | None = None
                      ) -> "AttributionGraph":
        """Edges with |weight| ≥ ``min_abs_weight`` whose both ends pass the node filters, and the nodes they touch;
        with no filter at all, the whole graph (isolated nodes included). Checked against the recorded counts."""
        kinds_l, layers_l, pos_l = rw.node_filters(kinds, layers, positions)
        w = rw.check_weight_floor(min_abs_weight)
        whole = w <= 0 and kinds_l is None and layers_l is None and pos_l is None
        p: dict[str, Any] = {"graph_id": graph_id}
        with self._errors(f"reading graph {graph_id!r} from"), self._transaction(read_only=True):  # one snapshot
            props = self._current(graph_id)
            nodes = self._df(cy.READ_NODES, p)
            if whole:
                src, dst, wt, ch = self._edges(cy.READ_EDGES, p)
                n_edges = len(src)
            else:
                params: dict[str, Any] = {**p, "min_abs_weight": w}
                for name, vals in (("kinds", kinds_l), ("layers", layers_l), ("positions", pos_l)):
                    if vals is not None:
                        params[name] = vals
                filters = [k for k in ("kinds", "layers", "positions") if k in params]
                if any(not params[f] for f in filters):  # an empty filter list keeps nothing
                    src = dst = np.zeros(0, np.int64)
                    wt, ch = np.zeros(0), np.zeros(0, dtype=object)
                else:
                    src, dst, wt, ch = self._edges(cy.read_subgraph_edges(filters), params)
                n_edges = int(self._df(cy.COUNT_EDGES, p).iat[0, 0])
        vs.verify_counts(self.uri, graph_id, props, len(nodes), n_edges)
        meta = rw.meta_from_props(props)
        return rw.graph_from_columns(meta, nodes, src, dst, wt, ch, keep_isolated=whole)

    def list_graphs(self) -> pd.DataFrame:
        with self._errors("listing graphs in"):
            df = self._df(cy.LIST_GRAPHS)
        if not len(df):
            return pd.DataFrame({c: [] for c in rw.LIST_GRAPHS_COLUMNS})
        return df.reset_index(drop=True)

    def has_graph(self, graph_id: str) -> bool:
        with self._errors(f"looking up graph {graph_id!r} in"):
            return int(self._df(cy.COUNT_GRAPH, {"graph_id": graph_id}).iat[0, 0]) > 0

    def complete_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` have a complete (current) version in the store."""
        ids = [str(i) for i in ids]
        out: set[str] = set()
        with self._errors("looking up graph ids in"):
            for i in range(0, len(ids), 10_000):
                out.update(self._df(cy.CURRENT_IDS, {"ids": ids[i:i + 10_000]})["id"].tolist())
        return out

    def delete_graph(self, graph_id: str) -> bool:
        """Delete a graph: every version's nodes, edges, instance links, its circuits, and the units no other graph
        uses."""
        with self._errors(f"deleting graph {graph_id!r} from"):
            if not self.has_graph(graph_id):
                return False
            sids = self._df(cy.LB_VERSIONS_OF, {"graph_id": graph_id})["sid"].tolist()
            with self._transaction():
                self._exec(cy.LB_DELETE_GRAPH_CIRCUITS, {"graph_id": graph_id})
                for sid in sids:
                    vs.delete_version_in_tx(self, sid)
        log.info("deleted graph %r", graph_id)
        return True

    def gc(self, *, full: bool = False, lease_seconds: float | None = None) -> int:
        """Delete versions nobody reads (superseded or incomplete); ``full`` also scans every node for versions
        without a Graph row. Returns how many versions went. ``lease_seconds`` is accepted for the common signature
        and has nothing to wait for here: Ladybug lets one process write a database, so an incomplete version is
        never another writer's work in progress."""
        with self._errors("collecting old versions in"):
            self.connect()
            return vs.collect(self, full=full)

    # ------------------------------------------------------------------ queries
    def run(self, cypher: str, params: dict[str, Any] | None = None, *, write: bool = False) -> pd.DataFrame:
        """Run one Cypher statement with parameters → DataFrame. Without ``write=True``: the lexical check of
        :mod:`.readonly` first (writes, transaction control, file clauses, several statements), then the engine:
        the text is prepared (Ladybug refuses several statements there, before anything runs), its ``EXPLAIN`` plan
        must consist of read operators only (:mod:`.plan_check`: refuses ``COPY … TO``, ``EXPORT``, ``COMMIT`` and
        every write by the engine's own plan), and it runs inside ``BEGIN TRANSACTION READ ONLY``."""
        if not isinstance(cypher, str) or not cypher.strip():
            raise QueryError(f"empty query {cypher!r}")
        if not write:
            assert_read_only(cypher)
        p = rw.plain_params(params or {})
        with self._errors("query on", QueryError):
            self.connect()
            if write:
                try:
                    return self._result_df(self._conn.execute(cypher, p))
                finally:
                    self._forget_copies()
            with self._transaction(read_only=True):
                prepared = self._prepare(cypher)
                self._check_plan(cypher, p)
                return self._result_df(self._conn.execute(prepared, p))

    def _check_plan(self, cypher: str, params: dict[str, Any]) -> None:
        """Refuse ``cypher`` unless its ``EXPLAIN`` plan only reads (:mod:`.plan_check`). A text that passed, with
        the same parameter names and types, is not planned again (parameters are values: they cannot turn a read
        into a write); a few hundred texts are remembered."""
        key = (cypher, tuple(sorted((k, type(v).__name__) for k, v in params.items())))
        if key in self._read_plans:
            return
        plan = self._conn.execute(self._prepare(EXPLAIN + cypher), params).get_as_df()
        assert_plan_reads("\n".join(map(str, plan.iloc[:, 0].tolist())) if len(plan.columns) else "", cypher)
        if len(self._read_plans) >= 512:
            self._read_plans.clear()
        self._read_plans.add(key)

    def _prepare(self, cypher: str) -> Any:
        """One prepared statement; QueryError (nothing ran) when the engine refuses it, e.g. "We do not support
        prepare multiple statements"."""
        with warnings.catch_warnings():  # ladybug 0.22 deprecates prepare(); it is the one-statement check
            warnings.simplefilter("ignore", DeprecationWarning)
            prepared = self._conn.prepare(cypher)
        if not prepared.is_success():
            raise QueryError(f"query on the embedded store {str(self.path)!r} failed before it ran: "
                             f"{prepared.get_error_message()}")
        return prepared

    @staticmethod
    def _result_df(res: Any) -> pd.DataFrame:
        if isinstance(res, list):
            raise QueryError(f"run() takes one statement; got {len(res)} separated by ';'")
        return res.get_as_df()

    # ------------------------------------------------------------------ circuits
    def save_circuit(self, name: str, graph_id: str, node_keys: list[str], *, method: str,
                     params: dict[str, Any], scores: dict[str, Any], edges: pd.DataFrame | None = None) -> str:
        """Store a circuit (nodes linked by ``INCLUDES``, each link listing the circuit's edges out of its node:
        rows.circuit_edge_lists; the edge table also as JSON), replacing one of the same name+graph."""
        props, keys, _ = rw.circuit_rows(name, graph_id, node_keys, method=method, params=params, scores=scores,
                                         edges=edges)
        uid = props["uid"]
        with self._errors(f"saving circuit {name!r} of graph {graph_id!r} to"):
            self.connect()
            if not self.has_graph(graph_id):
                raise GraphNotFoundError(f"cannot save circuit {name!r}: no graph {graph_id!r} in {self.uri}")
            sid = self._current(graph_id)["sid"]
            uids = [rw.node_uid(sid, k) for k in keys]
            missing = self._missing(cy.EXISTING_NODES, uids)
            if missing:
                bad = sorted(u[len(sid) + 1:] for u in missing)
                raise ConfigError(f"circuit {name!r}: {len(bad)} node key(s) not in graph {graph_id!r}: {bad[:5]}")
            try:
                with self._transaction():
                    self._exec(cy.LB_DELETE_CIRCUIT, {"uid": uid})
                    self._exec(cy.LB_CREATE_CIRCUIT, props)
                    self._copy(cy.LB_COPY_INCLUDES, pd.DataFrame({"from": [uid] * len(uids), "to": uids,
                                                                  "edges": rw.circuit_edge_lists(name, keys, edges)}))
            finally:
                self._forget_copies()
        return uid

    def list_circuits(self, graph_id: str | None = None) -> pd.DataFrame:
        with self._errors("listing circuits in"):
            if graph_id is None:
                df = self._df(cy.LIST_CIRCUITS)
            else:
                df = self._df(cy.LIST_CIRCUITS_OF_GRAPH, {"graph_id": graph_id})
        if not len(df):
            return pd.DataFrame({c: [] for c in rw.LIST_CIRCUITS_COLUMNS})
        return df.reset_index(drop=True)

    def read_circuit_record(self, name: str, graph_id: str | None = None) -> dict[str, Any]:
        with self._errors(f"reading circuit {name!r} from"):
            found = self._df(cy.FIND_CIRCUITS, {"name": name})
            if graph_id is not None:
                found = found[found["graph_id"] == graph_id]
            if not len(found):
                known = self.list_circuits(graph_id)
                raise ConfigError(f"no circuit {name!r}" + (f" in graph {graph_id!r}" if graph_id else "")
                                  + f"; saved circuits: {', '.join(known['name'].astype(str)) or '(none)'}")
            if len(found) > 1:
                raise ConfigError(f"circuit name {name!r} exists in several graphs "
                                  f"({', '.join(found['graph_id'].astype(str))}); pass graph_id")
            props = found.iloc[0].to_dict()
            keys = self._df(cy.CIRCUIT_NODE_KEYS, {"uid": props["uid"]})["key"].tolist()
        return rw.circuit_record(props, keys)

    # ------------------------------------------------------------------ labels (formats engineer; additive)
    def _node_uid_prefix(self, graph_id: str) -> str:
        """Node uids are ``sid/key``: labels go on the current version."""
        with self._errors(f"reading graph {graph_id!r} from"), self._transaction(read_only=True):
            return str(self._current(graph_id)["sid"])
