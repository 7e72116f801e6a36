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
    rich_markup_mode=None,  # help text is plain: "[default: ...]" and user strings are never parsed as markup
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
    "circuitdb.cli.neo4j",       # neo4j init|gc|style|guide
    "circuitdb.cli.steer",       # steer, lens (science engineer)
)


class _OncePerMessage(logging.Filter):
    """Third-party warnings (a library's logger, or ``warnings.warn`` captured into logging) are shown once per
    distinct message, however many times the library repeats them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("circuitdb") or record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, markup=False)
    handler.addFilter(_OncePerMessage())
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_circuitdb_cli", False)]:
        root.removeHandler(h)  # one CLI handler, however often the app runs in this process
    handler._circuitdb_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)  # warnings.warn → the "py.warnings" logger: printed once, by this handler
    for name in ("transformers", "transformer_lens", "sae_lens", "datasets"):
        lib = logging.getLogger(name)
        for h in list(lib.handlers):  # libraries that print through their own handler as well as the root's
            lib.removeHandler(h)
        lib.propagate = True


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
