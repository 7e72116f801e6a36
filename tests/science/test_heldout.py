"""Held-out evaluation: faithfulness on prompts the attribution did not see, stored with its split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import circuitdb
from circuitdb.circuits import splits
from circuitdb.circuits.circuit import Circuit
from circuitdb.circuits.evaluate import evaluate_circuit
from circuitdb.cli import app
from circuitdb.errors import ConfigError
from circuitdb.store.base import open_store


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    model = circuitdb.load_model("toy-ioi")
    graph = circuitdb.attribute(model, "ioi", method="eap-ig", n=8, seed=0, progress=False, head_stats=False,
                                graph_id="ioi-8")
    return model, graph, circuitdb.prune(graph, "topn", n=20)


def test_in_sample_is_the_attribution_prompts_and_held_out_is_unseen(setup) -> None:
    model, graph, circuit = setup
    attr = circuitdb.load_task("ioi", model, n=8, seed=0)
    ins = splits.dataset_for_split(model, graph.meta, "in_sample")
    assert torch.equal(ins.clean, attr.clean) and torch.equal(ins.corrupted, attr.corrupted)
    held = splits.dataset_for_split(model, graph.meta, "held_out")
    assert len(held) == 8
    assert not (splits.overlap_rows(held) & splits.overlap_rows(attr))
    with pytest.raises(ConfigError, match="used for attribution"):
        splits.dataset_for_split(model, graph.meta, "held_out", attr)
    with pytest.raises(ConfigError, match="valid options: held_out, in_sample"):
        circuit.evaluate(model, split="test")


def test_held_out_faithfulness_differs_and_is_stored_with_its_split(setup, tmp_path) -> None:
    model, graph, circuit = setup
    a = circuit.evaluate(model, split="in_sample")
    direct = evaluate_circuit(model, circuitdb.load_task("ioi", model, n=8, seed=0), circuit)
    assert a.scores["faithfulness"] == pytest.approx(direct.scores["faithfulness"], abs=1e-9)
    b = a.evaluate(model, split="held_out")
    assert b.scores["split"] == "held_out"
    f_in, f_out = b.scores["by_split"]["in_sample"]["faithfulness"], b.scores["by_split"]["held_out"]["faithfulness"]
    # 20 edges chosen on 8 prompts fit those prompts better than new ones
    assert f_in - f_out > 0.05, (f_in, f_out)
    with open_store(f"embedded:{tmp_path / 'db'}") as st:
        st.write_graph(graph)
        b.save(st, "top20")
        back = Circuit.load(st, "top20", graph.id)
    assert back.scores["split"] == "held_out"
    assert back.scores["by_split"]["held_out"]["faithfulness"] == pytest.approx(f_out)
    assert np.isclose(back.scores["by_split"]["in_sample"]["faithfulness"], f_in)


def test_eval_cli_split(setup, tmp_path) -> None:
    model, graph, circuit = setup
    uri = f"embedded:{tmp_path / 'db'}"
    with open_store(uri) as st:
        st.write_graph(graph)
        circuit.save(st, "top20")
    r = CliRunner().invoke(app, ["eval", "top20", "-g", graph.id, "-m", "toy-ioi", "-t", "ioi", "--n", "8",
                                 "--split", "held_out", "--store", uri])
    assert r.exit_code == 0, r.output
    assert "split held_out" in r.output
    with open_store(uri) as st:
        c = Circuit.load(st, "top20", graph.id)
    want = circuit.evaluate(model, split="held_out").scores["faithfulness"]
    assert c.scores["by_split"]["held_out"]["faithfulness"] == pytest.approx(want, abs=1e-9)
