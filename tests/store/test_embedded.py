"""EmbeddedStore (Ladybug) mechanics only: persistence and read-only opens, the factory, failures of the COPY
transaction (injected and from the engine), the prepared-statement cache, the file lock. Everything both stores do
(round trips, subgraphs, units, rewrites, ``run``, circuits) is in test_stores.py, run on both."""

from __future__ import annotations

import pytest
from both_stores import count, row_counts
from synthetic_graphs import mixed_graph

from circuitdb.errors import ConfigError, StoreError
from circuitdb.graph import AttributionGraph
from circuitdb.store import cypher as cy
from circuitdb.store import embedded as emb
from circuitdb.store.base import open_store
from circuitdb.store.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def graph() -> AttributionGraph:
    return mixed_graph("g-mixed")


@pytest.fixture()
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "db").connect()
    yield s
    s.close()


def test_persists_across_reopen(tmp_path, graph):
    with EmbeddedStore(tmp_path / "db") as s:
        s.write_graph(graph)
    with EmbeddedStore(tmp_path / "db", read_only=True) as s:
        assert s.read_graph(graph.id).diff(graph) == []
        with pytest.raises(StoreError, match="read-only"):
            s.write_graph(graph, graph_id="new")


def test_open_store_factory_and_missing_read_only(tmp_path):
    s = open_store(f"embedded:{tmp_path / 'x'}")
    assert isinstance(s, EmbeddedStore) and (tmp_path / "x" / emb.DB_FILE).exists()
    s.close()
    with pytest.raises(StoreError, match="no embedded store"):
        EmbeddedStore(tmp_path / "nothing", read_only=True).connect()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        EmbeddedStore(tmp_path / "file").connect()


@pytest.mark.parametrize("failing", [cy.LB_COPY_UNITS, cy.LB_COPY_NODES, cy.LB_COPY_EDGES, cy.LB_COPY_GRAPHS, cy.LB_FLIP])
def test_failure_mid_write_leaves_the_old_graph(store, graph, monkeypatch, failing):
    store.write_graph(graph)
    store.save_circuit("c", graph.id, ["A0.0@0"], method="m", params={}, scores={})
    before = row_counts(store)
    new = mixed_graph(graph.id, seed=9, n_edges=2000, model="other-model")  # new units too
    real_exec = EmbeddedStore._exec

    def boom(self, query, params=None):
        if query == failing:
            raise RuntimeError("injected failure")
        return real_exec(self, query, params)

    monkeypatch.setattr(EmbeddedStore, "_exec", boom)
    with pytest.raises(StoreError, match="injected failure"):
        store.write_graph(new)
    with pytest.raises(StoreError):  # a brand-new id leaves nothing behind either
        store.write_graph(new, graph_id="fresh")
    monkeypatch.setattr(EmbeddedStore, "_exec", real_exec)
    assert row_counts(store) == before
    assert store.read_graph(graph.id).diff(graph) == []
    assert not store.has_graph("fresh")
    assert count(store, "MATCH (u:Unit) WHERE u.model = $m RETURN count(u)", m="other-model") == 0
    assert store.read_circuit_record("c")["node_keys"] == ["A0.0@0"]
    # the store still works after the rollbacks, and the real rewrite succeeds
    store.write_graph(new)
    assert store.read_graph(graph.id).diff(new) == []


def test_failure_inside_the_engine_rolls_back(store, graph, monkeypatch):
    """Not a Python-level injection: the engine itself rejects the edge COPY (a dangling uid)."""
    store.write_graph(graph)
    before = row_counts(store)
    import pyarrow as pa

    real = emb.rw.edge_table

    def dangling(g, gid, uids=None):
        table = real(g, gid, uids)
        to = table.column("to").to_pylist()
        to[len(to) // 2] = "no-such-node"
        return table.set_column(1, "to", pa.array(to, pa.string()))

    monkeypatch.setattr(emb.rw, "edge_table", dangling)
    with pytest.raises(StoreError, match="no-such-node"):
        store.write_graph(mixed_graph(graph.id, seed=3))
    assert row_counts(store) == before
    assert store.read_graph(graph.id).diff(graph) == []


def test_repeated_writes_do_not_pin_memory(tmp_path):
    """Ladybug 0.22 caches each COPY's prepared statement with the pages it scanned; kept, five rewrites of a 20k-edge
    graph exhaust a 64 MiB buffer pool ("buffer pool is full")."""
    g = mixed_graph("g-mem", n_edges=20_000)
    with EmbeddedStore(tmp_path / "db", buffer_pool_size=64 << 20) as s:
        for i in range(5):
            s.write_graph(g, graph_id=f"g{i % 2}")
        assert s.read_graph("g1").diff(g, meta=False) == []


def test_a_store_locked_by_another_process_names_the_path(tmp_path):
    import subprocess
    import sys

    EmbeddedStore(tmp_path / "db").connect().close()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from circuitdb.store.embedded import "
                               "EmbeddedStore; s = EmbeddedStore(sys.argv[1]).connect(); print('open', flush=True); "
                               "time.sleep(60)", str(tmp_path / "db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match=r"(?s)graphs\.lbdb.*locked by another process.*read-only"):
            EmbeddedStore(tmp_path / "db").connect()
    finally:
        holder.kill()
        holder.wait()


def test_a_store_from_before_circuit_edge_memberships_is_upgraded_on_open(tmp_path):
    """INCLUDES.edges (a circuit's edge membership) is added to an older store when it is opened writable; its old
    circuits (links without edges) still read, re-link on a rewrite, and list no edges until saved again."""
    import ladybug

    from circuitdb.circuits.query import query

    (tmp_path / "db").mkdir()
    db = ladybug.Database(str(tmp_path / "db" / emb.DB_FILE))
    conn = ladybug.Connection(db)
    for stmt in cy.LB_SCHEMA:
        conn.execute(stmt.replace(", edges STRING[])", ")"))
    assert "edges" not in conn.execute(cy.LB_INCLUDES_COLUMNS).get_as_df()["name"].tolist()
    del conn, db
    g = mixed_graph("old", n_edges=300)
    with EmbeddedStore(tmp_path / "db") as s:
        assert "edges" in s.run(cy.LB_INCLUDES_COLUMNS)["name"].tolist()
        s.write_graph(g)
        s.save_circuit("c", "old", ["A0.0@0", "L:7@4"], method="m", params={}, scores={})
        s.run("MATCH (:Circuit)-[i:INCLUDES]->() SET i.edges = NULL", write=True)  # as an older version left it
        assert query(s, "circuit_edges", graph_id="old", name="c").empty
        s.write_graph(g)  # re-linked
        assert s.read_circuit_record("c")["node_keys"] == ["A0.0@0", "L:7@4"]
