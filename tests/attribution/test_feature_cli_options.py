"""``circuitdb attribute --granularity feature`` with ``--device``, ``--prune`` and ``--adjacency``."""

from __future__ import annotations

from typer.testing import CliRunner

import circuitdb
from circuitdb.cli import app
from circuitdb.errors import ConfigError

runner = CliRunner()
PROMPT = "When Kate and Diana went to the office , Diana gave a letter to"


def test_device_prune_and_adjacency_options(tmp_path) -> None:  # noqa: ANN001
    uri = f"embedded:{tmp_path / 'db'}"
    common = ["attribute", "--model", "toy-ioi", "--granularity", "feature", "--prompt", PROMPT, "--no-heads",
              "--max-feature-nodes", "100", "--no-progress", "--store", uri, "--device", "cpu"]
    res = runner.invoke(app, [*common, "--graph-id", "pruned", "--adjacency", str(tmp_path / "full.npz")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*common, "--graph-id", "raw", "--prune", "none"])
    assert res.exit_code == 0, res.output
    with circuitdb.open_store(uri) as st:
        pruned, raw = st.read_graph("pruned"), st.read_graph("raw")
    assert pruned.meta["params"]["device"] == "cpu" and pruned.meta["pruning"]["method"] == "influence"
    assert pruned.meta["pruning"]["unpruned_edges"] == raw.n_edges > pruned.n_edges
    assert pruned.meta["adjacency"]["n_edges"] == raw.n_edges and (tmp_path / "full.npz").is_file()
    res = runner.invoke(app, [*common, "--prune", "topn"])
    assert isinstance(res.exception, ConfigError) and "--prune" in str(res.exception)
