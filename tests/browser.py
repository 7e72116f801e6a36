"""Headless-Chromium helper for tests: open a local HTML file (or URL), evaluate JavaScript in the page, screenshot it.

Uses Debian's ``chromium`` (``make chromium`` installs it; ``/usr/bin/chromium``, or ``$CIRCUITDB_CHROMIUM``) driven by
Python ``playwright`` with ``executable_path`` — never ``playwright install`` (no browser downloads). Each call starts
a fresh browser with a fresh ``--user-data-dir`` and the offline flags below, so pages can't reach the network or
remember state between tests.

Tests call :func:`require_chromium` (or use the ``chromium`` fixture): it skips where Chromium or playwright is absent,
except under ``CI=true``, where a missing browser is a failure (CI must run the check).

    from browser import open_page
    res = open_page(tmp_path / "view.html", {"n": "window.circuitdb.nodes"}, screenshot=tmp_path / "shot.png")
    assert res.values["n"] == 7 and not res.errors
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CIRCUITDB_CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_missing() -> str | None:
    """Why the browser check can't run here (None when it can)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is absent (run `make chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python package playwright is absent (pip install -e '.[test]')"
    return None


def require_chromium() -> None:
    """Skip the calling test where Chromium can't run; fail instead under ``CI=true``."""
    why = chromium_missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but headless Chromium can't run: {why}")
    pytest.skip(why)


@pytest.fixture
def chromium() -> Path:
    """The Chromium executable (skips/fails like :func:`require_chromium`)."""
    require_chromium()
    return CHROMIUM


@dataclass(frozen=True)
class PageResult:
    """What a page showed: evaluated ``values`` by name, console lines, uncaught page errors, the screenshot path."""

    values: dict[str, Any]
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def _url(target: str | Path) -> str:
    s = str(target)
    if "://" in s or s.startswith(("about:", "data:")):
        return s
    return Path(s).resolve().as_uri()


def _launch(p, user_data: str, viewport: tuple[int, int], timeout_ms: float):  # noqa: ANN001, ANN202
    """Chromium with a fresh profile; one retry when the launch itself times out (a cold start on a loaded machine
    once took over 30 s in CI; a page that fails to load or draw is never retried)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        try:
            return p.chromium.launch_persistent_context(
                user_data, executable_path=str(CHROMIUM), headless=True, args=list(FLAGS),
                viewport={"width": viewport[0], "height": viewport[1]}, timeout=timeout_ms * attempt,
            )
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            shutil.rmtree(user_data, ignore_errors=True)
            Path(user_data).mkdir()


def open_page(target: str | Path, expressions: dict[str, str] | None = None, *, screenshot: str | Path | None = None,
              wait_for: str | None = None, viewport: tuple[int, int] = (1200, 800), timeout_s: float = 30.0,
              full_page: bool = False) -> PageResult:
    """Load ``target`` (a file path or URL) in headless Chromium and return the values of ``expressions``.

    ``expressions`` maps a name to a JavaScript expression evaluated in the page (after load and, if given, after the
    expression ``wait_for`` has become truthy); results come back as JSON values. ``screenshot`` writes a PNG.
    """
    from playwright.sync_api import sync_playwright

    timeout_ms = timeout_s * 1000
    console: list[str] = []
    errors: list[str] = []
    user_data = tempfile.mkdtemp(prefix="circuitdb-chromium-")
    try:
        with sync_playwright() as p:
            ctx = _launch(p, user_data, viewport, timeout_ms)
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(_url(target), wait_until="load", timeout=timeout_ms)
                if wait_for:
                    page.wait_for_function(wait_for, timeout=timeout_ms)
                values = {name: page.evaluate(expr) for name, expr in (expressions or {}).items()}
                shot = None
                if screenshot is not None:
                    shot = Path(screenshot)
                    page.screenshot(path=str(shot), full_page=full_page)
            finally:
                ctx.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
    return PageResult(values, console, errors, shot)
