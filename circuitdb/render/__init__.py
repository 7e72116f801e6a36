"""Pictures of graphs and circuits: PNG/SVG (matplotlib) and a standalone interactive HTML page (Cytoscape.js,
bundled). Importing this package registers the notebook view behind ``AttributionGraph._repr_html_`` and
``Circuit._repr_html_`` (the ``circuitdb`` facade imports it). Nothing heavy is imported here.

    from circuitdb.render import render
    render(circuit, "circuit.png")      # or .svg, .html
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuitdb.errors import ConfigError, one_of
from circuitdb.graph import HTML_VIEWS

SUFFIXES = (".png", ".svg", ".html")


def _notebook(obj: Any) -> str:
    from circuitdb.render.html import notebook_html

    return notebook_html(obj)


HTML_VIEWS.setdefault("notebook", _notebook)


def render(obj: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write ``obj`` (an AttributionGraph or a Circuit) as a picture or a page, by the suffix of ``path``."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".html":
        from circuitdb.render.html import write_html

        return write_html(obj, path, **kwargs)
    if suf in (".png", ".svg"):
        from circuitdb.render.static import render_static

        return render_static(obj, path, **kwargs)
    raise ConfigError(one_of(path.suffix or path.name, SUFFIXES, "output suffix"))


__all__ = ["SUFFIXES", "render"]
