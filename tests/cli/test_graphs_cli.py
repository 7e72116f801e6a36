"""`circuitdb graphs list|show|delete`, `import`, `export` on the embedded store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdb.cli import app
from circuitdb.errors import ConfigError, GraphNotFoundError
from circuitdb.graph import AttributionGraph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from synthetic_graphs import mixed_graph  # noqa: E402

runner = CliRunner()


@pytest.fixture()
def env(tmp_path):
    graph = mixed_graph("g-cli", n_edges=400)
    src = graph.save(tmp_path / "in")
    return graph, src, f"embedded:{tmp_path / 'db'}", tmp_path


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=True)


def test_import_list_show_export_delete(env):
    graph, src, store, tmp = env
    r = cli("import", str(src), "--store", store)
    assert r.exit_code == 0, r.output
    assert "g-cli" in r.output and "400 edges" in r.output
    cli("import", str(src), "--id", "second", "--store", store)

    r = cli("graphs", "list", "--store", store, "--json")
    rows = json.loads(r.stdout)
    assert [x["id"] for x in rows] == ["g-cli", "second"]
    assert rows[0]["n_edges"] == 400 and rows[0]["model"] == "toy"
    r = cli("graphs", "list", "--store", store)
    assert r.exit_code == 0 and "g-cli" in r.output and "second" in r.output

    r = cli("graphs", "show", "g-cli", "--store", store, "--json", "--top", "3")
    info = json.loads(r.stdout)
    assert info["n_nodes"] == graph.n_nodes and info["n_edges"] == 400
    assert info["nodes_by_kind"]["head"] == int((graph.nodes["kind"] == "head").sum())
    assert info["meta"]["params"] == graph.meta["params"]
    strongest = max(abs(e["weight"]) for e in info["top_edges"])
    assert len(info["top_edges"]) == 3 and strongest == pytest.approx(graph.abs_weight.max())
    r = cli("graphs", "show", "g-cli", "--store", store)
    assert r.exit_code == 0 and "top 10 edges" in r.output

    r = cli("export", "g-cli", str(tmp / "out"), "--store", store)
    assert r.exit_code == 0, r.output
    assert AttributionGraph.load(tmp / "out").diff(graph) == []
    r = cli("export", "g-cli", str(tmp / "out"), "--store", store)  # non-empty target
    assert isinstance(r.exception, ConfigError) and "--force" in str(r.exception)
    assert cli("export", "g-cli", str(tmp / "out"), "--force", "--store", store).exit_code == 0

    r = cli("graphs", "delete", "second", "--store", store)
    assert r.exit_code == 0 and "deleted" in r.output
    r = cli("graphs", "delete", "second", "--store", store)
    assert isinstance(r.exception, GraphNotFoundError)
    assert [x["id"] for x in json.loads(cli("graphs", "list", "--store", store, "--json").stdout)] == ["g-cli"]


def test_import_refuses_a_directory_that_is_not_a_graph(env):
    _, _, store, tmp = env
    (tmp / "junk").mkdir()
    r = cli("import", str(tmp / "junk"), "--store", store)
    assert isinstance(r.exception, ConfigError) and "missing" in str(r.exception)


def test_errors_exit_2_with_one_line_and_no_torch(env):
    """Through the real entry point: a circuitdb error is one red line and exit code 2; torch is never imported."""
    _, _, store, _ = env
    code = ("import sys; from circuitdb.cli import main; sys.argv = ['circuitdb', 'graphs', 'show', 'nope', "
            f"'--store', {store!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "exit 2 False" in out.stdout, out.stderr
    assert "no graph 'nope'" in out.stderr


def test_store_comes_from_the_environment(env):
    _, src, store, _ = env
    assert runner.invoke(app, ["import", str(src)], env={"CIRCUITDB_STORE": store}).exit_code == 0
    r = runner.invoke(app, ["graphs", "list", "--json"], env={"CIRCUITDB_STORE": store})
    assert [x["id"] for x in json.loads(r.stdout)] == ["g-cli"]
