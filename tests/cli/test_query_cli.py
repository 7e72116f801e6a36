"""`circuitdb query | prune | eval` on the embedded store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdb.cli import app
from circuitdb.errors import ConfigError, QueryError
from circuitdb.store.base import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "circuits"))
from fixture_graphs import component_graph  # noqa: E402

runner = CliRunner()


@pytest.fixture()
def store_uri(tmp_path):
    uri = f"embedded:{tmp_path / 'db'}"
    with open_store(uri) as s:
        s.write_graph(component_graph(3, 4, seed=0, graph_id="g1"))
    return uri


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=True)


def test_query_named_json_and_table(store_uri):
    r = cli("query", "top_edges", "--graph", "g1", "--param", "limit=5", "--param", "source_kind=head", "--json",
            "--store", store_uri)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 5 and all(x["source_kind"] == "head" for x in rows)
    assert rows[0]["abs_weight"] >= rows[-1]["abs_weight"]
    r = cli("query", "upstream", "-g", "g1", "-p", "node=LOGITS", "-p", "depth=1", "--store", store_uri)
    assert r.exit_code == 0, r.output
    assert "upstream" in r.output and "A2." in r.output
    r = cli("query", "--list")
    assert r.exit_code == 0 and "paths_between" in r.output and "graph_id" in r.output


def test_query_errors(store_uri):
    r = cli("query", "top_edges", "--store", store_uri)
    assert isinstance(r.exception, QueryError) and "graph_id" in str(r.exception)
    r = cli("query", "nonexistent_query", "-g", "g1", "--store", store_uri)
    assert isinstance(r.exception, QueryError) and "valid options" in str(r.exception)
    r = cli("query", "MATCH (n:Node) DETACH DELETE n", "--store", store_uri)
    assert isinstance(r.exception, QueryError)


def test_prune_and_save(store_uri):
    r = cli("prune", "g1", "--method", "topn", "--n", "12", "--save", "top12", "--store", store_uri)
    assert r.exit_code == 0, r.output
    assert "saved as g1/circuit/top12" in r.output
    with open_store(store_uri) as s:
        rec = s.read_circuit_record("top12", "g1")
        assert rec["method"] == "topn"
    r = cli("prune", "g1", "--method", "bogus", "--store", store_uri)
    assert isinstance(r.exception, ConfigError) and "influence" in str(r.exception)
    r = cli("prune", "g1", "--store", store_uri)  # a component graph: greedy to 5% of the edges by default
    assert r.exit_code == 0 and "by greedy" in r.output


def test_eval_saved_circuit_on_toy_model(tmp_path):
    pytest.importorskip("torch")
    import circuitdb

    uri = f"embedded:{tmp_path / 'toy'}"
    model = circuitdb.load_model("toy-induction-2l")
    graph = circuitdb.attribute(model, "induction", method="eap", n=8, progress=False, graph_id="t")
    with open_store(uri) as s:
        s.write_graph(graph)
    r = cli("prune", "t", "--method", "topn", "--n", "16", "--save", "top16", "--store", uri)
    assert r.exit_code == 0, r.output
    r = cli("eval", "top16", "--graph", "t", "--model", "toy-induction-2l", "--task", "induction", "--n", "8",
            "--store", uri)
    assert r.exit_code == 0, r.output
    assert "faithfulness" in r.output
    with open_store(uri) as s:
        scores = s.read_circuit_record("top16", "t")["scores"]
    scores = json.loads(scores) if isinstance(scores, str) else scores
    assert -1.0 < scores["faithfulness"] < 2.0 and scores["n_examples"] == 8
