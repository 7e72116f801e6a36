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
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, StoreError
from circuitdb.graph import CHANNELS, FLOAT_COLUMNS, INT_COLUMNS, NODE_COLUMNS, AttributionGraph, encode_channels
from circuitdb.plain import plain_value  # noqa: F401 - the one sanitiser (re-exported for the stores)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

NODE_PROPS = ("uid", "sid", "graph_id", "idx", "name") + NODE_COLUMNS
EDGE_PROPS = ("weight", "abs_weight", "channel")
UNIT_PROPS = ("uid", "model", "kind", "layer", "head", "dictionary", "feature")
GRAPH_PROPS = (
    "sid", "id", "current", "seq", "written_at", "model", "granularity", "method", "metric", "prompt", "meta",
    "n_nodes", "n_edges", "created_at", "schema_version", "circuitdb_version", "step",
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
    model = model_identity(graph.meta) if model is None else str(model)
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
def new_sid(graph_id: str) -> str:
    """A fresh storage id for one written version of ``graph_id`` (STORAGE_SPEC: never reused)."""
    return f"{graph_id}@{uuid.uuid4().hex[:12]}"


_CAPTION_LABEL = 40


def caption(key: str, label: str, kind: str = "feature") -> str:
    """The Browser caption of a node (``name``): the key, with the label where one helps a reader —
    ``F3:1204@7 "Paris"`` (features), ``L:' France'`` (logits: the token text replaces the id), ``E@2 'When'``."""
    if not label:
        return key
    short = label if len(label) <= _CAPTION_LABEL else label[:_CAPTION_LABEL - 1] + "…"
    if kind == "logit":
        return f"L:'{short}'" + (key[key.rindex("@"):] if "@" in key else "")
    if kind == "feature":
        return f'{key} "{short}"'
    if kind == "embed":
        return f"{key} '{short}'"
    return key


def node_names(graph: AttributionGraph) -> np.ndarray:
    """:func:`caption` of every node, in node order."""
    return np.array([caption(k, lab, kind) for k, lab, kind in zip(graph.keys.tolist(), graph.nodes["label"].tolist(),
                                                                     graph.nodes["kind"].tolist())], dtype=object)


def _nullable(col: str, values: np.ndarray, kinds: np.ndarray) -> "pa.Array":
    """One node column as Arrow with absent values NULL: ``-1`` ints (but ``layer = -1`` of an embedding is a
    value and stays), ``""`` strings, ``NaN`` floats."""
    import pyarrow as pa

    if col in INT_COLUMNS:
        absent = values == -1
        if col == "layer":
            absent &= kinds != "embed"
        return pa.array(values, type=pa.int64(), mask=absent)
    if col in FLOAT_COLUMNS:
        return pa.array(values, type=pa.float64(), mask=np.isnan(values))
    if col in ("key", "kind"):
        return pa.array(values, type=pa.string())
    return pa.array(values, type=pa.string(), mask=values == "")


def node_table(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None, *,
               sid: str | None = None) -> "pa.Table":
    """Node rows as Arrow, columns :data:`NODE_PROPS` in that order, absent values NULL. ``sid`` (default
    ``graph_id``: an unversioned write) is the version the rows belong to and the prefix of their uids."""
    import pyarrow as pa

    sid = graph_id if sid is None else sid
    uids = node_uids(graph, sid) if uids is None else uids
    n = graph.n_nodes
    kinds = graph.nodes["kind"].to_numpy(dtype=object)
    cols: dict[str, Any] = {"uid": pa.array(uids, type=pa.string()), "sid": pa.array([sid] * n, type=pa.string()),
                            "graph_id": pa.array([graph_id] * n, type=pa.string()),
                            "idx": pa.array(np.arange(n, dtype=np.int64)),
                            "name": pa.array(node_names(graph), type=pa.string())}
    for c in NODE_COLUMNS:
        cols[c] = _nullable(c, graph.nodes[c].to_numpy(), kinds)
    return pa.table(cols)


def node_rows(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None, *,
              sid: str | None = None) -> pd.DataFrame:
    """:func:`node_table` as pandas (object columns: ``None`` = absent)."""
    tab = node_table(graph, graph_id, uids, sid=sid)
    return pd.DataFrame({c: pd.Series(tab.column(c).to_pylist(), dtype=object) for c in tab.column_names})


def edge_rows(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None) -> pd.DataFrame:
    """Edge rows: ``from``, ``to`` (node uids), ``weight``, ``abs_weight``, ``channel`` (``""`` = none)."""
    uids = node_uids(graph, graph_id) if uids is None else uids
    ch = np.asarray(CHANNELS, dtype=object)[graph.channel]
    return pd.DataFrame({
        "from": uids[graph.src], "to": uids[graph.dst], "weight": graph.weight, "abs_weight": np.abs(graph.weight),
        "channel": ch,
    })


def edge_table(graph: AttributionGraph, graph_id: str, uids: np.ndarray | None = None) -> "pa.Table":
    """:func:`edge_rows` as an Arrow table, built with Arrow ``take`` (no per-edge Python objects)."""
    import pyarrow as pa

    uids = node_uids(graph, graph_id) if uids is None else uids
    ua = pa.array(uids, type=pa.string())
    chans = pa.array(list(CHANNELS), type=pa.string())  # "" = no channel (queries filter on it; see design.md)
    return pa.table({
        "from": ua.take(pa.array(graph.src)), "to": ua.take(pa.array(graph.dst)), "weight": pa.array(graph.weight),
        "abs_weight": pa.array(np.abs(graph.weight)), "channel": chans.take(pa.array(graph.channel)),
    })


def model_identity(meta: dict[str, Any]) -> str:
    """What a Unit uid is keyed by: ``meta["model_id"]`` (a config hash the attribution functions set), else the
    model's name."""
    return str(meta.get("model_id") or meta.get("model") or "")


def unit_frame(graph: AttributionGraph, units: np.ndarray | None = None, model: str | None = None) -> pd.DataFrame:
    """Distinct units of the graph, columns :data:`UNIT_PROPS` (``model`` = the model's name; NULL = absent)."""
    units = unit_uids(graph, model) if units is None else units
    name = str(graph.meta.get("model") or "")
    has = units != ""
    nd = graph.nodes[has]
    kinds = nd["kind"].to_numpy(dtype=object)

    def opt(col: str) -> list[Any]:
        vals = nd[col].tolist()
        if col == "dictionary":
            return [v or None for v in vals]
        return [None if v == -1 and not (col == "layer" and k == "embed") else v for v, k in zip(vals, kinds)]
    df = pd.DataFrame({
        "uid": units[has], "model": np.full(int(has.sum()), name or None, dtype=object), "kind": kinds,
        "layer": pd.Series(opt("layer"), dtype=object), "head": pd.Series(opt("head"), dtype=object),
        "dictionary": pd.Series(opt("dictionary"), dtype=object), "feature": pd.Series(opt("feature"), dtype=object),
    })
    return df.drop_duplicates("uid").reset_index(drop=True)


def unit_table(frame: pd.DataFrame) -> "pa.Table":
    """A :func:`unit_frame` as Arrow (typed, NULLs kept) for ``COPY``."""
    import pyarrow as pa

    types = {"layer": pa.int64(), "head": pa.int64(), "feature": pa.int64()}
    return pa.table({c: pa.array(frame[c].tolist(), type=types.get(c, pa.string())) for c in UNIT_PROPS})


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


def node_rows_by_kind(graph: AttributionGraph, graph_id: str, *, sid: str | None = None
                      ) -> dict[str, list[dict[str, Any]]]:
    """Node property maps (:data:`NODE_PROPS`, absent → None) grouped by kind, for ``UNWIND $rows`` writes."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in node_table(graph, graph_id, sid=sid).to_pylist():
        out.setdefault(rec["kind"], []).append({k: _clean(v) for k, v in rec.items()})
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
def _text(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def graph_props(graph: AttributionGraph, meta_or_id: dict[str, Any] | str | None = None, *, sid: str | None = None,
                current: bool = True, seq: int = 0) -> dict[str, Any]:
    """Properties of the ``Graph`` node (:data:`GRAPH_PROPS`). ``meta_or_id``: the metadata to store (its ``id`` is
    the graph id) or just the graph id (default ``graph.id``); ``meta`` is stored whole as JSON. ``sid``: the
    version's storage id (default: the graph id, an unversioned write); ``current``: whether readers see it;
    ``seq``: the version order (newest = largest)."""
    if isinstance(meta_or_id, dict):
        meta = dict(meta_or_id)
    else:
        meta = {**graph.meta, "id": meta_or_id or graph.id}
    gid = str(meta["id"])
    return {
        "sid": gid if sid is None else sid, "id": gid, "current": bool(current), "seq": int(seq),
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        "model": _text(meta.get("model")), "granularity": _text(meta.get("granularity")),
        "method": _text(meta.get("method")), "metric": _text(meta.get("metric")), "prompt": _text(meta.get("prompt")),
        "meta": json.dumps(meta, sort_keys=True), "n_nodes": int(graph.n_nodes), "n_edges": int(graph.n_edges),
        "created_at": _text(meta.get("created_at")), "schema_version": int(meta.get("schema_version") or 0),
        "circuitdb_version": _text(meta.get("circuitdb_version")), "step": checkpoint_step(meta),
    }


def checkpoint_step(meta: dict[str, Any]) -> int | None:
    """The training step of the checkpoint a graph was computed on (``meta["checkpoint"]``), or None."""
    ck = meta.get("checkpoint")
    value = ck.get("value") if isinstance(ck, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def meta_from_props(props: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(props["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise StoreError(f"graph {props.get('id')!r} has unreadable metadata: {e}") from e


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
