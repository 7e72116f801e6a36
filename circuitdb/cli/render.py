"""``circuitdb render GRAPH_OR_CIRCUIT -o out.png|out.svg|out.html``: a picture or an interactive offline page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from circuitdb.cli.common import STORE_OPTION, open_cli_store


def resolve_target(target: str, store: Optional[str], graph_id: Optional[str] = None) -> Any:
    """A graph file (any import format), else a stored graph id, else a saved circuit's name."""
    p = Path(target)
    if p.exists():
        from circuitdb.formats import read_file

        graph, circuit = read_file(p)
        return circuit if circuit is not None and circuit.n_edges < graph.n_edges else graph
    from circuitdb.circuits.circuit import Circuit
    from circuitdb.errors import ConfigError

    with open_cli_store(store) as s:
        if graph_id is None and s.has_graph(target):
            return s.read_graph(target)
        try:
            return Circuit.load(s, target, graph_id)
        except ConfigError as e:
            raise ConfigError(f"{target!r} is neither a file, nor a graph id in {s.uri}, nor a saved circuit ({e})") \
                from None


def render_cmd(target: str = typer.Argument(..., metavar="GRAPH_OR_CIRCUIT",
                                            help="A graph file, a stored graph id, or a saved circuit's name."),
               output: Path = typer.Option(..., "--output", "-o", help="out.png, out.svg or out.html"),
               graph_id: Optional[str] = typer.Option(None, "--graph", help="The circuit's graph, when circuits "
                                                      "of several graphs share the name."),
               max_edges: Optional[int] = typer.Option(None, "--max-edges", help="Draw only the strongest edges "
                                                       "[default: 2000 in pictures, 5000 in pages]."),
               store: Optional[str] = STORE_OPTION) -> None:
    """Draw a graph or circuit: PNG/SVG laid out by layer (and position), or a standalone interactive HTML page."""
    from rich.console import Console

    from circuitdb.render import render

    obj = resolve_target(target, store, graph_id)
    kw = {"max_edges": max_edges} if max_edges else {}
    path = render(obj, output, **kw)
    g = obj.graph if hasattr(obj, "source_graph_id") else obj
    Console().print(f"wrote {path} ({g.n_nodes:,} nodes, {g.n_edges:,} edges; {path.stat().st_size:,} bytes)",
                    markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("render")(render_cmd)
