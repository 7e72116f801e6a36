"""`Circuit`: a pruned subgraph of one attribution graph, with the method and parameters that produced it and its
evaluation scores.

A circuit's ``graph`` is an ordinary :class:`~circuitdb.graph.AttributionGraph` (the kept nodes and edges, rows
renumbered); ``source_graph_id`` names the stored graph it came from. ``edges`` refers to nodes by key. Saved
circuits live in the store as ``(:Circuit {uid, name, graph_id, method, params, scores})-[:INCLUDES]->(:Node)``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError
from circuitdb.graph import CHANNELS, HTML_VIEWS, AttributionGraph, encode_channels
from circuitdb.pruning import PruneResult, prune_result, remove_dead_ends_masks
from circuitdb.store.base import register_circuit_builder

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

    from circuitdb.store.base import GraphStore

log = logging.getLogger(__name__)

@dataclass(frozen=True, eq=False)
class Circuit:
    """A pruned subgraph plus provenance (``method``, ``params``) and ``scores`` (faithfulness, CPR, sizes, ...)."""

    graph: AttributionGraph
    source_graph_id: str
    method: str
    params: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    name: str | None = None

    # ------------------------------------------------------------------ views
    @property
    def node_keys(self) -> list[str]:
        return self.graph.keys.tolist()

    @property
    def nodes(self) -> pd.DataFrame:
        """The kept nodes (all node columns), one row per node."""
        return self.graph.nodes.copy()

    @property
    def edges(self) -> pd.DataFrame:
        """The kept edges: source key, target key, weight, abs_weight, channel ("", q, k, v)."""
        keys = self.graph.keys
        return pd.DataFrame({
            "source": keys[self.graph.src], "target": keys[self.graph.dst], "weight": self.graph.weight,
            "abs_weight": np.abs(self.graph.weight), "channel": np.asarray(CHANNELS, dtype=object)[self.graph.channel],
        })

    @property
    def n_nodes(self) -> int:
        return self.graph.n_nodes

    @property
    def n_edges(self) -> int:
        return self.graph.n_edges

    def __repr__(self) -> str:
        return (f"Circuit(name={self.name!r}, graph={self.source_graph_id!r}, method={self.method!r}, "
                f"nodes={self.n_nodes}, edges={self.n_edges}, scores={self.scores})")

    def with_scores(self, **scores: Any) -> "Circuit":
        """A copy with ``scores`` merged in (values must be JSON-serialisable)."""
        return replace(self, scores={**self.scores, **scores})

    def edge_mask_in(self, graph: AttributionGraph) -> np.ndarray:
        """Boolean mask over ``graph``'s edges: True for edges of this circuit (matched by source, target, channel)."""
        g = self.graph
        return _edge_mask(graph, g.keys[g.src], g.keys[g.dst], g.channel)

    def to_networkx(self) -> "nx.MultiDiGraph":
        """A MultiDiGraph keyed by node key (see :meth:`AttributionGraph.to_networkx`): one edge per circuit edge,
        q/k/v edges of one pair kept apart with their own ``weight`` and ``channel``; graph attributes name the
        source graph, method and circuit."""
        g = self.graph.to_networkx()
        g.graph.update(graph_id=self.source_graph_id, method=self.method, name=self.name)
        return g

    def _repr_html_(self) -> str | None:
        """The interactive offline view of the circuit inside a notebook cell (see AttributionGraph._repr_html_)."""
        view = HTML_VIEWS.get("notebook")
        return view(self) if view is not None else None

    def evaluate(self, model: Any, dataset: Any = None, *, split: str | None = None, **kwargs: Any) -> "Circuit":
        """A copy with MIB faithfulness on ``model`` (object or zoo/pretrained name) and ``dataset`` (PromptPairs or a
        task name; ``n=``, ``seed=`` pick its prompts) in ``scores``; other keywords go to
        :func:`circuitdb.circuits.evaluate.evaluate_circuit` (``metric``, ``ablation``, ``batch_size``).

        ``split="held_out"`` evaluates on prompts of the graph's task that the attribution did not use,
        ``split="in_sample"`` on the attribution prompts themselves (both rebuilt from the graph's task record,
        :mod:`circuitdb.circuits.splits`; ``dataset`` may then be omitted). The score records its split."""
        from circuitdb.attribution.api import resolve_dataset, resolve_model
        from circuitdb.circuits.evaluate import evaluate_circuit

        task_kw = {k: kwargs.pop(k) for k in ("n", "seed") if k in kwargs}
        model = resolve_model(model)
        if split is not None:
            from circuitdb.circuits.splits import dataset_for_split

            ds = dataset_for_split(model, self.graph.meta, split, dataset, **task_kw)
        else:
            if dataset is None:
                raise ConfigError("Circuit.evaluate needs a dataset, or split='in_sample' / 'held_out'")
            ds = resolve_dataset(dataset, model, **task_kw) if isinstance(dataset, str) else dataset
        return evaluate_circuit(model, ds, self, split=split, **kwargs)

    # ------------------------------------------------------------------ store
    def save(self, store: "GraphStore", name: str | None = None) -> str:
        """Store as ``(:Circuit)-[:INCLUDES]->(:Node)`` under ``name`` (replacing one of the same name and graph)."""
        name = name or self.name
        if not name:
            raise ConfigError("a circuit needs a name to be saved: pass save(store, name=...)")
        json.dumps(self.params), json.dumps(self.scores)  # fail early, before any write
        uid = store.save_circuit(name, self.source_graph_id, self.node_keys, method=self.method,
                                 params=self.params, scores=self.scores, edges=self.edges)
        log.info("saved circuit %r (%d nodes, %d edges) of graph %r", name, self.n_nodes, self.n_edges,
                 self.source_graph_id)
        return uid

    @classmethod
    def load(cls, store: "GraphStore", name: str, graph_id: str | None = None) -> "Circuit":
        """A saved circuit, rebuilt from its record and its stored graph."""
        rec = store.read_circuit_record(name, graph_id)
        graph = store.read_graph(rec["graph_id"])
        return cls.from_record(graph, rec)

    @classmethod
    def from_prune(cls, res: PruneResult, scores: dict[str, Any] | None = None,
                   source_graph_id: str | None = None) -> "Circuit":
        """The pruned subgraph of a :class:`~circuitdb.pruning.PruneResult` as a Circuit of ``source_graph_id``
        (default: the pruned graph's id), with its sizes in ``scores``."""
        kept_frac = res.n_edges / max(res.graph.n_edges, 1)
        base = {"n_nodes": res.n_nodes, "n_edges": res.n_edges, "edge_fraction": kept_frac}
        return cls(res.subgraph(), source_graph_id=source_graph_id or res.graph.id, method=res.method,
                   params=dict(res.params), scores={**base, **(scores or {})})

    @classmethod
    def from_record(cls, graph: AttributionGraph, rec: dict[str, Any]) -> "Circuit":
        keys = set(rec.get("node_keys") or [])
        node_mask = np.isin(graph.keys, list(keys))
        edges = rec.get("edges")
        edge_mask = None
        if isinstance(edges, pd.DataFrame) and not len(edges):  # saved with no edges: reloads with none
            edge_mask = np.zeros(graph.n_edges, bool)
        elif isinstance(edges, pd.DataFrame):
            s_col = "source" if "source" in edges.columns else "src"
            t_col = "target" if "target" in edges.columns else "dst"
            ch = encode_channels(edges["channel"]) if "channel" in edges.columns else np.zeros(len(edges), np.int8)
            edge_mask = _edge_mask(graph, edges[s_col].astype(str), edges[t_col].astype(str), ch)
        params = rec.get("params") or {}
        scores = rec.get("scores") or {}
        params = json.loads(params) if isinstance(params, str) else dict(params)
        scores = json.loads(scores) if isinstance(scores, str) else dict(scores)
        return cls(graph.subgraph(edge_mask, node_mask), source_graph_id=graph.id, method=str(rec.get("method", "")),
                   params=params, scores=scores, name=rec.get("name"))


