"""A CLI that says what it does: help shows defaults, `circuitdb models`, the attributed prompt and the graph's
scores printed, one data flag, third-party warnings logged once, and no hint at a flag the CLI lacks."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from circuitdb.cli import app

runner = CliRunner()


@pytest.mark.parametrize("argv,wanted", [
    (["attribute", "--help"], ["[default: 64]", "[default: eap-ig]", "[default: (the task's)]",
                               "[default: embedded:./circuitdb-data]"]),
    (["prune", "--help"], ["[default: auto]", "[default: (0.8)]", "[default: 15]"]),
    (["eval", "--help"], ["[default: patch]", "[default: 64]"]),
])
def test_help_shows_defaults(argv, wanted) -> None:
    res = runner.invoke(app, argv, terminal_width=200)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for w in wanted:
        assert w in text, (w, text[:2000])


def test_one_data_flag() -> None:
    res = runner.invoke(app, ["attribute", "--help"], terminal_width=200)
    assert "--task" in res.output and "--data" not in res.output


def test_models_lists_the_zoo() -> None:
    res = runner.invoke(app, ["models"], terminal_width=200)
    assert res.exit_code == 0 and "toy-induction-2l" in res.output and "random-2l" in res.output, res.output


def test_attribute_prints_the_prompt_and_the_scores(tmp_path) -> None:
    res = runner.invoke(app, ["attribute", "-m", "toy-induction-2l", "--task", "induction", "--n", "4",
                              "--method", "eap", "--no-progress", "--store", f"embedded:{tmp_path / 'db'}"],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "prompt 0:" in res.output and "scores: clean_metric" in res.output, res.output


def test_third_party_warnings_are_logged_once(capsys) -> None:
    from circuitdb.cli import _OncePerMessage, _root

    _root(verbose=False)
    _root(verbose=False)  # a second run in one process adds no second handler
    root = logging.getLogger()
    mine = [h for h in root.handlers if getattr(h, "_circuitdb_cli", False)]
    assert len(mine) == 1
    f = _OncePerMessage()
    rec = lambda name: logging.LogRecord(name, logging.WARNING, __file__, 1, "same warning", None, None)  # noqa: E731
    assert f.filter(rec("transformers")) and not f.filter(rec("transformers"))
    assert f.filter(rec("circuitdb.models")) and f.filter(rec("circuitdb.models"))  # our own messages all show


def test_write_refusal_names_no_missing_flag(tmp_path) -> None:
    res = runner.invoke(app, ["query", "MATCH (n:Node) DELETE n", "--store", f"embedded:{tmp_path / 'db'}"])
    msg = str(res.exception)
    assert "write=True" not in msg and "read-only" in msg, msg


def test_metric_module_function_on_the_cli(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_cli_metric.py").write_text(
        "def first_logit(logits, batch):\n    return logits[:, -1, 0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    res = runner.invoke(app, ["attribute", "-m", "random-attn-1l", "--task", "induction", "--n", "4", "--method",
                              "eap", "--no-progress", "--metric", "my_cli_metric:first_logit", "--graph-id", "mm",
                              "--store", f"embedded:{tmp_path / 'db'}"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "metric my_cli_metric:first_logit" in " ".join(res.output.split())
