"""``circuitdb graphs list|show|delete``, ``circuitdb import PATH``, ``circuitdb export ID PATH``.

Heavy imports (pandas, the store drivers) happen inside the commands; nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from circuitdb.cli.common import STORE_OPTION, open_cli_store

graphs_app = typer.Typer(help="List, show and delete the graphs in a store.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
#: columns of the `graphs list` table (--json prints every column, prompt included)
TABLE_COLUMNS = ("id", "model", "granularity", "method", "n_nodes", "n_edges", "created_at")


def _console():
    from rich.console import Console

    return Console()


#: longest value printed whole in a table or message; longer ones are elided (a 100k-character id hung rich)
MAX_SHOWN = 120


def _text(value: Any):
    """A user string as a rich Text: never read as markup (``[/x]`` prints as is), elided past MAX_SHOWN."""
    from rich.text import Text

    s = "" if value is None else str(value)
    if len(s) > MAX_SHOWN:
        s = f"{s[:MAX_SHOWN // 2]}…{s[-20:]} ({len(s):,} chars)"
    return Text(s)


def _say(*parts: Any) -> None:
    """Print a message whose parts are plain strings (ours, may hold markup) or user values (wrapped by _text)."""
    from rich.text import Text

    _console().print(Text.assemble(*(p if isinstance(p, Text) else Text.from_markup(p) for p in parts)))


def _print_json(obj: Any) -> None:
    from circuitdb.plain import plain_value

    typer.echo(json.dumps(plain_value(obj, nan_to_none=True), indent=1, sort_keys=False, default=str))


def _records(df) -> list[dict[str, Any]]:
    from circuitdb.plain import plain_value

    return [{k: plain_value(v, nan_to_none=True) for k, v in rec.items()} for rec in df.to_dict("records")]


@graphs_app.command("list")
def list_cmd(store: Optional[str] = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
    """One line per stored graph."""
    with open_cli_store(store) as s:
        df = s.list_graphs()
    if as_json:
        _print_json(_records(df))
        return
    from rich.table import Table

    table = Table(title=_text(f"{len(df)} graph(s) in {s.uri}"))
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    for col in cols:
        table.add_column(col, justify="right" if col in ("n_nodes", "n_edges") else "left",
                         no_wrap=col in ("id", "n_nodes", "n_edges", "created_at"))
    for rec in df[cols].itertuples(index=False):
        table.add_row(*(_text(v) for v in rec))
    _console().print(table)


def _summary(graph, top: int) -> dict[str, Any]:
    import numpy as np

    kinds = graph.nodes["kind"].value_counts().sort_index()
    order = np.argsort(-graph.abs_weight, kind="stable")[:top]
    keys = graph.keys
    from circuitdb.graph import CHANNELS

    return {
        "id": graph.id, "n_nodes": graph.n_nodes, "n_edges": graph.n_edges,
        "nodes_by_kind": {str(k): int(v) for k, v in kinds.items()},
        "meta": graph.meta,
        "top_edges": [{"source": str(keys[graph.src[j]]), "target": str(keys[graph.dst[j]]),
                       "weight": float(graph.weight[j]), "channel": CHANNELS[graph.channel[j]]} for j in order],
    }


@graphs_app.command("show")
def show_cmd(graph_id: str = typer.Argument(..., metavar="ID", help="Graph id (see `circuitdb graphs list`)."),
             store: Optional[str] = STORE_OPTION, as_json: bool = JSON_OPTION,
             top: int = typer.Option(10, "--top", min=0, help="How many of the strongest edges to show.")) -> None:
    """Metadata, node counts by kind and the strongest edges of one graph."""
    with open_cli_store(store) as s:
        graph = s.read_graph(graph_id)
    info = _summary(graph, top)
    if as_json:
        _print_json(info)
        return
    from rich.table import Table

    from circuitdb.plain import plain_value

    con = _console()
    meta = Table(title=_text(f"graph {graph.id}: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges"),
                 show_header=False)
    meta.add_column("field", style="bold")
    meta.add_column("value", overflow="fold")
    for k, v in sorted(info["meta"].items()):
        meta.add_row(str(k), v if isinstance(v, str) else json.dumps(plain_value(v, nan_to_none=True), default=str))
    meta.add_row("nodes by kind", ", ".join(f"{k} {n}" for k, n in info["nodes_by_kind"].items()))
    con.print(meta)
    if info["top_edges"]:
        edges = Table(title=f"top {len(info['top_edges'])} edges by |weight|")
        for col in ("source", "target", "channel", "weight"):
            edges.add_column(col, justify="right" if col == "weight" else "left")
        for e in info["top_edges"]:
            edges.add_row(_text(e["source"]), _text(e["target"]), _text(e["channel"]), f"{e['weight']:+.4g}")
        con.print(edges)


@graphs_app.command("delete")
def delete_cmd(graph_id: str = typer.Argument(..., metavar="ID", help="Graph id to delete."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Delete a graph, its nodes, edges and saved circuits."""
    from circuitdb.errors import GraphNotFoundError

    with open_cli_store(store) as s:
        if not s.delete_graph(graph_id):
            raise GraphNotFoundError(f"no graph {graph_id!r} in {s.uri}; nothing deleted")
    _say("deleted graph ", _text(graph_id))


