"""Pictures and pages: PNG size and content, SVG, the HTML view in headless Chromium, the CLI, notebook views."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdb.render import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "formats"))
from browser import chromium, open_page  # noqa: E402,F401
from fixtures import component_graph, feature_graph  # noqa: E402


def _png_size(path: Path) -> tuple[int, int]:
    b = path.read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", b[16:24])


@pytest.mark.parametrize("make", [feature_graph, component_graph])
def test_png_has_the_size_and_is_not_blank(make, tmp_path):
    import matplotlib.image as mpimg

    p = render(make(), tmp_path / "g.png", size=(900, 600))
    assert _png_size(p) == (900, 600)
    img = mpimg.imread(p)[..., :3]
    ink = (img.sum(-1) < 2.9).mean()  # share of non-white pixels
    assert 0.02 < ink < 0.6
    blue = ((img[..., 2] > 0.55) & (img[..., 0] < 0.45)).sum()  # positive edges drawn in blue
    red = ((img[..., 0] > 0.65) & (img[..., 1] < 0.45) & (img[..., 2] < 0.45)).sum()  # negative in red
    assert blue > 200 and red > 200


def test_svg_names_the_tokens_and_feature_labels(tmp_path):
    p = render(feature_graph(), tmp_path / "g.svg")
    text = p.read_text()
    assert text.startswith("<?xml") and "<svg" in text
    # matplotlib draws text as glyph paths; the labels live in the <!-- comments --> it writes per text element
    assert "tok2" in text and "the word" in text and "Paris" in text


def test_unknown_suffix():
    from circuitdb.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\.png"):
        render(feature_graph(), "g.pdf")


@pytest.mark.parametrize("make", [feature_graph, component_graph])
def test_html_page_reports_nodes_and_edges(chromium, make, tmp_path):
    g = make()
    page = render(g, tmp_path / "g.html")
    assert "<script src=" not in page.read_text() and "http" not in page.read_text().split("<script>")[0]
    res = open_page(page, {"v": "window.circuitdb", "shown": "document.getElementById('counts').textContent"},
                    wait_for="window.circuitdb && window.circuitdb.ready", screenshot=tmp_path / "shot.png")
    assert res.errors == []
    assert res.values["v"]["nodes"] == g.n_nodes and res.values["v"]["edges"] == g.n_edges
    assert f"{g.n_edges} of {g.n_edges} edges shown" in res.values["shown"]
    import matplotlib.image as mpimg

    shot = mpimg.imread(res.screenshot)[..., :3]
    assert (shot.sum(-1) < 2.9).mean() > 0.02  # something was drawn


def test_html_caps_edges_and_circuits_render(chromium, tmp_path):
    from circuitdb.circuits.circuit import circuit_from_nodes

    g = feature_graph()
    res = open_page(render(g, tmp_path / "cap.html", max_edges=50), {"v": "window.circuitdb"},
                    wait_for="window.circuitdb && window.circuitdb.ready")
    assert res.values["v"]["edges"] == 50 and res.values["v"]["graph_edges"] == g.n_edges
    c = circuit_from_nodes(g, g.nodes.loc[g.nodes["kind"] == "feature", "key"].tolist()[:3])
    res = open_page(render(c, tmp_path / "c.html"), {"v": "window.circuitdb"},
                    wait_for="window.circuitdb && window.circuitdb.ready")
    assert (res.values["v"]["nodes"], res.values["v"]["edges"]) == (c.n_nodes, c.n_edges)
    assert res.values["v"]["title"].startswith("circuit")


def test_notebook_views():
    import circuitdb  # the facade registers the views
    from circuitdb.circuits.circuit import Circuit

    g = feature_graph()
    assert circuitdb.AttributionGraph is type(g)
    html = g._repr_html_()
    assert html.startswith("<iframe") and "srcdoc=" in html and "cytoscape" in html
    c = Circuit(g, source_graph_id=g.id, method="none")
    assert c._repr_html_().startswith("<iframe")


def test_cli_render_graph_circuit_and_file(tmp_path):
    from circuitdb.circuits.circuit import circuit_from_nodes
    from circuitdb.cli import app
    from circuitdb.formats import write_file
    from circuitdb.store.embedded import EmbeddedStore

    g = feature_graph()
    with EmbeddedStore(tmp_path / "db") as s:
        s.write_graph(g)
        circuit_from_nodes(g, g.nodes.loc[g.nodes["kind"] == "feature", "key"].tolist()[:3]).save(s, "small")
    store = f"embedded:{tmp_path / 'db'}"
    runner = CliRunner()
    for target, out in (("g-feat", "g.png"), ("small", "c.svg"), (str(write_file(g, tmp_path / "g.json")), "f.html")):
        r = runner.invoke(app, ["render", target, "-o", str(tmp_path / out), "--store", store])
        assert r.exit_code == 0, r.output
        assert (tmp_path / out).stat().st_size > 1000 and "wrote" in r.output
    r = runner.invoke(app, ["render", "nope", "-o", str(tmp_path / "x.png"), "--store", store])
    assert r.exit_code != 0
