"""`AttributionGraph`: the in-memory, columnar attribution graph every stage of circuitdb exchanges.

Conventions (stated once):
- Nodes are rows of a pandas DataFrame with the fixed columns of :data:`NODE_COLUMNS`; a node is referred to by its
  row position (``int64``). ``key`` is unique inside a graph and readable (``A1.3``, ``F2:117@5``, ``LOGITS``...).
- "None" values: ``-1`` for the integer columns, ``""`` for the string columns, ``NaN`` for the float columns.
  ``layer`` orders the DAG: embed = -1, logit = n_layers.
- Edges are parallel numpy arrays ``src``, ``dst`` (row positions), ``weight`` (float64), ``channel`` (int8 code of
  :data:`CHANNELS`). An edge ``src → dst`` carries the attribution of the target's quantity to the source; sign kept.
- ``meta`` is a JSON-serialisable dict (see :data:`META_KEYS`); ``meta["id"]`` defaults to a content hash.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, GraphValidationError, one_of

SCHEMA_VERSION = 1

KINDS = ("embed", "head", "mlp", "feature", "error", "logit")
CHANNELS = ("", "q", "k", "v")
INT_COLUMNS = ("layer", "head", "pos", "feature", "token")
STR_COLUMNS = ("key", "kind", "dictionary", "label")
FLOAT_COLUMNS = (
    "activation", "influence", "direct_logit", "prev_token_score", "induction_score", "duplicate_token_score",
    "probability",
)
NODE_COLUMNS = STR_COLUMNS[:2] + INT_COLUMNS + STR_COLUMNS[2:] + FLOAT_COLUMNS
EDGE_COLUMNS = ("source", "target", "weight", "channel")
META_KEYS = (
    "id", "model", "granularity", "method", "metric", "prompt", "tokens", "params", "dictionaries", "scores",
    "created_at", "circuitdb_version", "schema_version",
)


@functools.lru_cache(maxsize=1)
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("circuitdb")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def normalize_nodes(nodes: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``nodes`` with exactly :data:`NODE_COLUMNS`, their dtypes, and "none" values filled.

    Raises GraphValidationError for unknown columns, missing ``key``/``kind``, or values of the wrong type.
    """
    unknown = [c for c in nodes.columns if c not in NODE_COLUMNS]
    if unknown:
        raise GraphValidationError(f"unknown node column(s) {unknown}; valid columns: {', '.join(NODE_COLUMNS)}")
    for c in ("key", "kind"):
        if c not in nodes.columns:
            raise GraphValidationError(f"node frame lacks the required column {c!r}")
    n = len(nodes)
    out: dict[str, Any] = {}
    for c in NODE_COLUMNS:
        if c not in nodes.columns:
            if c in INT_COLUMNS:
                out[c] = np.full(n, -1, dtype=np.int64)
            elif c in FLOAT_COLUMNS:
                out[c] = np.full(n, np.nan, dtype=np.float64)
            else:
                out[c] = np.full(n, "", dtype=object)
            continue
        col = nodes[c]
        try:
            if c in INT_COLUMNS:
                vals = col.fillna(-1)
                out[c] = vals.to_numpy(dtype=np.int64)
                if pd.api.types.is_float_dtype(vals.dtype):  # 1.5 must not become 1 silently
                    frac = out[c] != vals.to_numpy(dtype=np.float64)
                    if frac.any():
                        raise ValueError(f"non-integral value {float(vals[frac].iat[0])!r}")
            elif c in FLOAT_COLUMNS:
                out[c] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                out[c] = col.fillna("").astype(str).to_numpy(dtype=object)
        except (TypeError, ValueError) as e:
            raise GraphValidationError(f"node column {c!r} has values that are not {_kind_of(c)}: {e}") from e
    return pd.DataFrame(out)


def _kind_of(col: str) -> str:
    return "integers" if col in INT_COLUMNS else "floats" if col in FLOAT_COLUMNS else "strings"


