"""Helpers every file format shares: pydantic errors as one message naming the item, JSON reading, influence."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from circuitdb.errors import ConfigError, GraphValidationError


def read_json(path_or_obj: Any, what: str) -> Any:
    """A parsed JSON document from a path, a JSON string, or an already-parsed object."""
    if isinstance(path_or_obj, (dict, list)):
        return path_or_obj
    path = Path(path_or_obj)
    if not path.is_file():
        raise ConfigError(f"{what} file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GraphValidationError(f"{path} is not valid JSON ({what}): {e}") from e


def validation_message(err: Any, raw: Any, what: str, *, id_field: dict[str, str] | None = None) -> str:
    """One line per pydantic error: ``nodes[3] (node_id '1_2_3'): field 'ctx_idx': Input should be ...``.

    ``id_field`` maps a list name to the field that identifies its items (so the message names the node as well as
    the index)."""
    lines = []
    for e in err.errors()[:10]:
        loc = list(e["loc"])
        while len(loc) > 1 and loc[-1] in ("str", "int", "float", "bool", "none", "list", "dict"):
            loc.pop()  # pydantic names the union member it tried; the field is what the user needs
        where, item = "", raw
        i = 0
        while i < len(loc):
            part = loc[i]
            if isinstance(part, int) and where:
                where += f"[{part}]"
                try:
                    item = item[part]
                except (IndexError, KeyError, TypeError):
                    item = None
                name = (id_field or {}).get(str(loc[i - 1]))
                if name and isinstance(item, dict) and name in item:
                    where += f" ({name} {item[name]!r})"
            elif i < len(loc) - 1 or isinstance(part, int):
                where += ("." if where else "") + str(part)
                item = item.get(part) if isinstance(item, dict) else None
            else:
                break
            i += 1
        field = loc[-1] if loc and not isinstance(loc[-1], int) else None
        lines.append(f"{what} {where or 'top level'}: " + (f"field {field!r}: " if field is not None else "") + e["msg"])
    more = len(err.errors()) - len(lines)
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def native_row(rec: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A node row (a dict of :data:`~circuitdb.graph.NODE_COLUMNS`) without its "none" values: what a file carries
    so that circuitdb reads the node back exactly."""
    from circuitdb.graph import FLOAT_COLUMNS, INT_COLUMNS, NODE_COLUMNS

    out: dict[str, Any] = {}
    for c in NODE_COLUMNS:
        v = rec[c]
        if c in skip:
            continue
        if c in INT_COLUMNS:
            if int(v) != -1:
                out[c] = int(v)
        elif c in FLOAT_COLUMNS:
            if not math.isnan(v):
                out[c] = float(v)
        elif v != "":
            out[c] = str(v)
    return out


def finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def graph_influence(graph: Any) -> np.ndarray:
    """circuit-tracer's node influence ``w (Â + Â² + …)`` over the whole graph (:mod:`circuitdb.pruning`'s one
    implementation), logit weights from the logits' ``probability``."""
    from circuitdb.pruning import influence, logit_weights, normalised_weights

    return influence(graph, normalised_weights(graph, np.ones(graph.n_edges, bool)), logit_weights(graph))


def cumulative_scores(influence: np.ndarray) -> np.ndarray:
    """circuit-tracer's cumulative score: a node's share of total influence counting every node at least as
    influential (the most influential node gets its own share, the least 1.0)."""
    from circuitdb.pruning import _cumulative

    return _cumulative(np.nan_to_num(np.asarray(influence, dtype=np.float64), nan=0.0))[1]
