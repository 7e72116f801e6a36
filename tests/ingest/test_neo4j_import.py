"""`circuitdb export-neo4j-import`: CSV files in neo4j-admin's import format, consistent with the stored graphs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdb.cli import app
from circuitdb.errors import ConfigError
from circuitdb.ingest.neo4j_import import export_neo4j_import
from circuitdb.ingest.runner import run_job
from circuitdb.store.base import open_store
from ingest_fixtures import induction_job


def _read(folder: Path, name: str) -> tuple[list[str], list[list[str]]]:
    header = next(csv.reader(open(folder / f"{name}_header.csv", encoding="utf-8")))
    return header, list(csv.reader(open(folder / f"{name}.csv", encoding="utf-8")))


def test_export_matches_the_store(tmp_path: Path) -> None:
    run_job(induction_job(n=3), store=f"embedded:{tmp_path}/st")
    with open_store(f"embedded:{tmp_path}/st") as st:
        graphs = [st.read_graph(g) for g in st.list_graphs()["id"]]
        counts = export_neo4j_import(st, tmp_path / "imp")
        with pytest.raises(ConfigError, match="not empty"):
            export_neo4j_import(st, tmp_path / "imp")
    assert counts["graph"] == 3 and counts["node"] == sum(g.n_nodes for g in graphs)
    assert counts["attributes"] == sum(g.n_edges for g in graphs)
    gh, grows = _read(tmp_path / "imp", "graph")
    assert gh[0] == "sid:ID(Graph)" and "n_edges:long" in gh and "current:boolean" in gh
    nh, nrows = _read(tmp_path / "imp", "node")
    assert nh[0] == "uid:ID(Node)" and nh[-1] == ":LABEL"
    uids = {r[0] for r in nrows}
    assert len(uids) == len(nrows) and {r[-1] for r in nrows} == {"Node;Embed", "Node;Head", "Node;Logit"}
    eh, erows = _read(tmp_path / "imp", "attributes")
    assert eh[:2] == [":START_ID(Node)", ":END_ID(Node)"] and all(r[0] in uids and r[1] in uids for r in erows)
    uh, urows = _read(tmp_path / "imp", "unit")
    _, irows = _read(tmp_path / "imp", "instance_of")
    unit_ids = {r[0] for r in urows}
    assert len(unit_ids) == len(urows) == 8  # 8 heads, shared by the 3 graphs, written once
    assert len(irows) == 3 * 8 and all(r[0] in uids and r[1] in unit_ids for r in irows)
    # absent values are empty cells (NULL), e.g. a head node's feature
    feat = nh.index("feature:long")
    assert all(r[feat] == "" for r in nrows)


def test_cli(tmp_path: Path) -> None:
    run_job(induction_job(n=1), store=f"embedded:{tmp_path}/st")
    r = CliRunner().invoke(app, ["export-neo4j-import", str(tmp_path / "imp"), "--store", f"embedded:{tmp_path}/st"])
    assert r.exit_code == 0, r.output
    assert "1 graph" in r.output and (tmp_path / "imp" / "attributes.csv").is_file()
