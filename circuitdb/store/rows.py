"""Row format shared by both stores: AttributionGraph ⇄ the rows/properties of the store schema (DESIGN.md).

Both stores (embedded Ladybug, Neo4j) use this module, so they write and read exactly the same properties.

Stored values
    ``Node``: :data:`NODE_PROPS` = ``uid`` (``graph_id + "/" + key``, primary key), ``graph_id``, ``idx`` (the node's
    row position in its graph: reads restore node order, edges are read back as ``idx`` pairs), then
    :data:`circuitdb.graph.NODE_COLUMNS`. Conventions of graph.py: ``-1`` = none in integer columns (``layer = -1``
    is meaningful: embeddings), ``""`` in string columns; float ``NaN`` is stored as NULL and read back as ``NaN``.
    ``ATTRIBUTES``: ``weight``, ``abs_weight``, ``channel`` (``""``/``"q"``/``"k"``/``"v"``).
    ``Unit``: :data:`UNIT_PROPS`; uids ``{model}/A{l}.{h}`` (heads), ``{model}/M{l}`` (MLPs),
    ``{model}/{dictionary}/F{l}:{i}`` (features) — independent of position, shared across graphs. Other kinds have
    no unit. ``Graph``: :data:`GRAPH_PROPS`; ``meta`` holds the whole metadata as JSON (the source of truth on read).
    ``Circuit``: :data:`CIRCUIT_PROPS`; ``params``/``scores``/``edges`` are JSON strings.

Columnar helpers (embedded store, ``COPY FROM`` frames): :func:`node_rows`, :func:`edge_rows` /
:func:`edge_table` (pandas / Arrow; ``from``, ``to``, weight, abs_weight, channel), :func:`unit_frame`,
:func:`instance_rows`, :func:`graph_from_columns`.
Row-dict helpers (Neo4j ``UNWIND $rows``): :func:`node_rows_by_kind`, :func:`unit_rows`,
:func:`instance_row_dicts` (``{s, t}``), :func:`edge_row_batches` (``{s, t, w, a, c}``), :func:`graph_from_rows`.
Shared: :func:`check_graph_id`, :func:`graph_props`, :func:`meta_from_props`, :func:`node_filters`,
:func:`circuit_props`, :func:`circuit_record`, :func:`plain_params`, :func:`plain_value`,
:data:`LIST_GRAPHS_COLUMNS`, :data:`LIST_CIRCUITS_COLUMNS`.

Note: uids join ``graph_id`` and ``key`` with ``/``, so graph ``a`` key ``b/c`` and graph ``a/b`` key ``c`` collide;
the embedded store then fails the write (duplicate primary key) and keeps the old state.

Read semantics of a subgraph (both stores): with no filter at all the whole graph (isolated nodes included);
otherwise only the nodes the kept edges touch. Its metadata is the parent's.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, StoreError
from circuitdb.graph import CHANNELS, FLOAT_COLUMNS, NODE_COLUMNS, AttributionGraph, encode_channels
from circuitdb.plain import plain_value  # noqa: F401 - the one sanitiser (re-exported for the stores)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

NODE_PROPS = ("uid", "graph_id", "idx") + NODE_COLUMNS
EDGE_PROPS = ("weight", "abs_weight", "channel")
UNIT_PROPS = ("uid", "model", "kind", "layer", "head", "dictionary", "feature")
GRAPH_PROPS = (
    "id", "model", "granularity", "method", "metric", "prompt", "meta", "n_nodes", "n_edges", "created_at",
    "schema_version", "circuitdb_version",
)
CIRCUIT_PROPS = ("uid", "name", "graph_id", "method", "params", "scores", "n_nodes", "n_edges", "edges", "created_at")
LIST_GRAPHS_COLUMNS = ("id", "model", "granularity", "method", "metric", "prompt", "n_nodes", "n_edges", "created_at")
LIST_CIRCUITS_COLUMNS = ("uid", "name", "graph_id", "method", "params", "scores", "n_nodes")
UID_SEP = "/"


# ---------------------------------------------------------------------------------------------------- ids
def check_graph_id(graph_id: Any) -> str:
    """A graph id must be a non-empty string without control characters other than newline/tab; returned as is."""
    if not isinstance(graph_id, str) or not graph_id.strip():
        raise ConfigError(f"graph id must be a non-empty string, got {graph_id!r}")
    if "\x00" in graph_id:
        raise ConfigError(f"graph id {graph_id!r} contains a NUL character")
    return graph_id


def node_uid(graph_id: str, key: str) -> str:
    return f"{graph_id}{UID_SEP}{key}"


def circuit_uid(graph_id: str, name: str) -> str:
    return f"{graph_id}{UID_SEP}circuit{UID_SEP}{name}"


def node_uids(graph: AttributionGraph, graph_id: str) -> np.ndarray:
    """Object array of node uids, in node row order."""
    prefix = graph_id + UID_SEP
    return np.array([prefix + k for k in graph.keys.tolist()], dtype=object)


def unit_uids(graph: AttributionGraph, model: str | None = None) -> np.ndarray:
    """Object array, one per node: the unit uid of heads / MLPs / features, ``""`` for other kinds."""
    model = str(graph.meta.get("model") or "") if model is None else str(model)
    nd = graph.nodes
    out = np.full(graph.n_nodes, "", dtype=object)
    for i, (kind, layer, head, feat, dic) in enumerate(zip(
        nd["kind"].tolist(), nd["layer"].tolist(), nd["head"].tolist(), nd["feature"].tolist(),
        nd["dictionary"].tolist(),
    )):
        if kind == "head":
            out[i] = f"{model}/A{layer}.{head}"
        elif kind == "mlp":
            out[i] = f"{model}/M{layer}"
        elif kind == "feature":
            out[i] = f"{model}/{dic}/F{layer}:{feat}"
    return out


# ---------------------------------------------------------------------------------------------------- columnar
def node_rows(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None) -> pd.DataFrame:
    """Node rows, columns :data:`NODE_PROPS` in that order; a fresh RangeIndex; NaN floats (= NULL when copied)."""
    uids = node_uids(graph, graph_id) if uids is None else uids
    n = graph.n_nodes
    cols: dict[str, Any] = {"uid": uids, "graph_id": np.full(n, graph_id, dtype=object),
                            "idx": np.arange(n, dtype=np.int64)}
    for c in NODE_COLUMNS:
        cols[c] = graph.nodes[c].to_numpy()
    return pd.DataFrame(cols)


def edge_rows(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None) -> pd.DataFrame:
    """Edge rows: ``from``, ``to`` (node uids), ``weight``, ``abs_weight``, ``channel`` (string)."""
    uids = node_uids(graph, graph_id) if uids is None else uids
    return pd.DataFrame({
        "from": uids[graph.src], "to": uids[graph.dst], "weight": graph.weight, "abs_weight": np.abs(graph.weight),
        "channel": np.asarray(CHANNELS, dtype=object)[graph.channel],
    })


def edge_table(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None) -> "pa.Table":
    """:func:`edge_rows` as an Arrow table, built with Arrow ``take`` (no per-edge Python objects)."""
    import pyarrow as pa

    uids = node_uids(graph, graph_id) if uids is None else uids
    ua = pa.array(uids, type=pa.string())
    return pa.table({
        "from": ua.take(pa.array(graph.src)), "to": ua.take(pa.array(graph.dst)), "weight": pa.array(graph.weight),
        "abs_weight": pa.array(np.abs(graph.weight)),
        "channel": pa.array(list(CHANNELS), type=pa.string()).take(pa.array(graph.channel)),
    })


def unit_frame(graph: AttributionGraph, units: np.ndarray | None = None, model: str | None = None) -> pd.DataFrame:
    """Distinct units of the graph, columns :data:`UNIT_PROPS`."""
    units = unit_uids(graph, model) if units is None else units
    model = str(graph.meta.get("model") or "") if model is None else str(model)
    has = units != ""
    nd = graph.nodes[has]
    df = pd.DataFrame({
        "uid": units[has], "model": np.full(int(has.sum()), model, dtype=object), "kind": nd["kind"].to_numpy(),
        "layer": nd["layer"].to_numpy(), "head": nd["head"].to_numpy(), "dictionary": nd["dictionary"].to_numpy(),
        "feature": nd["feature"].to_numpy(),
    })
    return df.drop_duplicates("uid").reset_index(drop=True)


def instance_rows(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None,
                  units: np.ndarray | None = None) -> pd.DataFrame:
    """``INSTANCE_OF`` rows: ``from`` (node uid) → ``to`` (unit uid)."""
    uids = node_uids(graph, graph_id) if uids is None else uids
    units = unit_uids(graph) if units is None else units
    has = units != ""
    return pd.DataFrame({"from": uids[has], "to": units[has]})


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


# ---------------------------------------------------------------------------------------------------- row dicts
def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def node_rows_by_kind(graph: AttributionGraph, graph_id: str) -> dict[str, list[dict[str, Any]]]:
    """Node property maps (:data:`NODE_PROPS`, NaN → None) grouped by kind, for ``UNWIND $rows`` writes."""
    frame = node_rows(graph, graph_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in frame.to_dict("records"):
        out.setdefault(rec["kind"], []).append({k: _clean(plain_value(v)) for k, v in rec.items()})
    return out


def unit_rows(graph: AttributionGraph, model: str | None = None) -> list[dict[str, Any]]:
    """Distinct unit property maps (:data:`UNIT_PROPS`), for ``UNWIND $rows MERGE``."""
    frame = unit_frame(graph, None, model)
    return [{k: plain_value(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def instance_row_dicts(graph: AttributionGraph, graph_id: str, model: str | None = None) -> list[dict[str, str]]:
    """``INSTANCE_OF`` links as ``{s: node uid, t: unit uid}`` maps."""
    df = instance_rows(graph, graph_id, units=unit_uids(graph, model))
    return [{"s": s, "t": t} for s, t in zip(df["from"].tolist(), df["to"].tolist())]


def edge_row_batches(graph: AttributionGraph, batch_size: int, graph_id: str | None = None
                     ) -> Iterator[list[dict[str, Any]]]:
    """Edges as ``{s: source uid, t: target uid, w: weight, a: abs_weight, c: channel}`` maps, ``batch_size`` per
    batch."""
    uids = node_uids(graph, graph_id or graph.id)
    chans = np.asarray(CHANNELS, dtype=object)
    for i in range(0, graph.n_edges, batch_size):
        sl = slice(i, i + batch_size)
        w = graph.weight[sl]
        yield [{"s": s, "t": t, "w": float(x), "a": abs(float(x)), "c": c} for s, t, x, c in zip(
            uids[graph.src[sl]].tolist(), uids[graph.dst[sl]].tolist(), w.tolist(), chans[graph.channel[sl]].tolist())]


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


# ---------------------------------------------------------------------------------------------------- graph node
def _text(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def graph_props(graph: AttributionGraph, meta_or_id: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """Properties of the ``Graph`` node (:data:`GRAPH_PROPS`). ``meta_or_id``: the metadata to store (its ``id`` is
    the graph id) or just the graph id (default ``graph.id``); ``meta`` is stored whole as JSON."""
    if isinstance(meta_or_id, dict):
        meta = dict(meta_or_id)
    else:
        meta = {**graph.meta, "id": meta_or_id or graph.id}
    return {
        "id": str(meta["id"]), "model": _text(meta.get("model")), "granularity": _text(meta.get("granularity")),
        "method": _text(meta.get("method")), "metric": _text(meta.get("metric")), "prompt": _text(meta.get("prompt")),
        "meta": json.dumps(meta, sort_keys=True), "n_nodes": int(graph.n_nodes), "n_edges": int(graph.n_edges),
        "created_at": _text(meta.get("created_at")), "schema_version": int(meta.get("schema_version") or 0),
        "circuitdb_version": _text(meta.get("circuitdb_version")),
    }


def meta_from_props(props: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(props["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise StoreError(f"graph {props.get('id')!r} has unreadable metadata: {e}") from e


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


# ---------------------------------------------------------------------------------------------------- circuits
def _json(v: Any) -> str:
    return json.dumps(plain_value(v), sort_keys=True, default=str)


def circuit_edges_json(edges: pd.DataFrame | None) -> str:
    """A circuit's edge table as JSON ``{"columns": [...], "data": {col: [...]}}``; ``""`` when None."""
    if edges is None:
        return ""
    return json.dumps({"columns": [str(c) for c in edges.columns],
                       "data": {str(c): [plain_value(v) for v in edges[c].tolist()] for c in edges.columns}},
                      default=str)


