"""Row format shared by both stores, write side: AttributionGraph → the rows/properties of the store schema.

Both stores (embedded Ladybug, Neo4j) use this module, so they write exactly the same properties; reading them back
(rows → AttributionGraph, read filters, circuit records) is :mod:`circuitdb.store.readback`, re-exported here.

Stored values
    ``Node``: :data:`NODE_PROPS` = ``uid`` (``sid + "/" + key``, primary key; ``sid`` is the version's storage id),
    ``sid``, ``graph_id``, ``idx`` (the node's row position in its graph: reads restore node order, edges are read
    back as ``idx`` pairs), ``name`` (the Browser caption), then :data:`circuitdb.graph.NODE_COLUMNS`. Absent
    values are NULL (graph.py's ``-1`` ints — but ``layer = -1`` of an embedding is a value —, ``""`` strings,
    ``NaN`` floats). ``ATTRIBUTES``: ``weight``, ``abs_weight``, ``channel`` (``""``/``"q"``/``"k"``/``"v"``).
    ``Unit``: :data:`UNIT_PROPS`; uids ``{model}/A{l}.{h}`` (heads), ``{model}/M{l}`` (MLPs),
    ``{model}/{dictionary}/F{l}:{i}`` (features) — independent of position, shared across graphs. Other kinds have
    no unit. ``Graph``: :data:`GRAPH_PROPS`; ``meta`` holds the whole metadata as JSON (the source of truth on read).
    ``Circuit``: :data:`CIRCUIT_PROPS`; ``params``/``scores``/``edges`` are JSON strings.

Columnar helpers (embedded store, ``COPY FROM`` frames; built column-wise with numpy/Arrow, no per-edge Python
objects): :func:`node_table`, :func:`edge_table` (``from``, ``to``, weight, abs_weight, channel), :func:`unit_frame`
/ :func:`unit_table`, :func:`instance_rows`; pandas forms :func:`node_rows`, :func:`edge_rows`.
Row-dict helpers (Neo4j ``UNWIND $rows``): :func:`node_rows_by_kind`, :func:`unit_rows`,
:func:`instance_row_dicts` (``{s, t}``), :func:`edge_row_batches` (``{s, t, w, a, c}``).
Shared: :func:`check_graph_id`, :func:`check_graph_ids`, :func:`graph_props`, :func:`circuit_props`,
:func:`circuit_rows`, :func:`plain_value`.

Note: uids join ``sid`` and ``key`` with ``/``, so a key containing ``/`` could collide with another id's uid;
the embedded store then fails the write (duplicate primary key) and keeps the old state.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError
from circuitdb.graph import CHANNELS, FLOAT_COLUMNS, INT_COLUMNS, NODE_COLUMNS, AttributionGraph
from circuitdb.plain import plain_value  # noqa: F401 - the one sanitiser (re-exported for the stores)
from circuitdb.store.readback import (  # noqa: F401 - the read side, re-exported (rows.X keeps working)
    LIST_CIRCUITS_COLUMNS, LIST_GRAPHS_COLUMNS, check_weight_floor, circuit_edges_from_json, circuit_record,
    graph_from_columns, graph_from_rows, meta_from_props, node_filters, plain_params,
)

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


def check_graph_ids(graphs: Sequence[AttributionGraph], graph_ids: Sequence[str | None]) -> list[str]:
    """The ids a ``write_graphs`` call writes (``None`` → the graph's own id), each checked, each once per call."""
    if len(graph_ids) != len(graphs):
        raise ConfigError(f"write_graphs: {len(graphs)} graphs but {len(graph_ids)} graph ids")
    gids = [check_graph_id(g.id if i is None else i) for g, i in zip(graphs, graph_ids)]
    seen: set[str] = set()
    dup = sorted({g for g in gids if g in seen or seen.add(g)})  # type: ignore[func-returns-value]
    if dup:
        raise ConfigError(f"write_graphs got graph id(s) {dup} more than once; each id once per call")
    return gids


def node_uids(graph: AttributionGraph, graph_id: str) -> np.ndarray:
    """Object array of node uids, in node row order."""
    return (graph_id + UID_SEP) + np.asarray(graph.keys, dtype=object) if graph.n_nodes else np.zeros(0, dtype=object)


def _ints(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=np.int64).astype(str).astype(object)


def unit_uids(graph: AttributionGraph, model: str | None = None) -> np.ndarray:
    """Object array, one per node: the unit uid of heads / MLPs / features, ``""`` for other kinds (built per kind
    with array string concatenation, no per-node Python loop)."""
    model = model_identity(graph.meta) if model is None else str(model)
    nd = graph.nodes
    out = np.full(graph.n_nodes, "", dtype=object)
    kind = nd["kind"].to_numpy(dtype=object)
    layer = _ints(nd["layer"])
    for k, make in (
        ("head", lambda m: model + "/A" + layer[m] + "." + _ints(nd["head"])[m]),
        ("mlp", lambda m: model + "/M" + layer[m]),
        ("feature", lambda m: (model + "/") + nd["dictionary"].to_numpy(dtype=object)[m] + "/F" + layer[m] + ":"
         + _ints(nd["feature"])[m]),
    ):
        m = kind == k
        if m.any():
            out[m] = make(m)
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
    """:func:`caption` of every node, in node order (the key itself where a node has no label)."""
    names = np.asarray(graph.keys, dtype=object).copy()
    labels = graph.nodes["label"].to_numpy(dtype=object)
    has = np.flatnonzero(labels != "")
    kinds = graph.nodes["kind"].to_numpy(dtype=object)
    names[has] = [caption(names[i], labels[i], kinds[i]) for i in has.tolist()]
    return names


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
                 scores: dict[str, Any], edges: pd.DataFrame | None = None
                 ) -> tuple[dict[str, Any], list[str], list[str]]:
    """What both stores write for a circuit: its node properties, its distinct node keys and their node uids."""
    keys = list(dict.fromkeys(str(k) for k in node_keys))
    props = circuit_props(name, graph_id, method=method, params=params, scores=scores, edges=edges, n_nodes=len(keys))
    return props, keys, [node_uid(graph_id, k) for k in keys]


