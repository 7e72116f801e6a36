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


# ----------------------------------------------------------------------------------------------- layering
# Imports run one way (docs/design.md): a module may import its own layer or lower ones, never a higher one, and the
# package's import graph has no cycle. Every import counts (module level and inside functions), except those under
# ``if TYPE_CHECKING:``. The public facade ``circuitdb/__init__`` (lazy, by name) and ``__main__`` sit on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "plain"),
    ("graph", "pruning"),
    ("models", "tasks", "dictionaries", "identity"),
    ("attribution",),
    ("store",),
    ("circuits",),
    ("formats", "render", "intervene", "lens", "neo4j_browser"),
    ("ingest",),
    ("cli", "__main__", ""),
)
# The store factory picks a backend class that subclasses GraphStore: the one cycle allowed (inside one package).
ALLOWED_CYCLE_EDGES = {("circuitdb.store.base", "circuitdb.store.embedded"),
                       ("circuitdb.store.base", "circuitdb.store.neo4j")}


def _import_graph() -> dict[str, set[str]]:
    import ast
    from pathlib import Path

    import circuitdb

    root = Path(circuitdb.__file__).parent
    mods: dict[str, Path] = {}
    for p in root.rglob("*.py"):
        parts = ("circuitdb",) + p.relative_to(root).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        out: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.split(".")[0] == "circuitdb")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "circuitdb":
                out.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                raise AssertionError(f"{name}: relative import (house style: absolute imports only)")
        graph[name] = out - {name}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} is in no layer: add {top!r} to LAYERS in tests/test_package.py "
                         "(and to the layering line of docs/design.md)")


def test_imports_never_go_up_a_layer() -> None:
    graph = _import_graph()
    bad = sorted(f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
                 for m, ts in graph.items() for t in ts if _layer(t) > _layer(m))
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_store_never_imports_circuits() -> None:
    graph = _import_graph()
    assert not [(m, t) for m, ts in graph.items() if m.startswith("circuitdb.store") for t in ts
                if t.startswith("circuitdb.circuits")]


def test_no_import_cycles() -> None:
    graph = {m: {t for t in ts if (m, t) not in ALLOWED_CYCLE_EDGES} for m, ts in _import_graph().items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_walk_sees_imports_inside_functions() -> None:  # the walk must count lazy imports, or it checks nothing
    graph = _import_graph()
    assert "circuitdb.models" in graph["circuitdb.attribution.api"]  # imported inside resolve_model
    assert "circuitdb.circuits.circuit" not in graph["circuitdb.circuits.evaluate"]  # only under TYPE_CHECKING


def test_every_third_party_import_is_declared() -> None:
    """A module imported by the package (at any depth, lazily or not) is a declared dependency in pyproject.toml."""
    import ast
    import re
    from importlib.metadata import packages_distributions
    from pathlib import Path

    import circuitdb

    root = Path(circuitdb.__file__).parent
    text = (root.parent / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    declared = {re.split(r"[<>=;\[ ]", d.strip().strip('",'), maxsplit=1)[0].lower().replace("_", "-")
                for d in deps.splitlines() if d.strip().startswith('"')}
    names: set[str] = set()
    for p in root.rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                names |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                names.add(n.module.split(".")[0])
    names -= set(sys.stdlib_module_names) | {"circuitdb", "__future__"}
    dists = packages_distributions()
    missing = sorted(n for n in names
                     if not {d.lower().replace("_", "-") for d in dists.get(n, [n])} & declared)
    assert not missing, f"imported but not declared in pyproject.toml dependencies: {missing}"