def circuit_edges_from_json(text: str | None) -> pd.DataFrame | None:
    if not text:
        return None
    d = json.loads(text)
    return pd.DataFrame({c: d["data"][c] for c in d["columns"]}, columns=d["columns"])


def circuit_props(name: str, graph_id: str, *, method: str, params: dict[str, Any], scores: dict[str, Any],
                  edges: pd.DataFrame | None = None, n_nodes: int = 0) -> dict[str, Any]:
    """Properties of a ``Circuit`` node (:data:`CIRCUIT_PROPS`)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"circuit name must be a non-empty string, got {name!r}")
    check_graph_id(graph_id)
    return {
        "uid": circuit_uid(graph_id, name), "name": name, "graph_id": graph_id, "method": str(method or ""),
        "params": _json(params or {}), "scores": _json(scores or {}), "n_nodes": int(n_nodes),
        "n_edges": 0 if edges is None else int(len(edges)), "edges": circuit_edges_json(edges),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def circuit_rows(name: str, graph_id: str, node_keys: Iterable[str], *, method: str, params: dict[str, Any],
                 scores: dict[str, Any], edges: pd.DataFrame | None = None) -> tuple[dict[str, Any], list[str], list[str]]:
    """What both stores write for a circuit: its node properties, its distinct node keys and their node uids."""
    keys = list(dict.fromkeys(str(k) for k in node_keys))
    props = circuit_props(name, graph_id, method=method, params=params, scores=scores, edges=edges, n_nodes=len(keys))
    return props, keys, [node_uid(graph_id, k) for k in keys]


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


# ---------------------------------------------------------------------------------------------------- values
def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters with numpy values turned into plain Python (drivers reject numpy scalars)."""
    if not isinstance(params, dict):
        raise ConfigError(f"query parameters must be a dict, got {type(params).__name__}")
    return {str(k): plain_value(v) for k, v in params.items()}
