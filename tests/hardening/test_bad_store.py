"""Bad input at the store's doors (store engineer's cases): native graph directories (`circuitdb import`), the
store's Python API and the `graphs`/`export` commands. Each case names the problem, the CLI exits 2 without a
traceback, and the store is unchanged (checksums of every table)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from synthetic_graphs import mixed_graph  # noqa: E402
from test_adversarial_queries import checksum  # noqa: E402

from circuitdb.cli import main  # noqa: E402
from circuitdb.errors import CircuitDBError, ConfigError, GraphNotFoundError  # noqa: E402
from circuitdb.graph import AttributionGraph  # noqa: E402
from circuitdb.store.embedded import EmbeddedStore  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("badstore")
    good = mixed_graph("victim", n_edges=300)
    with EmbeddedStore(root / "db") as s:
        s.write_graph(good)
        s.save_circuit("kept", "victim", ["A0.0@0", "L:7@4"], method="m", params={}, scores={})
    src = good.save(root / "good")
    return root, src, f"embedded:{root / 'db'}"


def store_sum(world) -> str:
    with EmbeddedStore(world[0] / "db") as s:
        return checksum(s)


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["circuitdb", *args])
    monkeypatch.setenv("COLUMNS", "3000")  # no wrapping inside the words a case looks for
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _edges(change):
    def f(d: Path) -> None:
        df = pd.read_parquet(d / "edges.parquet")
        change(df).to_parquet(d / "edges.parquet", index=False)
    return f


def _nodes(change):
    def f(d: Path) -> None:
        df = pd.read_parquet(d / "nodes.parquet")
        change(df).to_parquet(d / "nodes.parquet", index=False)
    return f


def _meta(change):
    def f(d: Path) -> None:
        m = json.loads((d / "meta.json").read_text())
        (d / "meta.json").write_text(json.dumps(change(m)))
    return f


def _write(name: str, data: bytes):
    return lambda d: (d / name).write_bytes(data)


def _truncate(name: str):
    return lambda d: (d / name).write_bytes((d / name).read_bytes()[: len((d / name).read_bytes()) // 2])


def _set(col, value, dtype=None):
    def change(df):
        df = df.copy()
        if dtype is not None:
            df[col] = df[col].astype(dtype)
        df.loc[df.index[0], col] = value
        return df
    return change


#: name → (corrupt the good directory, words the message must contain)
BAD_DIRS = {
    "empty meta.json": (_write("meta.json", b""), ["meta.json", "JSON"]),
    "meta.json not JSON": (_write("meta.json", b"{not json"), ["meta.json", "JSON"]),
    "meta.json non-UTF-8": (_write("meta.json", b'{"a": "\xff\xfe"}'), ["meta.json"]),
    "meta.json a list": (_write("meta.json", b"[1, 2]"), ["JSON object", "list"]),
    "meta.json no format": (_meta(lambda m: {k: v for k, v in m.items() if k != "format"}), ["circuitdb-graph"]),
    "schema_version 99": (_meta(lambda m: {**m, "schema_version": 99}), ["schema_version", "99"]),
    "schema_version string": (_meta(lambda m: {**m, "schema_version": "1"}), ["schema_version"]),
    "nodes.parquet empty": (_write("nodes.parquet", b""), ["nodes.parquet", "parquet"]),
    "nodes.parquet garbage": (_write("nodes.parquet", b"PAR1 garbage"), ["nodes.parquet", "parquet"]),
    "edges.parquet truncated": (_truncate("edges.parquet"), ["edges.parquet", "parquet"]),
    "edges.parquet empty": (_write("edges.parquet", b""), ["edges.parquet"]),
    "no edges.parquet": (lambda d: (d / "edges.parquet").unlink(), ["missing", "edges.parquet"]),
    "float source index": (_edges(_set("source", 1.5, "float64")), ["source", "1.5", "integer"]),
    "NaN source index": (_edges(_set("source", np.nan, "float64")), ["source", "nan"]),
    "string target": (_edges(lambda df: df.assign(target=df["target"].astype(str))), ["target", "integer"]),
    "source out of range": (_edges(_set("source", 10_000)), ["source", "10000", "outside"]),
    "channel 256": (_edges(_set("channel", 256, "int64")), ["channel", "256"]),
    "channel -1": (_edges(_set("channel", -1, "int64")), ["channel", "-1"]),
    "channel 'x'": (_edges(lambda df: df.assign(channel=["x"] * len(df))), ["channel", "'x'"]),
    "string weights": (_edges(lambda df: df.assign(weight=df["weight"].astype(str))), ["weight", "real"]),
    "NaN weight": (_edges(_set("weight", np.nan)), ["non-finite weight"]),
    "inf weight": (_edges(_set("weight", np.inf)), ["non-finite weight"]),
    "extra edge column": (_edges(lambda df: df.assign(confidence=1.0)), ["unknown edge column", "confidence"]),
    "no weight column": (_edges(lambda df: df.drop(columns=["weight"])), ["lacks", "weight"]),
    "duplicate node key": (_nodes(lambda df: df.assign(key=["dup"] * len(df))), ["duplicate node key", "dup"]),
    "unknown node kind": (_nodes(_set("kind", "neuron")), ["node kind", "neuron"]),
    "unknown node column": (_nodes(lambda df: df.assign(colour="red")), ["unknown node column", "colour"]),
    "empty node key": (_nodes(_set("key", "")), ["empty key"]),
    "fractional layer": (_nodes(_set("layer", 1.5, "float64")), ["layer", "1.5"]),
    "circuits.json not JSON": (_write("circuits.json", b"[{"), ["circuits.json", "circuits file"]),
    "circuits.json names a missing node": (
        _write("circuits.json", json.dumps([{"name": "c", "node_keys": ["NOPE"], "method": "m", "params": {},
                                             "scores": {}}]).encode()), ["circuit 'c'", "NOPE"]),
}


@pytest.mark.parametrize("case", list(BAD_DIRS))
def test_bad_native_directory_is_a_named_error_and_changes_nothing(world, tmp_path, monkeypatch, capsys, case):
    corrupt, words = BAD_DIRS[case]
    d = tmp_path / "bad"
    shutil.copytree(world[1], d)
    corrupt(d)
    before = store_sum(world)
    code, out = cli(monkeypatch, capsys, "import", str(d), "--id", "victim", "--store", world[2])
    assert code == 2, out
    assert "Traceback" not in out and "error:" in out
    for w in words:
        assert w.lower() in out.lower(), f"{case}: {w!r} not in {out!r}"
    assert store_sum(world) == before


def test_rewrite_that_would_break_a_circuit_is_refused_by_the_cli(world, tmp_path, monkeypatch, capsys):
    g = AttributionGraph.load(world[1])
    g.subgraph(node_mask=g.keys != "A0.0@0").save(tmp_path / "smaller")
    before = store_sum(world)
    code, out = cli(monkeypatch, capsys, "import", str(tmp_path / "smaller"), "--store", world[2])
    assert code == 2 and "Traceback" not in out and "'kept'" in out and "A0.0@0" in out
    assert store_sum(world) == before


@pytest.mark.parametrize("args,words", [
    (("graphs", "show", "nope"), ["no graph 'nope'", "victim"]),
    (("graphs", "delete", "nope"), ["no graph 'nope'"]),
    (("export", "nope", "{tmp}/x"), ["no graph 'nope'"]),
    (("export", "victim", "{tmp}/full"), ["not an empty directory", "--force"]),
    (("graphs", "show", "[/x]"), ["no graph '[/x]'"]),
    (("graphs", "show", "y" * 100_000), ["characters"]),
])
def test_cli_errors_exit_2_without_traceback(world, tmp_path, monkeypatch, capsys, args, words):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    before = store_sum(world)
    t0 = time.monotonic()
    code, out = cli(monkeypatch, capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args], "--store", world[2])
    assert code == 2 and "Traceback" not in out, out[:2000]
    for w in words:
        assert w in out, out[:2000]
    assert len(out) < 5000 and time.monotonic() - t0 < 30  # a 100k-character id is elided, not printed
    assert store_sum(world) == before


def test_markup_and_huge_ids_print_literally_in_graphs_list(tmp_path, monkeypatch, capsys):
    store = f"embedded:{tmp_path / 'db'}"
    huge = "z" * 100_000
    with EmbeddedStore(tmp_path / "db") as s:
        for gid in ("[/x]", "[bold]b[/bold]", huge):
            s.write_graph(mixed_graph(gid, n_edges=20))
    monkeypatch.setenv("COLUMNS", "200")
    code, out = cli(monkeypatch, capsys, "graphs", "list", "--store", store)
    assert code == 0 and "Traceback" not in out, out[:2000]
    assert "[/x]" in out and "[bold]b[/bold]" in out and "100,000 chars" in out and huge not in out
    code, out = cli(monkeypatch, capsys, "graphs", "delete", "[/x]", "--store", store)
    assert code == 0 and "[/x]" in out


def test_export_import_carries_circuits_and_empty_circuits_reload_empty(tmp_path, monkeypatch, capsys):
    from circuitdb.circuits.circuit import Circuit

    db1, db2 = f"embedded:{tmp_path / 'a'}", f"embedded:{tmp_path / 'b'}"
    g = mixed_graph("g", n_edges=300)
    with EmbeddedStore(tmp_path / "a") as s:
        s.write_graph(g)
        edges = pd.DataFrame({"source": [], "target": [], "channel": [], "weight": []})
        s.save_circuit("empty-edges", "g", ["A0.0@0", "A0.1@0"], method="m", params={"n": 1}, scores={"f": 0.5},
                       edges=edges)
        s.save_circuit("plain", "g", ["E@0"], method="m", params={}, scores={})
    code, out = cli(monkeypatch, capsys, "export", "g", str(tmp_path / "out"), "--store", db1)
    assert code == 0, out
    code, out = cli(monkeypatch, capsys, "import", str(tmp_path / "out"), "--store", db2)
    assert code == 0 and "2 saved circuit(s)" in out, out
    with EmbeddedStore(tmp_path / "b") as s:
        assert sorted(s.list_circuits("g")["name"]) == ["empty-edges", "plain"]
        rec = s.read_circuit_record("empty-edges", "g")
        assert rec["node_keys"] == ["A0.0@0", "A0.1@0"] and rec["params"] == {"n": 1}
        circuit = Circuit.from_record(s.read_graph("g"), rec)
        assert circuit.graph.n_edges == 0 and circuit.graph.n_nodes == 2  # not every edge among its nodes
    # importing over an id keeps its circuits (re-linked), not deletes them
    code, out = cli(monkeypatch, capsys, "import", str(tmp_path / "out"), "--store", db1)
    assert code == 0, out
    with EmbeddedStore(tmp_path / "a") as s:
        assert sorted(s.list_circuits("g")["name"]) == ["empty-edges", "plain"]


@pytest.mark.parametrize("call,err,words", [
    (lambda s: s.read_subgraph("victim", min_abs_weight=float("nan")), ConfigError, ["min_abs_weight", "nan"]),
    (lambda s: s.read_subgraph("victim", min_abs_weight=float("inf")), ConfigError, ["finite"]),
    (lambda s: s.read_subgraph("victim", min_abs_weight="lots"), ConfigError, ["'lots'"]),
    (lambda s: s.read_subgraph("victim", layers=["x"]), ConfigError, ["layers"]),
    (lambda s: s.write_graph(mixed_graph("x", n_edges=5), graph_id=""), ConfigError, ["graph id"]),
    (lambda s: s.write_graph(mixed_graph("x", n_edges=5), graph_id="a\x00b"), ConfigError, ["NUL"]),
    (lambda s: s.write_graphs([mixed_graph("d", n_edges=5)] * 2), ConfigError, ["more than once", "'d'"]),
    (lambda s: s.save_circuit("c", "nope", ["E@0"], method="m", params={}, scores={}), GraphNotFoundError,
     ["'nope'"]),
    (lambda s: s.save_circuit("c", "victim", ["NOPE"], method="m", params={}, scores={}), ConfigError, ["NOPE"]),
    (lambda s: s.save_circuit("", "victim", ["E@0"], method="m", params={}, scores={}), ConfigError, ["name"]),
    (lambda s: s.read_graph("nope"), GraphNotFoundError, ["'nope'", "victim"]),
    (lambda s: s.run("RETURN 1", ["not", "a", "dict"]), ConfigError, ["dict"]),
    (lambda s: s.run("MATCH (n:Nope) RETURN n"), CircuitDBError, ["Nope"]),
    (lambda s: s.read_circuit_record("zzz"), ConfigError, ["zzz", "kept"]),
])
def test_bad_api_calls_are_named_errors_and_change_nothing(world, call, err, words):
    before = store_sum(world)
    with EmbeddedStore(world[0] / "db") as s:
        with pytest.raises(err) as info:
            call(s)
    for w in words:
        assert w in str(info.value), str(info.value)
    assert store_sum(world) == before


def _frames():
    g = mixed_graph("f", n_edges=30)
    return g.to_frames()


@pytest.mark.parametrize("change,words", [
    (lambda e: e.assign(weight=e["weight"] + 1j), ["weight", "real", "complex"]),
    (lambda e: e.assign(source=e["source"].astype(float) + 0.5), ["source", "integer"]),
    (lambda e: e.assign(channel=[256] * len(e)), ["channel code 256"]),
    (lambda e: e.assign(extra=1), ["unknown edge column", "extra"]),
    (lambda e: e.assign(weight=[True] * len(e)), ["weight", "real"]),
])
def test_from_frames_refuses_what_a_cast_would_change(change, words):
    nodes, edges = _frames()
    with pytest.raises(ConfigError) as info:
        AttributionGraph.from_frames(nodes, change(edges), {"id": "f"})
    for w in words:
        assert w in str(info.value), str(info.value)
