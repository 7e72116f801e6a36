"""``circuitdb neo4j init|gc|style|guide``: the Neo4j store's schema, garbage collection and Browser style.

``init`` creates the constraints and indexes (a write does too; a read-only user never needs to); ``gc`` deletes
graph versions nobody reads (superseded ones, and incomplete ones older than the lease: a writer killed mid-write);
``style`` prints the Browser style (GraSS) with the one Browser command that applies it; ``guide`` serves a Browser
guide through the named queries. Nothing here imports torch.
"""

from __future__ import annotations

import http.server
from importlib.resources import files

import typer

from circuitdb.cli.common import STORE_OPTION

neo4j_app = typer.Typer(help="Neo4j: schema, garbage collection, Browser style and guide.", no_args_is_help=True)

STYLE_FILE = "circuitdb.grass"
GUIDE_FILE = "guide.html"


def style_text() -> str:
    """The shipped GraSS style: nodes coloured by kind with their ``name`` caption, ATTRIBUTES captioned by weight."""
    return files("circuitdb.neo4j_browser").joinpath(STYLE_FILE).read_text(encoding="utf-8")


def _neo4j_store(uri: str | None):
    from circuitdb.errors import ConfigError
    from circuitdb.store.base import open_store
    from circuitdb.store.neo4j import Neo4jStore

    store = open_store(uri)
    if not isinstance(store, Neo4jStore):
        store.close()
        raise ConfigError(f"store {uri!r} is not a Neo4j store; pass --store bolt://HOST:7687 or neo4j://HOST:7687")
    return store


@neo4j_app.command("init")
def init_cmd(store: str = STORE_OPTION) -> None:
    """Create circuitdb's constraints and indexes in the Neo4j database (idempotent)."""
    with _neo4j_store(store) as s:
        s.init()
        typer.echo(f"schema ready in {s.uri}")


@neo4j_app.command("gc")
def gc_cmd(store: str = STORE_OPTION,
           lease: float = typer.Option(3600.0, "--lease", min=0.0,
                                       help="Seconds an incomplete version may still be another writer's.")) -> None:
    """Delete superseded graph versions and incomplete ones older than --lease seconds."""
    with _neo4j_store(store) as s:
        n = s.gc(lease_seconds=lease)
        typer.echo(f"collected {n} graph version(s) in {s.uri}")


@neo4j_app.command("style")
def style_cmd(raw: bool = typer.Option(False, "--raw", help="Print only the GraSS text (for a .grass file).")) -> None:
    """Print the Browser style. Paste the printed ``:style`` command into the Neo4j Browser's editor and run it
    (or drag a saved .grass file onto the Browser)."""
    text = style_text()
    if raw:
        typer.echo(text, nl=False)
        return
    typer.echo("// paste into the Neo4j Browser editor and run (Ctrl+Enter); `:style reset` undoes it")
    typer.echo(":style " + text, nl=False)


class GuideHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with CORS: the Browser fetches the guide from its own origin."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # the CORS preflight of the Browser's fetch
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@neo4j_app.command("guide")
def guide_cmd(port: int = typer.Option(8001, "--port", min=1, max=65535, help="Local port to serve the guide on.")
              ) -> None:
    """Serve the circuitdb Browser guide on localhost and print the ``:play`` command that opens it (the Browser
    loads guides from localhost by default). Ctrl-C stops it."""
    import functools

    folder = str(files("circuitdb.neo4j_browser"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(GuideHandler, directory=folder))
    typer.echo(f":play http://localhost:{server.server_address[1]}/{GUIDE_FILE}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.add_typer(neo4j_app, name="neo4j")
