"""Files for ``neo4j-admin database import``: every current graph of a store as CSV with typed headers.

Layout of ``DIR`` (one header file + one data file per table; headers follow neo4j-admin's import format):
``graph_header.csv``/``graph.csv`` (``:ID(Graph)`` = sid), ``node_*`` (``:ID(Node)`` = uid, ``:LABEL`` = ``Node``
plus the kind label the Neo4j store gives it), ``unit_*`` (``:ID(Unit)``), ``attributes_*`` and ``instance_of_*``
(``:START_ID``/``:END_ID``). Rows come from the store's own row layer (:mod:`circuitdb.store.rows`), so the imported
database has the schema the Neo4j store writes; absent values are empty cells (NULL). Units shared by graphs are
written once. Graphs are read one at a time (memory: one graph).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.store.base import GraphStore

log = logging.getLogger(__name__)

_INT = {"idx", "layer", "head", "pos", "feature", "token", "n_nodes", "n_edges", "seq", "schema_version", "step"}
_FLOAT = {"activation", "influence", "direct_logit", "prev_token_score", "induction_score", "duplicate_token_score",
          "probability", "weight", "abs_weight"}


def _header(cols: tuple[str, ...], id_col: str, space: str) -> list[str]:
    out = []
    for c in cols:
        if c == id_col:
            out.append(f"{c}:ID({space})")
        elif c in _INT:
            out.append(f"{c}:long")
        elif c in _FLOAT:
            out.append(f"{c}:double")
        elif c == "current":
            out.append("current:boolean")
        else:
            out.append(c)
    return out


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


class _Table:
    def __init__(self, folder: Path, name: str, header: list[str]) -> None:
        with open(folder / f"{name}_header.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(header)
        self.f = open(folder / f"{name}.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.w = csv.writer(self.f)
        self.rows = 0

    def write(self, rows: list[list[Any]]) -> None:
        self.w.writerows([[_cell(v) for v in r] for r in rows])
        self.rows += len(rows)


def export_neo4j_import(store: "GraphStore", folder: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Write every current graph of ``store`` to ``folder`` (see the module doc); returns rows per table."""
    from circuitdb.store import rows as rw
    from circuitdb.store.cypher import NEO4J_KIND_LABELS

    out = Path(folder)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{str(out)!r} is not empty; pass overwrite=True (--force) to replace its files")
    out.mkdir(parents=True, exist_ok=True)
    node_cols = rw.NODE_PROPS
    t = {
        "graph": _Table(out, "graph", _header(rw.GRAPH_PROPS, "sid", "Graph")),
        "node": _Table(out, "node", _header(node_cols, "uid", "Node") + [":LABEL"]),
        "unit": _Table(out, "unit", _header(rw.UNIT_PROPS, "uid", "Unit")),
        "attributes": _Table(out, "attributes", [":START_ID(Node)", ":END_ID(Node)", "weight:double",
                                                 "abs_weight:double", "channel"]),
        "instance_of": _Table(out, "instance_of", [":START_ID(Node)", ":END_ID(Unit)"]),
    }
    seen_units: set[str] = set()
    try:
        for gid in store.list_graphs()["id"].tolist():
            g = store.read_graph(gid)
            sid = f"{gid}@import"
            props = rw.graph_props(g, gid, sid=sid, current=True)
            t["graph"].write([[props[c] for c in rw.GRAPH_PROPS]])
            nodes = rw.node_table(g, gid, sid=sid).to_pylist()
            t["node"].write([[r[c] for c in node_cols] + [";".join(["Node", NEO4J_KIND_LABELS.get(r["kind"], "")])
                                                          .rstrip(";")] for r in nodes])
            e = rw.edge_table(g, gid, rw.node_uids(g, sid))
            t["attributes"].write([list(r.values()) for r in e.to_pylist()])
            units = rw.unit_frame(g)
            fresh = units[~units["uid"].isin(seen_units)]
            seen_units.update(fresh["uid"].tolist())
            t["unit"].write([[r[c] for c in rw.UNIT_PROPS] for r in fresh.to_dict("records")])
            inst = rw.instance_rows(g, gid, rw.node_uids(g, sid))
            t["instance_of"].write(inst[["from", "to"]].values.tolist())
    finally:
        for tab in t.values():
            tab.f.close()
    counts = {name: tab.rows for name, tab in t.items()}
    log.info("wrote neo4j-admin import files to %s: %s", out, counts)
    return counts
