"""The one JSON sanitiser: values from numpy, pandas and database drivers → plain Python (JSON-ready).

Used for graph metadata (:mod:`circuitdb.attribution.api`), store rows (:mod:`circuitdb.store.rows`) and CLI JSON
output. Imports nothing of circuitdb, so every layer may use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def plain_value(v: Any, *, nan_to_none: bool = False) -> Any:
    """numpy scalars/arrays → Python values; driver nodes/relationships (anything with ``items()`` and an
    ``element_id``) → property dicts; driver paths → ``{"nodes", "relationships"}``; temporal values (``iso_format``)
    → strings; lists, tuples and dicts recursively. With ``nan_to_none`` NaN floats become None (JSON null)."""
    rec = lambda x: plain_value(x, nan_to_none=nan_to_none)  # noqa: E731
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if nan_to_none and math.isnan(v) else v
    if isinstance(v, np.ndarray):
        return [rec(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {str(k): rec(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [rec(x) for x in v]
    if hasattr(v, "element_id") and hasattr(v, "items"):
        return {str(k): rec(x) for k, x in v.items()}
    if hasattr(v, "nodes") and hasattr(v, "relationships") and not isinstance(v, (str, bytes)):  # a path
        return {"nodes": [rec(n) for n in v.nodes], "relationships": [rec(r) for r in v.relationships]}
    if hasattr(v, "iso_format"):  # neo4j temporal types
        return v.iso_format()
    return v


def json_fields(d: dict) -> dict:
    """The entries of ``d`` that are JSON-serialisable once made plain (others dropped), e.g. a task's ``meta``."""
    out = {}
    for k, v in d.items():
        v = plain_value(v)
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out
