"""The named Cypher library and :func:`query`.

The library files live in the package (``circuitdb/queries/*.cypher``; the repository's top-level ``queries/`` is a
symlink to that folder, so the Neo4j Browser user and an installed package read the same text). Each file starts
with a header comment:

    // NAME: one-line purpose ...
    // @param graph_id: string               description        (no default: required)
    // @param limit: integer = 25            description        (default after '=': null, numbers, 'text', true)
    // @sort: depth asc, strength desc       (optional) how circuitdb.query merges UNION ALL branches
    // @branches: depth                      (optional) UNION ALL branch k only matters when depth >= k
    // @top_k: min_weight                    (optional) a |weight| floor query() may raise first (top-k speed)
    // :params {...}                         an example for the Neo4j Browser

Types: ``string``, ``integer``, ``float``, ``boolean``, ``list<string>``, ``list<integer>``, ``list<float>``.
Values always go to the store as parameters; the text of a named query is never changed by a value. The shipped files need no
per-store adaptation (if one is ever needed, it belongs in :mod:`circuitdb.store.cypher`).

Each library query also has a *Browser form* (``queries/browser/NAME.cypher``, :func:`browser_form`): the same
parameters, returning nodes and relationships ordered and bounded by ``$limit`` in the Cypher itself, for pasting
into the Neo4j Browser (the library text leaves the merge and the cut of its UNION ALL branches to :func:`query`:
a LIMIT inside a UNION ALL branch still crashes Ladybug 0.22 when another branch is empty).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from circuitdb.errors import QueryError, one_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from circuitdb.store.base import GraphStore

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM = re.compile(r"^//\s*@param\s+([A-Za-z_]\w*)\s*:\s*([\w<>]+)(?:\s*=\s*('(?:[^']*)'|\S+))?\s*(.*)$")
_SORT = re.compile(r"^//\s*@sort\s*:\s*(.+)$")
_TOP_K = re.compile(r"^//\s*@top_k\s*:\s*([A-Za-z_]\w*)\s*$")
_BRANCHES = re.compile(r"^//\s*@branches\s*:\s*([A-Za-z_]\w*)\s*$")
_UNION = "\nUNION ALL\n"
TYPES = ("string", "integer", "float", "boolean", "list<string>", "list<integer>", "list<float>")


@dataclass(frozen=True)
class QueryParam:
    name: str
    type: str
    required: bool
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class NamedQuery:
    """One library query: its name, Cypher text, purpose (first header line), parameters and merge order."""

    name: str
    text: str
    purpose: str
    params: tuple[QueryParam, ...]
    sort: tuple[tuple[str, bool], ...] = ()  # (column, ascending)
    path: str = ""
    top_k: str | None = None  # a |weight| floor parameter circuitdb.query may raise (see query())
    branches: str | None = None  # UNION ALL branch k (1-based) can only return rows when this parameter >= k

    def text_for(self, bound: dict[str, Any]) -> str:
        """The text to run: with ``@branches: p``, the UNION ALL branches past ``p`` are left out (each is guarded
        by ``WHERE $p >= k`` anyway, but the store would still plan and scan it). Chooses among fixed texts only."""
        if not self.branches or not isinstance(bound.get(self.branches), int):
            return self.text
        return _UNION.join(self.branch_texts(bound))

    def branch_texts(self, bound: dict[str, Any]) -> list[str]:
        """The UNION ALL branches to run (all of them, or those up to ``@branches``). :func:`query` runs them one by
        one and merges them itself: Ladybug 0.22 returned wrong column values for some UNION ALL statements (a 3-hop
        branch's ``product`` came back equal to its ``bottleneck``), while each branch alone is right."""
        parts = self.text.split(_UNION)
        if self.branches and isinstance(bound.get(self.branches), int):
            parts = parts[: max(1, min(len(parts), bound[self.branches]))]
        return parts

    def param(self, name: str) -> QueryParam | None:
        return next((p for p in self.params if p.name == name), None)

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check ``params`` against the header (unknown names, missing required, types) and fill defaults."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise QueryError(f"query {self.name!r} has no parameter(s) {unknown}; valid: {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in params:
                out[p.name] = _coerce(self.name, p, params[p.name])
            elif p.required:
                raise QueryError(f"query {self.name!r} needs parameter {p.name!r} ({p.type}): {p.description}")
            else:
                out[p.name] = p.default
        return out


def _parse_default(raw: str | None, qname: str, pname: str) -> tuple[bool, Any]:
    if raw is None:
        return True, None
    if raw.startswith("'") and raw.endswith("'"):
        return False, raw[1:-1]
    try:
        return False, json.loads(raw)
    except json.JSONDecodeError as e:
        raise QueryError(f"query {qname!r}: default {raw!r} of parameter {pname!r} is not a literal") from e


_RANGE = re.compile(r"\((-?\d+)\.\.(-?\d+)\)")


def _coerce(qname: str, p: QueryParam, value: Any) -> Any:
    if value is None:
        if p.required or p.default is not None:
            raise QueryError(f"query {qname!r}: parameter {p.name!r} cannot be null"
                             + (f" (default {p.default!r})" if p.default is not None else ""))
        return None
    out = _coerce_value(qname, p, value)
    if isinstance(out, float) and not math.isfinite(out):
        raise QueryError(f"query {qname!r}: parameter {p.name!r} must be a finite number; got {value!r}")
    m = _RANGE.search(p.description)  # "(1..4)" in a parameter's description is its inclusive range
    if m and isinstance(out, (int, float)) and not int(m.group(1)) <= out <= int(m.group(2)):
        raise QueryError(f"query {qname!r}: parameter {p.name!r} must be in {m.group(1)}..{m.group(2)}; got {value!r}")
    return out


def _coerce_value(qname: str, p: QueryParam, value: Any) -> Any:
    bad = QueryError(f"query {qname!r}: parameter {p.name!r} must be {p.type}; got {value!r}")
    if p.type.startswith("list<"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise bad
        inner = QueryParam(p.name, p.type[5:-1], False)
        return [_coerce_value(qname, inner, v) for v in value]
    if p.type == "string":
        if not isinstance(value, str):
            raise bad
        return value
    if p.type == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad
    if p.type == "integer":
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise bad
        return int(value)
    if not math.isfinite(float(value)):
        raise QueryError(f"query {qname!r}: parameter {p.name!r} must be a finite number; got {value!r}")
    return float(value)


def parse_query(text: str, name: str, path: str = "") -> NamedQuery:
    """Parse a library file's header (see module docstring)."""
    params: list[QueryParam] = []
    sort: list[tuple[str, bool]] = []
    purpose = ""
    top_k: str | None = None
    branches: str | None = None
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("//"):
            if s:
                break
            continue
        if not purpose and ":" in s and not s.startswith("// @"):
            purpose = s[2:].split(":", 1)[1].strip()
        m = _PARAM.match(s)
        if m:
            pname, ptype, raw, desc = m.groups()
            if ptype not in TYPES:
                raise QueryError(f"query {name!r}: parameter {pname!r} has type {ptype!r}; " + one_of(ptype, TYPES, "type"))
            required, default = _parse_default(raw, name, pname)
            params.append(QueryParam(pname, ptype, required, default, desc.strip()))
            continue
        m = _TOP_K.match(s)
        if m:
            top_k = m.group(1)
            continue
        m = _BRANCHES.match(s)
        if m:
            branches = m.group(1)
            continue
        m = _SORT.match(s)
        if m:
            for part in m.group(1).split(","):
                col, *direction = part.split()
                sort.append((col, not direction or direction[0].lower() != "desc"))
    used = set(re.findall(r"\$([A-Za-z_]\w*)", _strip_comments(text)))
    declared = {p.name for p in params}
    if used - declared:
        raise QueryError(f"query {name!r} uses undeclared parameter(s) {sorted(used - declared)}")
    if top_k is not None and top_k not in declared:
        raise QueryError(f"query {name!r}: @top_k names undeclared parameter {top_k!r}")
    return NamedQuery(name, text, purpose, tuple(params), tuple(sort), path, top_k, branches)


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))


def queries_dir() -> Path:
    """The folder holding the library (inside the installed package; a source checkout's ``queries/`` links here)."""
    return Path(str(resources.files("circuitdb") / "queries"))


@functools.lru_cache(maxsize=None)
def _load(path: str, mtime: float) -> NamedQuery:
    p = Path(path)
    return parse_query(p.read_text(encoding="utf-8"), p.stem, str(p))


def list_queries() -> list[str]:
    """Names of the library queries."""
    return sorted(p.stem for p in queries_dir().glob("*.cypher"))


def get_query(name_or_path: str) -> NamedQuery:
    """A library query by name, or a ``.cypher`` file by path (its header is parsed the same way)."""
    if name_or_path.endswith(".cypher"):
        p = Path(name_or_path)
        if not p.is_file():
            raise QueryError(f"query file {name_or_path!r} does not exist")
    else:
        if not _NAME.match(name_or_path):
            raise QueryError(f"{name_or_path!r} is not a query name; " + one_of(name_or_path, list_queries(), "query"))
        p = queries_dir() / f"{name_or_path}.cypher"
        if not p.is_file():
            raise QueryError(one_of(name_or_path, list_queries(), "query"))
    return _load(str(p.resolve()), p.stat().st_mtime)


def browser_form(name: str) -> str:
    """The Browser form of library query ``name`` (``queries/browser/NAME.cypher``): the same question and
    parameters, returning nodes and relationships (so the Neo4j Browser draws a graph) ordered and cut at ``$limit``
    in the Cypher itself. Neo4j Cypher (subqueries, path functions): it is for the Browser, not for ``query()``."""
    get_query(name)  # a library name (the error lists the valid ones)
    p = queries_dir() / "browser" / f"{name}.cypher"
    if not p.is_file():  # pragma: no cover - every library query has one (tests/queries/test_browser_forms.py)
        raise QueryError(f"query {name!r} has no Browser form ({p} is missing)")
    return p.read_text(encoding="utf-8")


def _is_cypher(text: str) -> bool:
    """Cypher text has whitespace; a name or a path to a ``.cypher`` file has none (a typo'd name gets the list)."""
    return bool(re.search(r"\s", text.strip())) and not text.strip().endswith(".cypher")


def query(store: "GraphStore", name_or_cypher: str, **params: Any) -> "pd.DataFrame":
    """Run a library query (by name), a ``.cypher`` file (by path), or Cypher text, read-only, on ``store``.

    Named queries check their parameters against the header (unknown or missing names, types) and fill defaults;
    UNION ALL branches are merged in the header's ``@sort`` order and cut at ``limit``. Raw Cypher gets ``params``
    as they are. Writes are refused (QueryError).
    """
    if _is_cypher(name_or_cypher):
        return store.run(name_or_cypher, params, write=False)
    q = get_query(name_or_cypher)
    bound = q.bind(params)
    df = _run_top_k(store, q, bound) if q.top_k else None
    if df is None:
        import pandas as pd

        parts = [store.run(text, bound, write=False) for text in q.branch_texts(bound)]
        df = parts[0] if len(parts) == 1 else pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    if q.sort and len(df):
        cols = [c for c, _ in q.sort if c in df.columns]
        asc = [a for c, a in q.sort if c in df.columns]
        df = df.sort_values(cols, ascending=asc, kind="stable").reset_index(drop=True)
        if isinstance(bound.get("limit"), int):
            df = df.head(bound["limit"]).reset_index(drop=True)
    log.debug("query %s → %d rows", q.name, len(df))
    return df


#: floors tried by @top_k queries, as fractions of the graph's largest |weight|
TOP_K_FLOORS = tuple(10.0 ** -k for k in range(1, 9))


def _run_top_k(store: "GraphStore", q: NamedQuery, bound: dict[str, Any]) -> "pd.DataFrame | None":
    """For a query ending in ``ORDER BY abs_weight DESC … LIMIT $limit`` whose ``@top_k`` parameter is a |weight|
    floor: run it with floors ``max|w| × 10^-k`` (k = 1, 2, …) above the caller's, and return the first result with
    ``limit`` rows — exactly the rows of the unfloored query, since each of them clears the floor. None when no floor
    above the caller's fills the limit (the caller then runs the query as given)."""
    limit, gid, floor0 = bound.get("limit"), bound.get("graph_id"), bound.get(q.top_k) or 0.0
    if not isinstance(limit, int) or not isinstance(gid, str):
        return None
    mx = store.run(get_query("max_abs_weight").text, {"graph_id": gid}, write=False)
    try:
        top, n_edges = float(mx["max_abs_weight"].iat[0]), int(mx["n_edges"].iat[0])
    except (IndexError, TypeError, ValueError):  # no such graph / no edges: NULL max
        return None
    if not np.isfinite(top) or top <= 0 or n_edges <= 4 * limit:
        return None
    for frac in TOP_K_FLOORS:
        floor = float(top) * frac
        if floor <= floor0:
            return None
        df = store.run(q.text_for(bound), {**bound, q.top_k: floor}, write=False)
        if len(df) >= limit:
            return df
    return None
