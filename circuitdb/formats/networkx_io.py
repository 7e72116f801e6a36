"""GraphML and GEXF (Gephi, Cytoscape desktop, yEd) through networkx, both ways.

The file holds :meth:`AttributionGraph.to_networkx`: nodes by key with the node columns as attributes, one edge per
(source, target, channel) with ``weight``/``abs_weight``/``channel``, and the graph's meta as one JSON string
(GraphML: graph attribute ``circuitdb_meta``; GEXF, which keeps only a graph name: the ``name``). Reading back gives the same graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.graph import FLOAT_COLUMNS, INT_COLUMNS, NODE_COLUMNS, AttributionGraph, encode_channels

META_ATTR = "circuitdb_meta"


def _as_graph(obj: Any, attr: str = META_ATTR) -> Any:
    g = obj.to_networkx()
    meta = obj.graph.meta if hasattr(obj, "source_graph_id") else obj.meta
    g.graph.clear()
    g.graph[attr] = json.dumps(meta, sort_keys=True)
    return g


def write_graphml(obj: Any, path: str | Path) -> Path:
    """Write a graph or circuit as GraphML."""
    import networkx as nx

    nx.write_graphml(_as_graph(obj), str(path), named_key_ids=True)
    return Path(path)


def write_gexf(obj: Any, path: str | Path) -> Path:
    """Write a graph or circuit as GEXF 1.2."""
    import networkx as nx

    nx.write_gexf(_as_graph(obj, "name"), str(path))  # GEXF keeps only the graph name
    return Path(path)


def read_graphml(path: str | Path) -> AttributionGraph:
    import networkx as nx

    return from_networkx(_read(nx.read_graphml, path, "GraphML"))


def read_gexf(path: str | Path) -> AttributionGraph:
    import networkx as nx

    return from_networkx(_read(nx.read_gexf, path, "GEXF"))


def _read(reader: Any, path: str | Path, what: str) -> Any:
    if not Path(path).is_file():
        raise ConfigError(f"{what} file {str(path)!r} does not exist")
    try:
        return reader(str(path))
    except Exception as e:  # noqa: BLE001 - networkx raises ParseError / NetworkXError / KeyError
        raise GraphValidationError(f"{path} is not a readable {what} file: {e}") from e


def from_networkx(g: Any) -> AttributionGraph:
    """An AttributionGraph from a networkx (Multi)DiGraph in :meth:`AttributionGraph.to_networkx`'s shape. Nodes
    without ``kind`` are refused; missing columns take their "none" values."""
    meta_raw = g.graph.get(META_ATTR, g.graph.get("name"))
    try:
        meta = json.loads(meta_raw) if isinstance(meta_raw, str) else None
    except json.JSONDecodeError:
        meta = None
    meta = meta if isinstance(meta, dict) else {
        k: v for k, v in g.graph.items() if k not in ("mode", "node_default", "edge_default")}
    rows = []
    for n, attrs in g.nodes(data=True):
        if "kind" not in attrs:
            raise GraphValidationError(f"node {n!r} has no 'kind' attribute (one of embed, head, mlp, feature, error, "
                                       "logit)")
        row = {"key": str(n)}
        for c in NODE_COLUMNS[1:]:
            if c in attrs:
                v = attrs[c]
                row[c] = int(v) if c in INT_COLUMNS else float(v) if c in FLOAT_COLUMNS else str(v)
        rows.append(row)
    nodes = pd.DataFrame(rows, columns=list(NODE_COLUMNS)) if not rows else pd.DataFrame(rows)
    idx = {str(n): i for i, n in enumerate(g.nodes)}
    data = list(g.edges(data=True))
    for u, v, a in data:
        if "weight" not in a:
            raise GraphValidationError(f"edge {u!r} -> {v!r} has no 'weight' attribute")
    src = np.array([idx[str(u)] for u, _, _ in data], dtype=np.int64)
    dst = np.array([idx[str(v)] for _, v, _ in data], dtype=np.int64)
    w = np.array([float(a["weight"]) for *_, a in data], dtype=np.float64)
    ch = encode_channels([a.get("channel") or "" for *_, a in data]) if data else np.zeros(0, np.int8)
    return AttributionGraph(nodes, src, dst, w, ch, meta)
