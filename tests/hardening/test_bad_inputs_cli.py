"""Bad task, prompt, metric and query inputs through the CLI: each is refused with exit code 2, a message that names
the problem, and no traceback (issue 8, usermodel part). The store is never written by a refused command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "circuits"))
from fixture_graphs import component_graph  # noqa: E402

MODEL = "random-attn-1l"  # no tokenizer, d_vocab 50, n_ctx 32


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    from circuitdb.cli import main

    old = sys.argv
    sys.argv = ["circuitdb", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    from circuitdb.store.base import open_store

    uri = f"embedded:{tmp_path_factory.mktemp('bad-inputs') / 'db'}"
    with open_store(uri) as st:
        st.write_graph(component_graph(2, 2, seed=0, graph_id="g1"))
    return uri


def _row(**kw) -> dict:
    return {"clean": [0, 1, 2, 3], "corrupted": [0, 4, 5, 6], "answer": 3, **kw}


JSONL_CASES = {
    "invalid json": (["{not json"], "invalid JSON"),
    "not an object": ([[1, 2]], "expected a JSON object"),
    "missing corrupted": ([{"clean": [0, 1]}], "missing key 'corrupted'"),
    "unknown key": ([_row(extra=1)], "unknown key 'extra'"),
    "float token ids": ([_row(clean=[0.5, 1.0, 2.0, 3.0])], "line 1: clean"),
    "empty prompt list": ([_row(clean=[], corrupted=[])], "empty list of token ids"),
    "clean/corrupted lengths differ": ([_row(corrupted=[0, 1])], "they must match"),
    "answer outside the output vocabulary": ([_row(answer=50)], "answer token id 50 is outside the vocabulary"),
    "negative token id": ([_row(clean=[0, -1, 2, 3])], "clean token id -1 is outside the vocabulary"),
    "boolean answer": ([_row(answer=True)], "line 1: answer"),
    "answer_pos out of range": ([_row(answer_pos=9)], "answer_pos 9"),
    "answer_pos not an int": ([_row(answer_pos="last")], "line 1: answer_pos"),
    "wrong on some lines": ([_row(wrong=4), _row()], "'wrong' must be given on every line or on none"),
    "varying answer counts": ([_row(answer=[1, 2]), _row(answer=[1])], "give the same number on every line"),
    "different prompt lengths": ([_row(), _row(clean=[0, 1, 2], corrupted=[0, 1, 2])], "same length"),
    "empty file": ([""], "holds no prompt pairs"),
    "text without a tokenizer": ([_row(clean="hello there", corrupted="hello you")], "no tokenizer"),
    "text answer without a tokenizer": ([_row(answer="Mary")], "no tokenizer; give a token id"),
    "empty answer list": ([_row(answer=[])], "answer is an empty list"),
    "prompt longer than n_ctx": ([_row(clean=list(range(40)), corrupted=list(range(40)))], "--truncate"),
}


@pytest.mark.parametrize("case", list(JSONL_CASES))
def test_bad_jsonl_tasks(case, tmp_path, store, capsys) -> None:
    rows, match = JSONL_CASES[case]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    code, out = run_cli(["attribute", "-m", MODEL, "--task", str(path), "--method", "eap", "--no-progress",
                         "--store", store], capsys)
    assert code == 2 and "Traceback" not in out and match in out, out


def test_non_utf8_jsonl(tmp_path, store, capsys) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(_row()).encode() + b"\n" + '{"clean": "caf\xe9"}'.encode("latin-1"))
    code, out = run_cli(["attribute", "-m", MODEL, "--task", str(path), "--store", store], capsys)
    assert code == 2 and "not UTF-8 text (line 2" in out and "Traceback" not in out, out


def test_missing_jsonl_file(tmp_path, store, capsys) -> None:
    code, out = run_cli(["attribute", "-m", MODEL, "--task", str(tmp_path / "nope.jsonl"), "--store", store], capsys)
    assert code == 2 and "cannot read prompt file" in out, out


def test_truncation_only_when_asked(tmp_path, store, capsys) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(_row(clean=list(range(1, 41)), corrupted=list(range(2, 42)), answer=3)))
    code, out = run_cli(["attribute", "-m", MODEL, "--task", str(path), "--method", "eap", "--no-progress",
                         "--truncate", "--graph-id", "trunc", "--store", store], capsys)
    assert code == 0, out
    from circuitdb.store.base import open_store

    with open_store(store) as st:
        g = st.read_graph("trunc")
        st.delete_graph("trunc")
    assert g.meta["params"]["seq_len"] == 32 and g.meta["params"]["task"]["truncated_to"] == 32


QUERY_CASES = {
    "unknown graph id": (["top_edges", "--graph", "nope"], "no graph 'nope'"),
    "NaN min_weight": (["top_edges", "-g", "g1", "-p", "min_weight=NaN"], "NaN and infinity are not accepted"),
    "infinite min_weight": (["top_edges", "-g", "g1", "-p", "min_weight=Infinity"], "NaN and infinity"),
    "text nan min_weight": (["top_edges", "-g", "g1", "-p", "min_weight=nan"], "NaN and infinity"),
    "null depth": (["downstream", "-g", "g1", "-p", "node=E", "-p", "depth=null"], "'depth' cannot be null"),
    "depth 0": (["downstream", "-g", "g1", "-p", "node=E", "-p", "depth=0"], "'depth' must be in 1..4"),
    "depth 99": (["downstream", "-g", "g1", "-p", "node=E", "-p", "depth=99"], "'depth' must be in 1..4"),
    "negative max_hops": (["paths_between", "-g", "g1", "-p", "source=E", "-p", "target=LOGITS",
                           "-p", "max_hops=-1"], "'max_hops' must be in 1..4"),
    "fractional limit": (["top_edges", "-g", "g1", "-p", "limit=1.5"], "'limit' must be integer"),
    "unknown parameter": (["top_edges", "-g", "g1", "-p", "bogus=1"], "has no parameter(s) ['bogus']"),
    "param without =": (["top_edges", "-g", "g1", "-p", "limit"], "not of the form key=value"),
    "param with empty key": (["top_edges", "-g", "g1", "-p", "=3"], "empty key"),
    "missing required parameter": (["downstream", "-g", "g1"], "needs parameter 'node'"),
}


@pytest.mark.parametrize("case", list(QUERY_CASES))
def test_bad_query_inputs(case, store, capsys) -> None:
    args, match = QUERY_CASES[case]
    code, out = run_cli(["query", *args, "--store", store], capsys)
    assert code == 2 and "Traceback" not in out and match in out, out


def test_non_utf8_query_file(tmp_path, store, capsys) -> None:
    path = tmp_path / "q.cypher"
    path.write_bytes("MATCH (n) RETURN n // caf\xe9".encode("latin-1"))
    code, out = run_cli(["query", str(path), "--store", store], capsys)
    assert code == 2 and "is not UTF-8 text" in out, out


PRUNE_CASES = {
    "topn without --n": (["g1", "--method", "topn"], "'topn' needs n="),
    "NaN threshold": (["g1", "--method", "threshold", "--threshold", "nan"], "finite non-negative number"),
    "negative threshold": (["g1", "--method", "threshold", "--threshold", "-1"], "finite non-negative number"),
    "infinite threshold": (["g1", "--method", "threshold", "--threshold", "inf"], "finite non-negative number"),
    "unknown method": (["g1", "--method", "bogus"], "unknown pruning method 'bogus'"),
    "unknown graph": (["nope", "--method", "topn", "--n", "3"], "nope"),
    "NaN node threshold": (["g1", "--method", "influence", "--node-threshold", "nan"], "node_threshold"),
    "NaN min_abs_weight": (["g1", "--n", "3", "--method", "topn", "-p", "min_abs_weight=NaN"], "NaN and infinity"),
    "negative min_abs_weight": (["g1", "--n", "3", "--method", "topn", "-p", "min_abs_weight=-1"],
                                "min_abs_weight must be a finite number >= 0"),
    "negative n": (["g1", "--method", "topn", "--n", "-3"], "non-negative integer"),
    "parameter of another method": (["g1", "--method", "topn", "--n", "3", "--threshold", "0.5"],
                                    "unknown parameter(s) ['threshold']"),
}


@pytest.mark.parametrize("case", list(PRUNE_CASES))
def test_bad_prune_inputs(case, store, capsys) -> None:
    args, match = PRUNE_CASES[case]
    code, out = run_cli(["prune", *args, "--store", store], capsys)
    assert code == 2 and "Traceback" not in out and match in out, out


ATTRIBUTE_CASES = {
    "unknown metric": (["--task", "induction", "--metric", "accuracy"], "unknown metric 'accuracy'"),
    "metric module missing": (["--task", "induction", "--metric", "no_such_mod_xyz:f"], "cannot import module"),
    "metric without function": (["--task", "induction", "--metric", "json:"], "write module:function"),
    "unknown dtype": (["--task", "induction", "--dtype", "float8"], "unknown dtype 'float8'"),
    "unknown model": (["--task", "induction", "-m", "no-such-model-xyz"], "unknown model 'no-such-model-xyz'"),
    "unknown task": (["--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    "feature prompt longer than n_ctx": (["--granularity", "feature", "--tokens", ",".join(["1"] * 40)],
                                         "the model's n_ctx is 32"),
    "no data flag": ([], "component graphs need --task"),
}


@pytest.mark.parametrize("case", list(ATTRIBUTE_CASES))
def test_bad_attribute_inputs(case, store, capsys) -> None:
    args, match = ATTRIBUTE_CASES[case]
    model = [] if "-m" in args else ["-m", MODEL]
    code, out = run_cli(["attribute", *model, "--n", "4", "--no-progress", "--store", store, *args], capsys)
    assert code == 2 and "Traceback" not in out and match in out, out


def test_the_store_is_checked_before_any_compute(capsys) -> None:
    # the model name is bad too: the store URI is refused first, so nothing was loaded or computed
    code, out = run_cli(["attribute", "-m", "no-such-model-xyz", "--task", "induction", "--store", "bogus://x"],
                        capsys)
    assert code == 2 and "unknown store URI scheme 'bogus'" in out, out


def test_eval_unknown_graph(store, capsys) -> None:
    code, out = run_cli(["eval", "--curve", "--graph", "nope", "-m", MODEL, "-t", "induction", "--store", store],
                        capsys)
    assert code == 2 and "no graph 'nope'" in out, out


def test_error_text_is_never_markup(tmp_path, store, capsys) -> None:
    path = tmp_path / "[bold]x[/bold].jsonl"
    code, out = run_cli(["attribute", "-m", MODEL, "--task", str(path), "--store", store], capsys)
    assert code == 2 and "[bold]x[/bold]" in out, out


def test_refused_commands_leave_the_store_unchanged(store, capsys) -> None:
    from circuitdb.store.base import open_store

    with open_store(store) as st:
        listed = st.list_graphs()["id"].tolist()
        circuits = len(st.list_circuits())
    assert listed == ["g1"] and circuits == 0
