"""The one interface of the store seam: :class:`GraphStore`, and :func:`open_store`.

Both stores (embedded Ladybug, Neo4j) implement the same schema (DESIGN.md):

    (:Graph {id, ...meta})
    (:Node {uid, graph_id, key, kind, layer, head, pos, feature, ...})-[:ATTRIBUTES {weight, abs_weight, channel}]->(:Node)
    (:Node)-[:INSTANCE_OF]->(:Unit {uid, model, kind, layer, head, dictionary, feature})
    (:Circuit {uid, name, graph_id, method, params, scores})-[:INCLUDES {edges}]->(:Node)  # rows.circuit_edge_lists

``uid = graph_id + "/" + key``. Writing a graph is atomic and idempotent by graph id. ``run`` executes read-only
Cypher unless ``write=True``. Constructors never talk to servers; ``connect()`` (called lazily) does.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Iterable

from circuitdb.errors import ConfigError, GraphNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from circuitdb.circuits.circuit import Circuit
    from circuitdb.graph import AttributionGraph

DEFAULT_STORE_ENV = "CIRCUITDB_STORE"
DEFAULT_STORE = "embedded:./circuitdb-data"

# store/ never imports circuits/ (layering runs one way). ``GraphStore.circuit`` is a convenience the circuits layer
# registers when it is imported (``circuitdb.circuits.circuit`` sets this; ``circuitdb.open_store`` imports it).
_CIRCUIT_BUILDER: "Callable[..., Circuit] | None" = None


def register_circuit_builder(fn: "Callable[..., Circuit]") -> None:
    """Called by :mod:`circuitdb.circuits.circuit` with ``circuit_from_store``."""
    global _CIRCUIT_BUILDER
    _CIRCUIT_BUILDER = fn


class GraphStore(ABC):
    """A graph database holding attribution graphs, units shared across graphs, and saved circuits."""

    uri: str

    # -------------------------------------------------------------- lifecycle
    @abstractmethod
    def connect(self) -> "GraphStore":
        """Open the connection / database and create the schema if missing. Idempotent."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "GraphStore":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------- graphs
    @abstractmethod
    def gc(self, *, full: bool = False, lease_seconds: float | None = None) -> int:
        """Delete the versions nobody reads (superseded ones, and incomplete ones no writer is still working on);
        returns how many went. ``lease_seconds``: an incomplete version younger than this may be another process's
        write in progress and is kept (stores with several writers; default: the store's own lease). ``full``: also
        look for rows of versions that have no Graph row at all (stores whose writes can leave such rows)."""

    @abstractmethod
    def write_graph(self, graph: "AttributionGraph", *, graph_id: str | None = None) -> str:
        """Store ``graph`` under ``graph_id`` (default ``graph.id``), replacing any graph of that id atomically."""

    @abstractmethod
    def read_graph(self, graph_id: str) -> "AttributionGraph":
        """The stored graph; raises GraphNotFoundError."""

    @abstractmethod
    def read_subgraph(
        self,
        graph_id: str,
        *,
        min_abs_weight: float = 0.0,
        kinds: Iterable[str] | None = None,
        layers: Iterable[int] | None = None,
        positions: Iterable[int] | None = None,
    ) -> "AttributionGraph":
        """Edges with |weight| ≥ min_abs_weight whose both ends pass the node filters, and the nodes they touch
        (in stored node order; metadata = the parent's). With no filter at all (``min_abs_weight <= 0`` and no
        kinds/layers/positions) the whole graph, isolated nodes included. An empty filter list keeps nothing."""

    @abstractmethod
    def list_graphs(self) -> "pd.DataFrame":
        """One row per graph: id, model, granularity, method, metric, prompt, n_nodes, n_edges, created_at."""

    @abstractmethod
    def delete_graph(self, graph_id: str) -> bool:
        """Delete a graph (nodes, edges, its circuits); True if it existed."""

    def has_graph(self, graph_id: str) -> bool:
        return bool(len(self.list_graphs().query("id == @graph_id")))

    def write_graphs(self, graphs: "Iterable[AttributionGraph]", graph_ids: "Iterable[str | None] | None" = None
                     ) -> list[str]:
        """Write many (small) graphs; each becomes visible only complete. Stores that can do it in one transaction
        override this (the embedded store: one COPY transaction and one flip for all); this fallback writes them
        one by one."""
        from circuitdb.store.rows import check_graph_ids

        graphs = list(graphs)
        gids = check_graph_ids(graphs, [None] * len(graphs) if graph_ids is None else list(graph_ids))
        return [self.write_graph(g, graph_id=i) for g, i in zip(graphs, gids)]

    def complete_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` have a complete (current) version in the store (ingest skips those)."""
        return {str(i) for i in ids if self.has_graph(str(i))}

    # -------------------------------------------------------------- queries
    @abstractmethod
    def run(self, cypher: str, params: dict[str, Any] | None = None, *, write: bool = False) -> "pd.DataFrame":
        """Run Cypher with parameters; refuse writes (QueryError) unless ``write=True``."""

    # -------------------------------------------------------------- circuits (low level)
    @abstractmethod
    def save_circuit(self, name: str, graph_id: str, node_keys: list[str], *, method: str,
                     params: dict[str, Any], scores: dict[str, Any], edges: "pd.DataFrame | None" = None) -> str:
        """Store a circuit (replacing one of the same name+graph); returns its uid ``graph_id/circuit/name``."""

    @abstractmethod
    def list_circuits(self, graph_id: str | None = None) -> "pd.DataFrame":
        """One row per saved circuit: uid, name, graph_id, method, params (JSON), scores (JSON), n_nodes."""

    @abstractmethod
    def read_circuit_record(self, name: str, graph_id: str | None = None) -> dict[str, Any]:
        """A saved circuit: name, graph_id, method, params, scores, node_keys, edges (DataFrame or None)."""

    # -------------------------------------------------------------- circuits (high level, shared)
    def circuit(self, graph_id: str, prune: str | dict | None = "auto", **params: Any) -> "Circuit":
        """Read a graph and prune it into a :class:`~circuitdb.circuits.circuit.Circuit` (same as
        ``circuitdb.circuits.circuit.circuit_from_store(store, graph_id, prune, **params)``)."""
        if _CIRCUIT_BUILDER is None:
            raise ConfigError("store.circuit() needs the circuits layer: `import circuitdb.circuits.circuit` first, or call "
                     "circuitdb.circuits.circuit.circuit_from_store(store, graph_id, ...)")
        return _CIRCUIT_BUILDER(self, graph_id, prune, **params)

    # -------------------------------------------------------------- labels (formats engineer; additive)
    def set_node_labels(self, graph_id: str, labels: dict[str, str]) -> int:
        """Set the ``label`` (and the Browser caption ``name`` made from it) of nodes of ``graph_id`` by node key
        (feature descriptions, see :mod:`circuitdb.formats.labels`); returns how many nodes changed. Unknown keys
        raise ConfigError before anything is written."""
        import pandas as pd

        from circuitdb.graph import AttributionGraph
        from circuitdb.store import cypher as cy
        from circuitdb.store.rows import check_graph_id, node_names, node_uid

        check_graph_id(graph_id)
        if not self.has_graph(graph_id):
            raise GraphNotFoundError(f"no graph {graph_id!r} in {getattr(self, 'uri', 'the store')}")
        if not labels:
            return 0
        prefix = self._node_uid_prefix(graph_id)
        uids = {node_uid(prefix, str(k)): str(v) for k, v in labels.items()}
        found = self.run(cy.LABEL_TARGETS, {"uids": list(uids)})
        missing = sorted(set(uids) - set(found["uid"]))
        if missing:  # checked before writing: a bad key writes nothing
            raise ConfigError(f"graph {graph_id!r} has no node(s) {[u[len(prefix) + 1:] for u in missing][:5]}; "
                              "no label was set")
        found = found.assign(label=found["uid"].map(uids))
        names = node_names(AttributionGraph(pd.DataFrame(found[["key", "kind", "label"]]), [], [], [], validate=False,
                                            meta={"id": graph_id}))
        rows = [{"uid": u, "label": lab, "name": str(nm)} for u, lab, nm in zip(found["uid"], found["label"], names)]
        n = self.run(cy.SET_NODE_LABELS, {"rows": rows}, write=True)
        return int(n["n"].iat[0]) if len(n) else 0

    def _node_uid_prefix(self, graph_id: str) -> str:
        """What node uids of ``graph_id`` start with (``graph_id``; versioned stores: the current version)."""
        return graph_id


def open_store(uri: str | None = None, **kwargs: Any) -> GraphStore:
    """Open a store by URI: ``embedded:PATH`` (or a plain path) → EmbeddedStore; ``neo4j://``, ``neo4j+s://``,
    ``bolt://``, ``bolt+s://`` → Neo4jStore. Default: ``$CIRCUITDB_STORE`` or ``embedded:./circuitdb-data``.
    The returned store is connected."""
    uri = uri or os.environ.get(DEFAULT_STORE_ENV) or DEFAULT_STORE
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"):
        from circuitdb.store.neo4j import Neo4jStore

        return Neo4jStore(uri, **kwargs).connect()
    if scheme:
        raise ConfigError(f"unknown store URI scheme {scheme!r} in {uri!r}; valid: embedded:PATH, neo4j://, bolt://")
    path = uri[len("embedded:"):] if uri.startswith("embedded:") else uri
    if not path:
        raise ConfigError(f"store URI {uri!r} has no path; use embedded:PATH")
    from circuitdb.store.embedded import EmbeddedStore

    return EmbeddedStore(path, **kwargs).connect()
