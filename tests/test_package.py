"""The package's import contract: the public API is lazy and the CLI help never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_import_does_not_import_torch() -> None:
    assert _run("import sys, circuitdb; circuitdb.AttributionGraph; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize("argv", [["--help"], ["graphs", "--help"], ["query", "--help"], ["attribute", "--help"]])
def test_cli_help_does_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys; sys.argv=['circuitdb', *%r]\n"
        "from circuitdb.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')" % (argv,)
    )
    out = _run(code)
    assert out.endswith("NOTORCH"), out[-500:]


def test_python_dash_m_matches_console_script() -> None:
    a = subprocess.run([sys.executable, "-m", "circuitdb", "--help"], capture_output=True, text=True)
    assert a.returncode == 0 and "Usage" in a.stdout, a.stderr


def test_unknown_public_name_raises_attribute_error() -> None:
    import circuitdb

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        circuitdb.nope  # noqa: B018
