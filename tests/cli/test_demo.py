"""``circuitdb demo`` (what ``make demo`` runs): the newcomer's path, end to end on the embedded store, offline. It
must finish, say what it did, and leave a store holding what it says it stored."""

from __future__ import annotations

from typer.testing import CliRunner

from circuitdb.cli import app
from circuitdb.store.base import open_store


def test_demo_runs_end_to_end_and_stores_what_it_says(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # the pictures go to ./circuitdb-demo
    uri = f"embedded:{tmp_path / 'db'}"
    res = CliRunner().invoke(app, ["demo", "--store", uri, "--n", "16"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # rich wraps long lines
    for step in range(1, 8):
        assert f"{step}. " in out
    assert "duplicate_token" in out and "s_inhibition" in out and "held-out prompts" in out
    assert "done in" in out and "entries (influence pruning before storing" in out and "head parts carry" in out
    assert (tmp_path / "circuitdb-demo" / "induction-circuit.png").stat().st_size > 1000
    assert (tmp_path / "circuitdb-demo" / "ioi-feature-circuit.html").stat().st_size > 1000
    with open_store(uri) as st:
        ids = set(st.list_graphs()["id"])
        assert {"demo-induction", "demo-ioi-features", "demo-ioi-full"} <= ids and len(ids) >= 10  # + 8 checkpoint graphs
        assert "demo-induction-circuit" in set(st.list_circuits("demo-induction")["name"])
        fg = st.read_graph("demo-ioi-features")
        assert (fg.nodes["kind"] == "head").any() and fg.meta["head_decomposition"]["kept_parts"] > 0
