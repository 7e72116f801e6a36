"""``circuitdb label GRAPH_ID FILE``: attach feature descriptions (CSV, Neuronpedia graph or explanations JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from circuitdb.cli.common import STORE_OPTION, open_cli_store


def label_cmd(graph_id: str = typer.Argument(..., metavar="GRAPH_ID", help="The stored graph to label."),
              path: Path = typer.Argument(..., help="CSV (dictionary, index, label), a Neuronpedia graph JSON, or a "
                                                   "Neuronpedia explanations export."),
              dictionary: Optional[str] = typer.Option(None, "--dictionary", "-d",
                                                       help="The dictionary id the file's indices belong to (renames "
                                                            "the file's own)."),
              store: Optional[str] = STORE_OPTION) -> None:
    """Attach feature descriptions to a stored graph's features by (dictionary, index)."""
    from rich.console import Console

    from circuitdb.formats.labels import label_stored_graph, read_labels

    labels = read_labels(path, dictionary=dictionary)
    with open_cli_store(store) as s:
        n, unused = label_stored_graph(s, graph_id, labels)
    Console().print(f"labelled {n:,} feature node(s) of {graph_id} from {len(labels):,} description(s)"
                    + (f"; {unused:,} matched no feature of the graph" if unused else ""), markup=False,
                    highlight=False)


def register(app: typer.Typer) -> None:
    app.command("label")(label_cmd)
