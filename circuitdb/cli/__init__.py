"""The ``circuitdb`` command line. Sub-command groups live in sibling modules and are registered here.

Only this package configures output (rich console, progress bars, logging level). Importing it must not import
torch: sub-command modules import heavy dependencies inside their command functions.
"""

from __future__ import annotations

import importlib
import logging

import typer

from circuitdb.errors import CircuitDBError

app = typer.Typer(
    name="circuitdb",
    help="Compute, store and query attribution graphs (circuits) of transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute): a module exposing `register(app)`; each owns one group of commands.
_COMMAND_MODULES = (
    "circuitdb.cli.graphs",      # graphs list|show|delete, import, export
    "circuitdb.cli.query",       # query, prune, eval
    "circuitdb.cli.attribute",   # attribute
    "circuitdb.cli.demo",        # demo
    "circuitdb.cli.ingest",      # ingest JOB.toml
    "circuitdb.cli.render",      # render (formats engineer)
    "circuitdb.cli.formats",     # label (formats engineer)
    "circuitdb.cli.neo4j",       # neo4j style
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)]
    )


for _mod in _COMMAND_MODULES:
    try:
        importlib.import_module(_mod).register(app)
    except ModuleNotFoundError as _e:  # a command group not written yet
        if _e.name != _mod:
            raise


def main() -> None:
    """Entry point: run the app, turning circuitdb errors into one red line and exit code 2."""
    try:
        app()
    except CircuitDBError as e:
        from rich.console import Console

        from rich.text import Text

        msg = str(e)
        if len(msg) > 2000:  # a 100k-character id inside a message: elide, never hang the terminal
            msg = f"{msg[:1000]} … ({len(msg):,} characters) … {msg[-300:]}"
        Console(stderr=True).print(Text.assemble(("error:", "red"), " ", msg))  # never read as markup
        raise SystemExit(2) from None
