"""``circuitdb attribute``: computes a component graph, writes it to a store that reads it back, prints top edges."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import circuitdb
from circuitdb.cli import app
from circuitdb.errors import ConfigError
from circuitdb.store.base import open_store

runner = CliRunner()


def test_attribute_task_writes_graph_the_store_reads_back(tmp_path) -> None:  # noqa: ANN001
    uri = f"embedded:{tmp_path / 'db'}"
    res = runner.invoke(app, ["attribute", "--model", "random-2l", "--task", "induction", "--n", "6",
                              "--method", "eap", "--store", uri, "--graph-id", "cli-ind", "--no-progress",
                              "--top", "5"])
    assert res.exit_code == 0, res.output
    assert "stored graph cli-ind" in res.output and "top 5 edges" in res.output
    want = circuitdb.attribute("random-2l", "induction", method="eap", n=6, progress=False, graph_id="cli-ind")
    with open_store(uri) as st:
        got = st.read_graph("cli-ind")
    assert sorted(got.keys) == sorted(want.keys) and got.n_edges == want.n_edges
    assert got.meta["method"] == "eap" and got.meta["granularity"] == "component"
    np.testing.assert_allclose(np.sort(got.weight), np.sort(want.weight), atol=1e-6)
    top = want.keys[want.src[np.argmax(want.abs_weight)]]
    assert top in res.output


def test_attribute_jsonl_data(tmp_path) -> None:  # noqa: ANN001
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "pairs.jsonl"
    rows = [{"clean": torch.randint(1, 50, (6,), generator=g).tolist(),
             "corrupted": torch.randint(1, 50, (6,), generator=g).tolist(), "answer": 3, "wrong": 4}
            for _ in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    uri = f"embedded:{tmp_path / 'db'}"
    res = runner.invoke(app, ["attribute", "--model", "random-attn-1l", "--task", str(path), "--method", "patching",
                              "--store", uri, "--graph-id", "cli-jsonl", "--no-progress"])
    assert res.exit_code == 0, res.output
    with open_store(uri) as st:
        got = st.read_graph("cli-jsonl")
    assert got.meta["method"] == "patching" and got.meta["params"]["n"] == 4 and got.meta["metric"] == "logit_diff"


@pytest.mark.parametrize("args,match", [
    ([], "component graphs need --task NAME or --task FILE.jsonl"),
    (["--task", "induction", "--granularity", "edge"], "unknown granularity 'edge'"),
    (["--task", "induction", "--method", "acdc"], "unknown attribution method 'acdc'"),
    (["--granularity", "feature", "--tokens", "3,x"], "comma-separated integers"),
    (["--granularity", "feature", "--tokens", "3,999"], r"each in \[0, 50\)"),
    (["--granularity", "feature", "--prompt", "hello"], "has no tokenizer"),
])
def test_bad_options_are_config_errors(tmp_path, args: list[str], match: str) -> None:  # noqa: ANN001
    res = runner.invoke(app, ["attribute", "--model", "random-attn-1l", "--n", "4", "--no-progress",
                              "--store", f"embedded:{tmp_path / 'db'}", *args])
    assert isinstance(res.exception, ConfigError), res.output
    assert __import__("re").search(match, str(res.exception)), str(res.exception)


def test_feature_granularity_calls_attribute_features(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    seen = {}
    base = circuitdb.attribute("random-attn-1l", {"clean": torch.ones(1, 3, dtype=torch.long),
                                                  "corrupted": torch.zeros(1, 3, dtype=torch.long),
                                                  "answer": torch.tensor([1])}, method="eap", progress=False,
                               head_stats=False)

    def fake(model, tokens, dictionaries=None, **opts):  # noqa: ANN001, ANN202
        seen.update(tokens=tokens, dictionaries=dictionaries, opts=opts)
        return base

    monkeypatch.setattr(circuitdb, "attribute_features", fake)
    res = runner.invoke(app, ["attribute", "--model", "random-attn-1l", "--granularity", "feature", "--tokens",
                              "3,17,5", "--dictionaries", "random", "--graph-id", "feat", "--no-progress",
                              "--store", f"embedded:{tmp_path / 'db'}"])
    assert res.exit_code == 0, res.output
    assert seen["tokens"].dtype == torch.long and seen["tokens"].tolist() == [3, 17, 5]
    assert seen["dictionaries"] == "random" and seen["opts"]["graph_id"] == "feat"
    res = runner.invoke(app, ["attribute", "--model", "random-2l", "--granularity", "feature", "--task", "induction",
                              "--index", "2", "--no-progress", "--store", f"embedded:{tmp_path / 'db'}"])
    assert res.exit_code == 0, res.output
    want = circuitdb.load_task("induction", circuitdb.load_model("random-2l"), n=3).clean[2]
    assert seen["tokens"].tolist() == want.tolist() and seen["dictionaries"] is None


def test_feature_graph_of_a_text_prompt_end_to_end(tmp_path) -> None:  # noqa: ANN001
    """The issue's command: toy-ioi, a text prompt, the zoo's transcoders by default → a stored feature graph."""
    uri = f"embedded:{tmp_path / 'db'}"
    res = runner.invoke(app, ["attribute", "--model", "toy-ioi", "--granularity", "feature", "--prompt",
                              "When Kate and Diana went to the office , Diana gave a letter to", "--no-heads",
                              "--max-feature-nodes", "200", "--graph-id", "ioi-feat", "--no-progress", "--store", uri])
    assert res.exit_code == 0, res.output
    with circuitdb.open_store(uri) as st:
        g = st.read_graph("ioi-feat")
    kinds = set(g.nodes["kind"])
    assert g.meta["granularity"] == "feature" and {"embed", "feature", "error", "logit"} <= kinds
    assert "head" not in kinds  # --no-heads
    assert (g.nodes["kind"] == "feature").sum() <= 200
    assert g.meta["dictionaries"], g.meta  # the zoo's transcoders were used
    top = g.nodes[g.nodes["kind"] == "logit"].sort_values("probability").iloc[-1]
    assert top["label"] == "Kate"  # toy-ioi answers the IOI prompt with the indirect object
