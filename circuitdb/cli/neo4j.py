"""``circuitdb neo4j style``: the Neo4j Browser style.

``style`` prints the Browser style (GraSS) with the one Browser command that applies it. Nothing here imports torch.
"""

from __future__ import annotations

from importlib.resources import files

import typer

neo4j_app = typer.Typer(help="Neo4j: the Browser style.", no_args_is_help=True)

STYLE_FILE = "circuitdb.grass"


def style_text() -> str:
    """The shipped GraSS style: nodes coloured by kind with their ``name`` caption, ATTRIBUTES captioned by weight."""
    return files("circuitdb.neo4j_browser").joinpath(STYLE_FILE).read_text(encoding="utf-8")


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


def register(app: typer.Typer) -> None:
    app.add_typer(neo4j_app, name="neo4j")
