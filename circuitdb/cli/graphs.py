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

    table = Table(title=f"{len(df)} graph(s) in {s.uri}")
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    for col in cols:
        table.add_column(col, justify="right" if col in ("n_nodes", "n_edges") else "left",
                         no_wrap=col in ("id", "n_nodes", "n_edges", "created_at"))
    for rec in df[cols].itertuples(index=False):
        table.add_row(*("" if v is None else str(v) for v in rec))
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
    meta = Table(title=f"graph {graph.id}: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges", show_header=False)
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
            edges.add_row(e["source"], e["target"], e["channel"], f"{e['weight']:+.4g}")
        con.print(edges)


@graphs_app.command("delete")
def delete_cmd(graph_id: str = typer.Argument(..., metavar="ID", help="Graph id to delete."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Delete a graph, its nodes, edges and saved circuits."""
    from circuitdb.errors import GraphNotFoundError

    with open_cli_store(store) as s:
        if not s.delete_graph(graph_id):
            raise GraphNotFoundError(f"no graph {graph_id!r} in {s.uri}; nothing deleted")
    _console().print(f"deleted graph [bold]{graph_id}[/bold]")


def import_cmd(path: Path = typer.Argument(..., help="A graph directory written by `circuitdb export` / "
                                                     "AttributionGraph.save, or a file of another tool (--format)."),
               graph_id: Optional[str] = typer.Option(None, "--id", help="Store under this id [default: the graph's]."),
               fmt: Optional[str] = typer.Option(None, "--format", help="native, neuronpedia, circuit-tracer, eap-ig, "
                                                 "graphml, gexf [default: from the file]."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Import a graph into the store (replacing a graph of the same id); EAP-IG files also store their circuit."""
    from circuitdb.formats import import_file

    with open_cli_store(store) as s:
        gid, circuit = import_file(s, path, fmt, graph_id=graph_id)
        graph = s.read_graph(gid)
        where = s.uri
    extra = f" and circuit [bold]{circuit}[/bold]" if circuit else ""
    _console().print(f"imported [bold]{gid}[/bold] ({graph.n_nodes:,} nodes, {graph.n_edges:,} edges){extra} into "
                     f"{where}")


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
    with open_cli_store(store) as s:
        graph = s.read_graph(graph_id)
    write_file(graph, path, fmt)
    _console().print(f"exported [bold]{graph.id}[/bold] ({graph.n_nodes:,} nodes, {graph.n_edges:,} edges) to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(graphs_app, name="graphs")
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