def circuit_from_store(store: "GraphStore", graph_id: str, prune: str | dict | None = "auto",
                       **params: Any) -> Circuit:
    """Read ``graph_id`` and prune it. ``prune`` is a method name, a dict ``{"method": ..., **params}``, or None
    (the whole graph as a circuit). ``min_abs_weight=`` (optional) reads only edges at least that strong first."""
    min_abs = params.pop("min_abs_weight", None)
    if min_abs is not None and (isinstance(min_abs, bool) or not isinstance(min_abs, (int, float))
                                or not 0 <= min_abs < np.inf):
        raise ConfigError(f"min_abs_weight must be a finite number >= 0; got {min_abs!r}")
    graph = store.read_subgraph(graph_id, min_abs_weight=float(min_abs)) if min_abs else store.read_graph(graph_id)
    if isinstance(prune, dict):
        prune = dict(prune)
        method = prune.pop("method", "auto")
        params = {**prune, **params}
    else:
        method = prune
    if method is None:
        return Circuit(graph, source_graph_id=graph_id, method="none", params={},
                       scores={"n_nodes": graph.n_nodes, "n_edges": graph.n_edges, "edge_fraction": 1.0})
    c = Circuit.from_prune(prune_result(graph, method, **params), source_graph_id=graph_id)
    if min_abs:  # pruned from a filtered read: say so, and count the kept fraction against the read
        c = replace(c, params={**c.params, "min_abs_weight": float(min_abs)})
    return c


register_circuit_builder(circuit_from_store)  # store.circuit(...) without an import of circuits/ by store/


def circuit_from_nodes(graph: AttributionGraph, keys: Any, *, include_kinds: tuple[str, ...] = ("embed", "logit"),
                       method: str = "nodes", params: dict | None = None) -> Circuit:
    """The circuit spanned by node ``keys`` (e.g. the heads a query returned) plus every node of ``include_kinds``:
    all edges among them, then dead-end removal. Unknown keys raise ConfigError."""
    keys = [str(k) for k in keys]
    missing = sorted(set(keys) - set(graph.keys.tolist()))
    if missing:
        raise ConfigError(f"node(s) {missing[:5]} are not in graph {graph.id!r}")
    node_mask = np.isin(graph.keys, keys) | graph.nodes["kind"].isin(list(include_kinds)).to_numpy()
    node_mask, edge_mask = remove_dead_ends_masks(graph, np.ones(graph.n_edges, bool), node_mask)
    sub = graph.subgraph(edge_mask, node_mask)
    return Circuit(sub, source_graph_id=graph.id, method=method,
                   params={"keys": sorted(set(keys)), "include_kinds": list(include_kinds), **(params or {})},
                   scores={"n_nodes": sub.n_nodes, "n_edges": sub.n_edges,
                           "edge_fraction": sub.n_edges / max(graph.n_edges, 1)})


def _edge_mask(graph: AttributionGraph, src_keys: Any, dst_keys: Any, channels: Any) -> np.ndarray:
    """True for ``graph``'s edges whose (source key, target key, channel code) is among the given triples."""
    wanted = set(zip(map(str, src_keys), map(str, dst_keys), map(int, channels)))
    k = graph.keys
    return np.fromiter(((s, t, c) in wanted for s, t, c in zip(k[graph.src], k[graph.dst], graph.channel.tolist())),
                       bool, graph.n_edges)
