"""The headless-Chromium helper itself: a page's script runs, values come back, the screenshot shows what was drawn."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import chromium, open_page  # noqa: E402,F401

PAGE = """<!doctype html><html><body style="margin:0;background:#fff">
<canvas id="c" width="200" height="100"></canvas>
<script>
const c = document.getElementById('c').getContext('2d');
c.fillStyle = 'rgb(255,0,0)'; c.fillRect(0, 0, 200, 100);
window.report = {answer: 6 * 7, words: ['a', 'b'], online: typeof fetch};
</script></body></html>"""


def test_page_values_and_screenshot(chromium, tmp_path):
    page = tmp_path / "p.html"
    page.write_text(PAGE)
    res = open_page(page, {"r": "window.report", "title": "document.title"}, screenshot=tmp_path / "s.png",
                    wait_for="window.report !== undefined", viewport=(300, 200))
    assert res.values["r"] == {"answer": 42, "words": ["a", "b"], "online": "function"}
    assert res.errors == []
    png = res.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    assert (w, h) == (300, 200)
    import matplotlib.image as mpimg

    img = mpimg.imread(res.screenshot)
    assert img[50, 100, :3].tolist() == [1.0, 0.0, 0.0]  # inside the red canvas
    assert img[150, 250, :3].tolist() == [1.0, 1.0, 1.0]  # the white page outside it


def test_page_errors_are_reported(chromium, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<script>window.x = 1; undefinedFunction();</script>")
    res = open_page(page, {"x": "window.x"})
    assert res.values["x"] == 1
    assert len(res.errors) == 1 and "undefinedFunction" in res.errors[0]
