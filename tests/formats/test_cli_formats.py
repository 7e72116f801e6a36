"""`circuitdb import/export --format ...` through the CLI on an embedded store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from circuitdb.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import component_graph, feature_graph  # noqa: E402

runner = CliRunner()


def test_export_import_each_format(tmp_path):
    from circuitdb.store.embedded import EmbeddedStore

    store = f"embedded:{tmp_path / 'db'}"
    with EmbeddedStore(tmp_path / "db") as s:
        s.write_graph(feature_graph())
        s.write_graph(component_graph())
    for gid, fmt, name in (("g-feat", "neuronpedia", "f.json"), ("g-comp", "eap-ig", "c.json"),
                           ("g-feat", "graphml", "f.graphml"), ("g-comp", "gexf", "c.gexf")):
        out = tmp_path / name
        r = runner.invoke(app, ["export", gid, str(out), "--format", fmt, "--store", store])
        assert r.exit_code == 0, r.output
        extra = ["--format", fmt] if fmt == "eap-ig" else []
        r = runner.invoke(app, ["import", str(out), "--id", f"{gid}-{fmt}", "--store", store, *extra])
        assert r.exit_code == 0, r.output
        assert f"{gid}-{fmt}" in r.output
    with EmbeddedStore(tmp_path / "db") as s:
        assert s.read_graph("g-feat-neuronpedia").diff(s.read_graph("g-feat"), meta=False) == []
        assert s.read_graph("g-comp-gexf").diff(s.read_graph("g-comp"), meta=False) == []
        assert s.read_graph("g-comp-eap-ig").n_edges == component_graph().n_edges
        assert len(s.list_circuits("g-comp-eap-ig")) == 1
    assert json.loads((tmp_path / "c.json").read_text())["cfg"]["n_heads"] == 2