def import_cmd(path: Path = typer.Argument(..., help="A graph directory written by `circuitdb export` / "
                                                     "AttributionGraph.save, or a file of another tool (--format)."),
               graph_id: Optional[str] = typer.Option(None, "--id", help="Store under this id [default: the graph's]."),
               fmt: Optional[str] = typer.Option(None, "--format", help="native, neuronpedia, circuit-tracer, eap-ig, "
                                                 "graphml, gexf [default: from the file]."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Import a graph into the store (replacing a graph of the same id); EAP-IG files also store their circuit."""
    from circuitdb.formats import import_file

    circuits = _load_circuits(path) if path.is_dir() else []
    if circuits:  # refuse before anything is written when a carried circuit names a node the graph lacks
        from circuitdb.errors import ConfigError
        from circuitdb.graph import AttributionGraph

        keys = set(AttributionGraph.load(path).keys.tolist())
        for rec in circuits:
            lost = sorted(set(rec["node_keys"]) - keys)
            if lost:
                raise ConfigError(f"{path / CIRCUITS_FILE}: circuit {rec['name']!r} names node(s) {lost[:5]} that "
                                  "the graph does not have")
    with open_cli_store(store) as s:
        gid, circuit = import_file(s, path, fmt, graph_id=graph_id)
        for rec in circuits:  # the saved circuits an export carried (a rewrite keeps the store's own, re-linked)
            s.save_circuit(rec["name"], gid, rec["node_keys"], method=rec["method"], params=rec["params"],
                           scores=rec["scores"], edges=rec["edges"])
        graph = s.read_graph(gid)
        where = s.uri
    extra = [" and circuit ", _text(circuit)] if circuit else []
    if circuits:
        extra.append(f" and {len(circuits)} saved circuit(s)")
    _say("imported ", _text(gid), f" ({graph.n_nodes:,} nodes, {graph.n_edges:,} edges)", *extra, " into ",
         _text(where))


CIRCUITS_FILE = "circuits.json"


def _load_circuits(path: Path) -> list[dict[str, Any]]:
    """The saved circuits an export wrote next to a native graph (``circuits.json``; none if absent)."""
    from circuitdb.errors import ConfigError
    from circuitdb.store.rows import circuit_edges_from_json

    f = path / CIRCUITS_FILE
    if not f.exists():
        return []
    try:
        recs = json.loads(f.read_text(encoding="utf-8"))
        return [{"name": str(r["name"]), "node_keys": [str(k) for k in r["node_keys"]], "method": str(r["method"]),
                 "params": dict(r["params"]), "scores": dict(r["scores"]),
                 "edges": circuit_edges_from_json(r.get("edges"))} for r in recs]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{f} is not a circuitdb circuits file: {e}") from e


def export_cmd(graph_id: str = typer.Argument(..., metavar="ID", help="Graph id to export."),
               path: Path = typer.Argument(..., help="Directory to write (native format), or a file (--format)."),
               force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty directory."),
               fmt: Optional[str] = typer.Option(None, "--format", help="native, neuronpedia, eap-ig, graphml, gexf "
                                                 "[default: from the suffix; none = native]."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Export a stored graph: native (a directory: meta.json, nodes.parquet, edges.parquet) or another tool's file."""
    from circuitdb.errors import ConfigError
    from circuitdb.formats import write_file

    native = (fmt or "native") == "native" and not path.suffix
    if native and path.exists() and (not path.is_dir() or (any(path.iterdir()) and not force)):
        raise ConfigError(f"{path} exists and is not an empty directory; pass --force to overwrite")
    if not native and path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite")
    from circuitdb.store.rows import circuit_edges_json

    with open_cli_store(store) as s:
        graph = s.read_graph(graph_id)
        circuits = [s.read_circuit_record(n, graph_id) for n in s.list_circuits(graph_id)["name"].tolist()]
    write_file(graph, path, fmt)
    if native:  # the graph's saved circuits travel with it (import reads them back)
        (path / CIRCUITS_FILE).write_text(json.dumps([
            {"name": c["name"], "node_keys": c["node_keys"], "method": c["method"], "params": c["params"],
             "scores": c["scores"], "edges": circuit_edges_json(c["edges"]) or None} for c in circuits],
            default=str), encoding="utf-8")
    _say("exported ", _text(graph.id), f" ({graph.n_nodes:,} nodes, {graph.n_edges:,} edges"
         + (f", {len(circuits)} circuit(s)" if native else "") + ") to ", _text(path))


def register(app: typer.Typer) -> None:
    app.add_typer(graphs_app, name="graphs")
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