#: separates an edge's channel from its target key in ``INCLUDES.edges`` (channels are "", q, k, v: never ":")
CIRCUIT_EDGE_SEP = ":"


def circuit_edge_lists(name: str, keys: list[str], edges: pd.DataFrame | None) -> list[list[str]]:
    """A circuit's edge membership, per node key of ``keys``: the circuit's edges out of that node as
    ``"<channel>:<target key>"``. Both stores store it as the ``edges`` property of the ``INCLUDES`` link to the node,
    so a query follows a circuit's edges with
    ``(c)-[i:INCLUDES]->(a)-[e:ATTRIBUTES]->(b) WHERE (e.channel + ':' + b.key) IN i.edges``
    (queries/circuit_edges.cypher). ``edges``: columns source/target (or src/dst) and an optional channel."""
    out: dict[str, list[str]] = {k: [] for k in keys}
    if edges is None or not len(edges):
        return list(out.values())
    s_col = "source" if "source" in edges.columns else "src"
    t_col = "target" if "target" in edges.columns else "dst"
    if s_col not in edges.columns or t_col not in edges.columns:
        raise ConfigError(f"circuit {name!r}: its edge table needs source and target columns; got "
                          f"{[str(c) for c in edges.columns]}")
    chans = edges["channel"].tolist() if "channel" in edges.columns else [""] * len(edges)
    for src, dst, ch in zip(edges[s_col].astype(str), edges[t_col].astype(str), chans):
        ch = "" if ch is None or (isinstance(ch, float) and np.isnan(ch)) else str(ch)
        if ch not in CHANNELS:
            raise ConfigError(f"circuit {name!r}: edge {src} -> {dst} has channel {ch!r}; valid: {list(CHANNELS)}")
        if src not in out or dst not in out:
            raise ConfigError(f"circuit {name!r}: edge {src} -> {dst} joins node(s) "
                              f"{[k for k in (src, dst) if k not in out]} that are not among the circuit's nodes")
        out[src].append(ch + CIRCUIT_EDGE_SEP + dst)
    return list(out.values())
