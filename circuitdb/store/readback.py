"""Reading stored rows back (both stores): rows → AttributionGraph, Graph-row metadata, read filters, circuits.

The write side (AttributionGraph → rows, ids, captions, Graph properties) is :mod:`circuitdb.store.rows`, which
re-exports everything here so ``rows.graph_from_columns`` etc. keep working.

Read semantics of a subgraph (both stores): with no filter at all the whole graph (isolated nodes included);
otherwise only the nodes the kept edges touch. Its metadata is the parent's. Float ``NaN`` is stored as NULL and read
back as ``NaN``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, StoreError
from circuitdb.graph import FLOAT_COLUMNS, NODE_COLUMNS, AttributionGraph, encode_channels
from circuitdb.plain import plain_value

LIST_GRAPHS_COLUMNS = ("id", "model", "granularity", "method", "metric", "prompt", "n_nodes", "n_edges", "created_at")
LIST_CIRCUITS_COLUMNS = ("uid", "name", "graph_id", "method", "params", "scores", "n_nodes")


# ---------------------------------------------------------------------------------------------------- graphs
def graph_from_columns(meta: dict[str, Any], nodes: pd.DataFrame, src_idx: Any, dst_idx: Any, weight: Any,
                       channel: Any, *, keep_isolated: bool = True) -> AttributionGraph:
    """Rebuild a graph: ``nodes`` has ``idx`` + node columns (any order, NULL → NaN); edge ends are ``idx`` values.

    ``keep_isolated=False`` keeps only the nodes the edges touch (renumbered, in ``idx`` order).
    """
    if "idx" not in nodes.columns:
        raise StoreError(f"stored nodes of graph {meta.get('id')!r} lack the idx property")
    nodes = nodes.sort_values("idx", kind="stable").reset_index(drop=True)
    idx = nodes["idx"].to_numpy(dtype=np.int64)
    src = np.asarray(src_idx, dtype=np.int64)
    dst = np.asarray(dst_idx, dtype=np.int64)
    if len(idx) and not np.array_equal(idx, np.arange(len(idx))):  # gaps: map idx → row position
        src, dst = np.searchsorted(idx, src), np.searchsorted(idx, dst)
    if not keep_isolated:
        keep = np.zeros(len(nodes), bool)
        keep[src] = True
        keep[dst] = True
        new_pos = np.cumsum(keep) - 1
        nodes = nodes[keep].reset_index(drop=True)
        src, dst = new_pos[src], new_pos[dst]
    cols = [c for c in NODE_COLUMNS if c in nodes.columns]
    frame = nodes[cols].copy()
    for c in FLOAT_COLUMNS:  # NULL → NaN (an all-NULL column may come back as object)
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(np.float64)
    return AttributionGraph(frame, src, dst, np.asarray(weight, dtype=np.float64), encode_channels(channel),
                            dict(meta))


def graph_from_rows(props: dict[str, Any], nodes: Iterable[dict[str, Any]] | pd.DataFrame, edges: Any,
                    *, keep_isolated: bool = True) -> AttributionGraph:
    """Rebuild a graph from the Graph node's properties, node property maps and edge rows
    ``[source idx, target idx, weight, channel]`` (or a frame with those columns)."""
    meta = meta_from_props(props)
    nd = nodes if isinstance(nodes, pd.DataFrame) else pd.DataFrame(list(nodes))
    if nd.empty:
        nd = pd.DataFrame({c: [] for c in ("idx",) + NODE_COLUMNS})
    ed = edges if isinstance(edges, pd.DataFrame) else pd.DataFrame(
        list(edges), columns=["source", "target", "weight", "channel"])
    if ed.empty:
        ed = pd.DataFrame({"source": np.zeros(0, np.int64), "target": np.zeros(0, np.int64),
                           "weight": np.zeros(0), "channel": np.zeros(0, np.int8)})
    return graph_from_columns(meta, nd, ed["source"].to_numpy(), ed["target"].to_numpy(), ed["weight"].to_numpy(),
                              ed["channel"].fillna("") if ed["channel"].dtype == object else ed["channel"],
                              keep_isolated=keep_isolated)


def meta_from_props(props: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(props["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise StoreError(f"graph {props.get('id')!r} has unreadable metadata: {e}") from e


# ---------------------------------------------------------------------------------------------------- read parameters
def check_weight_floor(value: Any) -> float:
    """A ``min_abs_weight`` / ``min_weight`` value: a finite number ≥ 0 or a ConfigError naming it."""
    try:
        w = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"min_abs_weight must be a number, got {value!r}") from e
    if isinstance(value, bool) or math.isnan(w) or math.isinf(w):
        raise ConfigError(f"min_abs_weight must be a finite number, got {value!r}")
    return w


def node_filters(kinds: Iterable[str] | None, layers: Iterable[int] | None, positions: Iterable[int] | None
                 ) -> tuple[list[str] | None, list[int] | None, list[int] | None]:
    """Normalise read_subgraph filters: sorted distinct lists, or None for "no filter"."""
    def norm(values: Any, cast: type, what: str) -> list[Any] | None:
        if values is None:
            return None
        if isinstance(values, (str, int, np.integer)):
            values = [values]
        try:
            return sorted({cast(v) for v in values})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad {what} filter {values!r}: {e}") from e
    return norm(kinds, str, "kinds"), norm(layers, int, "layers"), norm(positions, int, "positions")


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters with numpy values turned into plain Python (drivers reject numpy scalars)."""
    if not isinstance(params, dict):
        raise ConfigError(f"query parameters must be a dict, got {type(params).__name__}")
    return {str(k): plain_value(v) for k, v in params.items()}


# ---------------------------------------------------------------------------------------------------- circuits
def circuit_edges_from_json(text: str | None) -> pd.DataFrame | None:
    if not text:
        return None
    d = json.loads(text)
    return pd.DataFrame({c: d["data"][c] for c in d["columns"]}, columns=d["columns"])


def circuit_record(props: dict[str, Any], node_keys: Iterable[str]) -> dict[str, Any]:
    """A saved circuit as ``read_circuit_record`` returns it (params/scores decoded, edges as a DataFrame or None)."""
    def load(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) and v else {}
    keys = [str(k) for k in node_keys]
    return {
        "uid": props.get("uid"), "name": props.get("name"), "graph_id": props.get("graph_id"),
        "method": props.get("method"), "params": load(props.get("params")), "scores": load(props.get("scores")),
        "node_keys": keys, "n_nodes": len(keys), "edges": circuit_edges_from_json(props.get("edges")),
        "created_at": props.get("created_at"),
    }
