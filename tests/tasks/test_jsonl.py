"""User JSONL prompt pairs: text and ids, and errors that name the line."""

from __future__ import annotations

import json

import pytest
import torch

from circuitdb.errors import ConfigError
from circuitdb.models import load_model
from circuitdb.tasks import load_task


@pytest.fixture(scope="module")
def toy_ioi():
    return load_model("toy-ioi")


def _write(path, rows) -> str:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_text_and_id_lines(tmp_path, toy_ioi) -> None:
    p = _write(tmp_path / "pairs.jsonl", [
        {"clean": "When Mary and John went to the store , John gave a drink to",
         "corrupted": "When Mary and John went to the store , Bob gave a drink to", "answer": "Mary", "wrong": "John"},
        "",
        {"clean": [0] + [5] * 14, "corrupted": [0] + [6] * 14, "answer": 1, "wrong": 2, "answer_pos": 3},
    ])
    ds = load_task(p, toy_ioi)
    assert ds.clean.shape == (2, 15) and ds.name == "pairs"
    assert ds.clean[0, 0].item() == 0 and ds.clean[0, 2].item() == toy_ioi.tokenizer.convert_tokens_to_ids("Mary")
    assert ds.answer[0].item() == toy_ioi.tokenizer.convert_tokens_to_ids("Mary")
    assert ds.answer_pos.tolist() == [14, 3]
    assert torch.equal(ds.clean[1], torch.tensor([0] + [5] * 14))
    assert ds.meta["n"] == 2 and load_task("jsonl", toy_ioi, path=p, n=1).clean.shape[0] == 1


@pytest.mark.parametrize("rows,match", [
    (["{not json"], "line 1: invalid JSON"),
    ([{"clean": [0, 1], "corrupted": [0, 1, 2], "answer": 1}], "line 1: clean has 2 tokens, corrupted has 3"),
    ([{"clean": [0, 1], "corrupted": [0, 2], "answer": 1}, {"clean": [0, 1, 2], "corrupted": [0, 1, 2], "answer": 1}],
     "line 2: prompt has 3 tokens"),
    ([{"clean": [0, 1], "answer": 1}], r"line 1: missing key 'corrupted'"),
    ([{"clean": [0, 1], "corrupted": [0, 2], "answer": 1, "extra": 1}], "unknown key 'extra'"),
    ([{"clean": [0, 1], "corrupted": [0, 999], "answer": 1}], "line 1: corrupted token id 999 is outside the vocabulary"),
    ([{"clean": [0, 1], "corrupted": [0, 2], "answer": "Mary John"}], "line 1: answer 'Mary John' is not exactly one"),
    ([{"clean": "Mary Zebedee", "corrupted": "Mary John", "answer": 1}], "line 1: clean 'Mary Zebedee' has words"),
    ([{"clean": [0, 1], "corrupted": [0, 2], "answer": 1, "wrong": 2}, {"clean": [0, 1], "corrupted": [0, 2], "answer": 1}],
     "line 2: 'wrong' must be given on every line"),
    ([{"clean": [0, 1], "corrupted": [0, 2], "answer": 1, "answer_pos": 5}], "line 1: answer_pos 5"),
    ([""], "holds no prompt pairs"),
])
def test_bad_lines_name_the_line(tmp_path, toy_ioi, rows, match) -> None:
    p = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ConfigError, match=match):
        load_task(p, toy_ioi)


def test_text_needs_a_tokenizer_and_long_prompts_fail(tmp_path) -> None:
    model = load_model("random-attn-1l")
    p = _write(tmp_path / "t.jsonl", [{"clean": "a b", "corrupted": "a c", "answer": 1}])
    with pytest.raises(ConfigError, match="no tokenizer"):
        load_task(p, model)
    p = _write(tmp_path / "long.jsonl", [{"clean": [1] * 40, "corrupted": [2] * 40, "answer": 1}])
    with pytest.raises(ConfigError, match="n_ctx"):
        load_task(p, model)
    with pytest.raises(ConfigError, match="cannot read"):
        load_task(str(tmp_path / "missing.jsonl"), model)
    with pytest.raises(ConfigError, match="path="):
        load_task("jsonl", model)
