"""Neo4jStore against a live Neo4j 5 server: ``$CIRCUITDB_NEO4J_URI`` or the local server the ``neo4j_server`` session
fixture starts (tests/conftest.py; skipped where Java/Maven are missing, except under CI=true).

Graph ids start with ``circuitdb-test-<random>``; everything written is deleted afterwards.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from neo4j_double import NASTY_ID, sample_graph

from circuitdb.errors import GraphNotFoundError, QueryError, StoreError
from circuitdb.store import rows as rw
from circuitdb.store.neo4j import READ, Neo4jStore

pytestmark = [
    pytest.mark.neo4j,
    pytest.mark.usefixtures("neo4j_server"),
]


@pytest.fixture(scope="module")
def store(neo4j_server):
    s = Neo4jStore(batch_size=4).connect()
    yield s
    s.close()


@pytest.fixture
def gid(store):
    prefix = f"circuitdb-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for graph_id in store.list_graphs()["id"]:
        if graph_id.startswith(prefix):
            store.delete_graph(graph_id)


def test_round_trip_idempotence_and_delete(store, gid) -> None:
    g = sample_graph(gid)
    store.write_graph(g)
    store.write_graph(g)
    back = store.read_graph(gid)
    assert g.diff(back) == [] and back.keys.tolist() == g.keys.tolist()
    row = store.list_graphs().set_index("id").loc[gid]
    assert (row["n_nodes"], row["n_edges"]) == (g.n_nodes, g.n_edges)
    n = store.run("MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", {"g": gid})["n"].iat[0]
    assert n == g.n_nodes
    heads = store.run("MATCH (n:Head {graph_id: $g}) RETURN n.key AS key ORDER BY key", {"g": gid})["key"].tolist()
    assert heads == sorted(g.keys[g.nodes["kind"] == "head"].tolist())
    assert store.delete_graph(gid) is True and store.delete_graph(gid) is False
    with pytest.raises(GraphNotFoundError):
        store.read_graph(gid)


def test_nasty_ids_round_trip(store, gid) -> None:
    graph_id = gid + NASTY_ID
    g = sample_graph(graph_id)
    store.write_graph(g)
    assert g.diff(store.read_graph(graph_id)) == []
    assert store.delete_graph(graph_id)


def test_failure_mid_write_keeps_old_graph(store, gid, monkeypatch) -> None:
    old = sample_graph(gid)
    store.write_graph(old)
    real = rw.edge_row_batches

    def failing(graph, size, graph_id=None):
        it = real(graph, size, graph_id)
        yield next(it)
        raise RuntimeError("injected failure after the first edge batch")

    monkeypatch.setattr(rw, "edge_row_batches", failing)
    with pytest.raises(RuntimeError, match="injected"):
        store.write_graph(sample_graph(gid, scale=5.0))
    monkeypatch.setattr(rw, "edge_row_batches", real)
    assert old.diff(store.read_graph(gid)) == []


def test_subgraph_matches_ground_truth(store, gid) -> None:
    g = sample_graph(gid)
    store.write_graph(g)
    f = dict(min_abs_weight=0.25, kinds=["head", "feature", "logit", "mlp"], positions=[1])
    ok = g.nodes["kind"].isin(f["kinds"]).to_numpy() & g.nodes["pos"].isin(f["positions"]).to_numpy()
    emask = (g.abs_weight >= f["min_abs_weight"]) & ok[g.src] & ok[g.dst]
    touched = np.zeros(g.n_nodes, bool)
    touched[g.src[emask]] = touched[g.dst[emask]] = True
    assert g.subgraph(edge_mask=emask, node_mask=touched).diff(store.read_subgraph(gid, **f), meta=False) == []


def test_units_and_circuits(store, gid) -> None:
    store.write_graph(sample_graph(gid + "-a", model=gid))
    store.write_graph(sample_graph(gid + "-b", model=gid))
    shared = store.run("MATCH (u:Unit {uid: $u})<-[:INSTANCE_OF]-(n:Node) RETURN count(DISTINCT n.graph_id) AS n",
                       {"u": f"{gid}/A0.1"})
    assert shared["n"].iat[0] == 2
    store.save_circuit("c", gid + "-a", ["A0.1@1", "L:5@1"], method="m", params={"k": 1}, scores={})
    assert store.read_circuit_record("c", gid + "-a")["node_keys"] == ["A0.1@1", "L:5@1"]
    store.delete_graph(gid + "-a")
    store.delete_graph(gid + "-b")
    assert store.run("MATCH (u:Unit) WHERE u.model = $m RETURN count(u) AS n", {"m": gid})["n"].iat[0] == 0


def test_read_only_run_is_refused_by_us_and_by_the_server(store, gid) -> None:
    with pytest.raises(QueryError, match="write=True"):
        store.run("CREATE (:Node {uid: $u})", {"u": gid})
    with pytest.raises(StoreError), store._errors("test write in", StoreError):  # the server's own wall
        with store._session(READ) as s:
            s.execute_read(lambda tx: tx.run("CREATE (:Node {uid: $u, graph_id: $u})", {"u": gid}).consume())
    assert store.run("MATCH (n:Node {uid: $u}) RETURN count(n) AS n", {"u": gid})["n"].iat[0] == 0