class AttributionGraph:
    """Columnar attribution graph: a node table, parallel edge arrays and metadata. Validated on construction."""

    __slots__ = ("nodes", "src", "dst", "weight", "channel", "meta", "_index")

    def __init__(
        self,
        nodes: pd.DataFrame,
        src: np.ndarray,
        dst: np.ndarray,
        weight: np.ndarray,
        channel: np.ndarray | None = None,
        meta: dict | None = None,
        *,
        validate: bool = True,
        normalized: bool = False,
    ) -> None:
        # normalized: ``nodes`` is already exactly normalize_nodes' output with a RangeIndex (taken as it is)
        self.nodes = nodes if normalized else normalize_nodes(nodes).reset_index(drop=True)
        self.src = np.ascontiguousarray(src, dtype=np.int64).reshape(-1)
        self.dst = np.ascontiguousarray(dst, dtype=np.int64).reshape(-1)
        self.weight = np.ascontiguousarray(weight, dtype=np.float64).reshape(-1)
        self.channel = (
            np.zeros(len(self.src), dtype=np.int8) if channel is None
            else np.ascontiguousarray(channel, dtype=np.int8).reshape(-1)
        )
        self.meta = dict(meta or {})
        self._index: dict[str, int] | None = None
        if validate:
            self.validate()
        self.meta.setdefault("schema_version", SCHEMA_VERSION)
        self.meta.setdefault("circuitdb_version", _version())
        self.meta.setdefault("created_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        if not self.meta.get("id"):
            self.meta["id"] = self.content_hash()

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise GraphValidationError naming the first offending value."""
        kinds = self.nodes["kind"].to_numpy()
        bad = ~np.isin(kinds, KINDS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GraphValidationError(
                f"node {self.nodes['key'].iat[i]!r} (row {i}): " + one_of(kinds[i], KINDS, "node kind")
            )
        keys = self.nodes["key"]
        if (keys == "").any():
            i = int(np.flatnonzero((keys == "").to_numpy())[0])
            raise GraphValidationError(f"node at row {i} has an empty key")
        dup = keys.duplicated()
        if dup.any():
            k = keys[dup].iat[0]
            rows = np.flatnonzero((keys == k).to_numpy()).tolist()
            raise GraphValidationError(f"duplicate node key {k!r} at rows {rows}")
        m = len(self.src)
        for name in ("dst", "weight", "channel"):
            if len(getattr(self, name)) != m:
                raise GraphValidationError(f"edge arrays differ in length: src {m}, {name} {len(getattr(self, name))}")
        n = len(self.nodes)
        for name in ("src", "dst"):
            arr = getattr(self, name)
            out = (arr < 0) | (arr >= n)
            if out.any():
                j = int(np.flatnonzero(out)[0])
                raise GraphValidationError(
                    f"edge {j} has {'source' if name == 'src' else 'target'} {int(arr[j])}, outside the node table [0, {n})"
                )
        nonfinite = ~np.isfinite(self.weight)
        if nonfinite.any():
            j = int(np.flatnonzero(nonfinite)[0])
            raise GraphValidationError(
                f"edge {j} ({self.nodes['key'].iat[self.src[j]]} -> {self.nodes['key'].iat[self.dst[j]]}) has a "
                f"non-finite weight {self.weight[j]!r}"
            )
        badc = (self.channel < 0) | (self.channel >= len(CHANNELS))
        if badc.any():
            j = int(np.flatnonzero(badc)[0])
            raise GraphValidationError(f"edge {j} has channel code {int(self.channel[j])}; valid codes 0..3 for {CHANNELS}")
        for c in FLOAT_COLUMNS:
            inf = np.isinf(self.nodes[c].to_numpy())
            if inf.any():
                i = int(np.flatnonzero(inf)[0])
                raise GraphValidationError(f"node {self.nodes['key'].iat[i]!r} has an infinite {c}")
        try:
            json.dumps(self.meta)
        except TypeError as e:
            raise GraphValidationError(f"graph metadata is not JSON-serialisable: {e}") from e

    # ----------------------------------------------------------------- basic accessors
    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.src)

    @property
    def abs_weight(self) -> np.ndarray:
        return np.abs(self.weight)

    @property
    def keys(self) -> np.ndarray:
        return self.nodes["key"].to_numpy()

    def node_index(self, key: str) -> int:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.keys)}
        try:
            return self._index[key]
        except KeyError:
            raise ConfigError(f"graph {self.id!r} has no node {key!r}") from None

    def __repr__(self) -> str:
        return (
            f"AttributionGraph(id={self.id!r}, granularity={self.meta.get('granularity')!r}, "
            f"nodes={self.n_nodes}, edges={self.n_edges})"
        )

    # ----------------------------------------------------------------- frames
    @classmethod
    def from_frames(cls, nodes: pd.DataFrame, edges: pd.DataFrame, meta: dict | None = None) -> "AttributionGraph":
        """Build from a node frame and an edge frame whose ``source``/``target`` are node row positions."""
        missing = [c for c in ("source", "target", "weight") if c not in edges.columns]
        if missing:
            raise GraphValidationError(f"edge frame lacks column(s) {missing}; expected {EDGE_COLUMNS}")
        unknown = [c for c in edges.columns if c not in EDGE_COLUMNS + ("abs_weight",)]
        if unknown:
            raise GraphValidationError(f"unknown edge column(s) {unknown}; valid columns: {', '.join(EDGE_COLUMNS)}")
        src, dst, w, channel = _edge_arrays(edges, "edge frame")
        return cls(nodes, src, dst, w, channel, meta)

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(nodes, edges) DataFrames; edges reference node rows by position."""
        edges = pd.DataFrame({
            "source": self.src, "target": self.dst, "weight": self.weight,
            "channel": np.asarray(CHANNELS, dtype=object)[self.channel],
        })
        return self.nodes.copy(), edges

    # ----------------------------------------------------------------- derived graphs
    def subgraph(self, edge_mask: np.ndarray | None = None, node_mask: np.ndarray | None = None,
                 meta: dict | None = None) -> "AttributionGraph":
        """Keep the masked nodes (default all) and the masked edges between kept nodes; rows are renumbered."""
        keep_n = np.ones(self.n_nodes, bool) if node_mask is None else np.asarray(node_mask, bool)
        keep_e = np.ones(self.n_edges, bool) if edge_mask is None else np.asarray(edge_mask, bool).copy()
        keep_e &= keep_n[self.src] & keep_n[self.dst]
        new_pos = np.cumsum(keep_n) - 1
        return AttributionGraph(
            self.nodes[keep_n].reset_index(drop=True), new_pos[self.src[keep_e]], new_pos[self.dst[keep_e]],
            self.weight[keep_e], self.channel[keep_e], dict(meta if meta is not None else self.meta), validate=False,
        )

    def equals(self, other: "AttributionGraph", *, atol: float = 0.0, meta: bool = True) -> bool:
        """Same nodes, same edge multiset (order-free), same weights (within ``atol``), and (optionally) meta."""
        return not self.diff(other, atol=atol, meta=meta)

    def diff(self, other: "AttributionGraph", *, atol: float = 0.0, meta: bool = True) -> list[str]:
        """Human-readable differences (empty when equal). Nodes compared by key, edges by (src key, dst key, channel)."""
        out: list[str] = []
        a = self.nodes.sort_values("key").reset_index(drop=True)
        b = other.nodes.sort_values("key").reset_index(drop=True)
        if len(a) != len(b) or not (a["key"].to_numpy() == b["key"].to_numpy()).all():
            out.append(f"node keys differ ({len(a)} vs {len(b)} nodes)")
            return out
        for c in NODE_COLUMNS:
            x, y = a[c].to_numpy(), b[c].to_numpy()
            if c in FLOAT_COLUMNS:
                same = np.isclose(x, y, atol=atol, rtol=0, equal_nan=True) if atol else (x == y) | (np.isnan(x) & np.isnan(y))
            else:
                same = x == y
            if not np.all(same):
                i = int(np.flatnonzero(~np.asarray(same))[0])
                out.append(f"node {a['key'].iat[i]!r}: {c} {x[i]!r} != {y[i]!r}")
        ea, eb = self._edge_table(), other._edge_table()
        ka, kb = ea[["s", "t", "c"]], eb[["s", "t", "c"]]
        if len(ea) != len(eb) or not (ka.to_numpy() == kb.to_numpy()).all():
            out.append(f"edge sets differ ({len(ea)} vs {len(eb)} edges)")
        else:
            d = np.abs(ea["weight"].to_numpy() - eb["weight"].to_numpy())
            if (d > atol).any():
                i = int(np.argmax(d))
                edge = tuple(ka.iloc[i])
                out.append(f"edge {edge}: weight {ea['weight'].iat[i]!r} != {eb['weight'].iat[i]!r}")
        if meta:
            ma = {k: v for k, v in self.meta.items()}
            mb = {k: v for k, v in other.meta.items()}
            if json.dumps(ma, sort_keys=True, default=str) != json.dumps(mb, sort_keys=True, default=str):
                keys = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
                out.append(f"meta differs in {keys}")
        return out

    def _edge_table(self) -> pd.DataFrame:
        """Edges as (s key, t key, channel, weight) in a canonical order: parallel edges (same ends and channel)
        are ordered by weight, so the comparison does not depend on the order edges were written in."""
        keys = self.keys
        df = pd.DataFrame({"s": keys[self.src], "t": keys[self.dst], "c": self.channel, "weight": self.weight})
        return df.sort_values(["s", "t", "c", "weight"], kind="stable").reset_index(drop=True)

    def content_hash(self) -> str:
        """A short hash of nodes, edges and the identifying metadata (model, method, prompt, tokens, params)."""
        h = hashlib.sha256()
        h.update(json.dumps({k: self.meta.get(k) for k in ("model", "method", "metric", "prompt", "tokens", "params")},
                            sort_keys=True, default=str).encode())
        h.update("\x1f".join(self.keys.tolist()).encode())
        for arr in (self.src, self.dst, self.weight, self.channel):
            h.update(np.ascontiguousarray(arr).tobytes())
        return "g-" + h.hexdigest()[:16]

    # ----------------------------------------------------------------- on-disk format
    def save(self, path: str | Path) -> Path:
        """Write the native format: a directory with ``nodes.parquet``, ``edges.parquet`` and ``meta.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        nodes, edges = self.to_frames()
        nodes.to_parquet(path / "nodes.parquet", index=False)
        edges = edges.assign(channel=self.channel)
        edges.to_parquet(path / "edges.parquet", index=False)
        (path / "meta.json").write_text(json.dumps({"format": "circuitdb-graph", **self.meta}, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "AttributionGraph":
        """Read a graph written by :meth:`save`; refuses unknown formats and newer schema versions."""
        path = Path(path)
        files = [path / n for n in ("meta.json", "nodes.parquet", "edges.parquet")]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise ConfigError(f"{path} is not a circuitdb graph directory: missing {missing}")
        try:
            meta = json.loads(files[0].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{files[0]} is not readable JSON ({type(e).__name__}: {e})") from e
        if not isinstance(meta, dict):
            raise ConfigError(f"{files[0]} must hold a JSON object, got {type(meta).__name__}")
        if meta.pop("format", None) != "circuitdb-graph":
            raise ConfigError(f"{path}/meta.json is not a circuitdb graph (no format: circuitdb-graph)")
        version = meta.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ConfigError(f"{path}: schema_version {version!r} is not supported (this circuitdb reads ≤ {SCHEMA_VERSION})")
        frames = []
        for f in files[1:]:
            try:
                frames.append(pd.read_parquet(f))
            except Exception as e:  # pyarrow raises several types for a torn or foreign file
                raise ConfigError(f"{f} is not a readable parquet file ({type(e).__name__}: {e})") from e
        nodes, edges = frames
        unknown = [c for c in edges.columns if c not in EDGE_COLUMNS]
        if unknown:
            raise ConfigError(f"{files[2]}: unknown edge column(s) {unknown}; valid: {', '.join(EDGE_COLUMNS)}")
        src, dst, w, channel = _edge_arrays(edges, str(files[2]))
        return cls(nodes, src, dst, w, channel, meta)

    # ----------------------------------------------------------------- interop (formats engineer; additive)
    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph`` keyed by node key: node attributes are the node columns (NaN floats left
        out), each edge keeps its own ``weight``, ``abs_weight`` and ``channel`` ("", q, k, v; parallel q/k/v edges
        of one pair stay apart); ``G.graph`` is a copy of ``meta``."""
        import networkx as nx

        g = nx.MultiDiGraph(**json.loads(json.dumps(self.meta)))
        for rec in self.nodes.to_dict("records"):
            g.add_node(rec["key"], **{k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()
                                      if k != "key" and not (isinstance(v, float) and np.isnan(v))})
        keys = self.keys
        for s, t, w, c in zip(keys[self.src], keys[self.dst], self.weight.tolist(), self.channel.tolist()):
            g.add_edge(s, t, weight=w, abs_weight=abs(w), channel=CHANNELS[c])
        return g

    def _repr_html_(self) -> str | None:
        """The interactive offline view inside a notebook cell (registered by :mod:`circuitdb.render`, which the
        ``circuitdb`` facade imports; plain ``repr`` until then)."""
        view = HTML_VIEWS.get("notebook")
        return view(self) if view is not None else None


#: notebook views by name, filled by :mod:`circuitdb.render` (a higher layer: graph.py never imports it)
HTML_VIEWS: dict[str, Any] = {}


def _edge_arrays(edges: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """source/target/weight/channel of an edge frame, refusing what a cast would change silently: non-integral or
    missing indices, complex or non-numeric weights, out-of-range channel codes."""
    missing = [c for c in ("source", "target", "weight") if c not in edges.columns]
    if missing:
        raise GraphValidationError(f"{where} lacks column(s) {missing}; expected {EDGE_COLUMNS}")
    out = []
    for col in ("source", "target"):
        v = edges[col]
        if not (pd.api.types.is_integer_dtype(v.dtype) or pd.api.types.is_float_dtype(v.dtype)):
            raise GraphValidationError(f"{where}: column {col!r} must hold integer node rows, got {v.dtype}")
        f = v.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(f) | (f != np.round(f))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise GraphValidationError(f"{where}: {col} of edge {j} is {f[j]!r}, not a node row (an integer)")
        out.append(f.astype(np.int64) if pd.api.types.is_float_dtype(v.dtype) else v.to_numpy(dtype=np.int64))
    wcol = edges["weight"]
    if pd.api.types.is_complex_dtype(wcol.dtype) or not (pd.api.types.is_numeric_dtype(wcol.dtype)
                                                          and not pd.api.types.is_bool_dtype(wcol.dtype)):
        raise GraphValidationError(f"{where}: column 'weight' must hold real numbers, got {wcol.dtype}")
    channel = encode_channels(edges["channel"]) if "channel" in edges.columns else None
    return out[0], out[1], wcol.to_numpy(dtype=np.float64), channel


def encode_channels(values: Any) -> np.ndarray:
    """Map channel strings ("", "q", "k", "v"; None/NaN = "") or int codes to int8 codes; bad values raise."""
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s.dtype):
        bad = (s < 0) | (s >= len(CHANNELS))
        if bad.any():  # int8 would wrap 256 to 0
            raise GraphValidationError(f"channel code {int(s[bad].iat[0])} is out of range; valid codes 0..3 for "
                                       f"{CHANNELS}")
        return s.to_numpy(dtype=np.int8)
    s = s.fillna("").astype(str)
    codes = s.map({c: i for i, c in enumerate(CHANNELS)})
    if codes.isna().any():
        bad = s[codes.isna()].iat[0]
        raise GraphValidationError(one_of(bad, [repr(c) for c in CHANNELS], "edge channel"))
    return codes.to_numpy(dtype=np.int8)
