"""Neo4jStore against a live Neo4j 5 server: ``$CIRCUITDB_NEO4J_URI`` or the local server the ``neo4j_server`` session
fixture starts (tests/conftest.py; skipped where Java/Maven are missing, except under CI=true).

Graph ids start with ``circuitdb-test-<random>``; everything written is deleted afterwards. The store's chunks are
tiny (``batch_size=4``) so every graph here spans many chunk transactions. These are the Neo4j-only mechanics
(chunks, kills, gc, concurrent writer processes, access modes); what both stores do is in test_stores.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from neo4j_double import live_driver, sample_graph
from neo4j_writer import feature_graph

from circuitdb.errors import GraphNotFoundError, QueryError, StoreError
from circuitdb.store import versions as vs
from circuitdb.store.neo4j import READ, WRITE, Neo4jStore

pytestmark = [pytest.mark.neo4j, pytest.mark.usefixtures("neo4j_server")]
WRITER = Path(__file__).with_name("neo4j_writer.py")


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


def versions_of(store, graph_id: str) -> list:
    return store.run("MATCH (g:Graph {id: $g}) RETURN g.sid AS sid, g.current AS current ORDER BY g.seq",
                     {"g": graph_id}).to_dict("records")


def node_count(store, graph_id: str) -> int:
    return int(store.run("MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", {"g": graph_id})["n"].iat[0])


def test_round_trip_labels_names_nulls_and_rewrite(store, gid) -> None:
    g = sample_graph(gid)
    store.write_graph(g)
    store.write_graph(g)
    back = store.read_graph(gid)
    assert g.diff(back) == [] and back.keys.tolist() == g.keys.tolist()
    row = store.list_graphs().set_index("id").loc[gid]
    assert (row["n_nodes"], row["n_edges"]) == (g.n_nodes, g.n_edges)
    assert node_count(store, gid) == g.n_nodes  # the superseded version is collected
    assert [v["current"] for v in versions_of(store, gid)] == [True]
    heads = store.run("MATCH (n:Head {graph_id: $g}) RETURN n.key AS key ORDER BY key", {"g": gid})["key"].tolist()
    assert heads == sorted(g.keys[g.nodes["kind"] == "head"].tolist())
    embed = store.run("MATCH (n:Embed {graph_id: $g}) RETURN n.name AS name, n.head AS head, n.feature AS feature, "
                      "n.dictionary AS dictionary, n.activation AS activation ORDER BY name", {"g": gid})
    assert embed["head"].isna().all() and embed["feature"].isna().all() and embed["dictionary"].isna().all()
    assert embed["activation"].isna().all()
    names = store.run("MATCH (n:Node {graph_id: $g}) RETURN n.name AS name", {"g": gid})["name"].tolist()
    assert "L:' France'@1" in names or any(n.startswith("L:' France'") for n in names), names
    assert store.delete_graph(gid) is True and store.delete_graph(gid) is False
    with pytest.raises(GraphNotFoundError):
        store.read_graph(gid)
    assert node_count(store, gid) == 0


def test_readers_see_the_old_version_while_a_chunked_write_runs_and_after_it_fails(store, gid, monkeypatch) -> None:
    old = sample_graph(gid)
    store.write_graph(old)
    other = Neo4jStore().connect()
    seen: list[int] = []

    def hook(name: str) -> None:
        if name == "neo4j-chunk":
            assert old.diff(other.read_graph(gid)) == []  # another reader, mid-write: the old complete graph
            assert other.list_graphs().set_index("id").loc[gid, "n_edges"] == old.n_edges
            seen.append(1)
            if len(seen) == 5:
                raise RuntimeError("injected failure after five chunks")

    monkeypatch.setattr(vs, "phase_hook", hook)
    with pytest.raises(RuntimeError, match="injected"):
        store.write_graph(sample_graph(gid, scale=5.0))
    monkeypatch.setattr(vs, "phase_hook", None)
    assert old.diff(store.read_graph(gid)) == []
    assert len(versions_of(store, gid)) == 2  # the incomplete version waits for gc (it might be another writer's)
    assert store.gc(lease_seconds=3600) == 0
    assert store.gc(lease_seconds=0) == 1
    assert node_count(store, gid) == old.n_nodes and old.diff(store.read_graph(gid)) == []
    other.close()


def test_killed_writer_leaves_no_visible_partial_graph(store, gid) -> None:
    """A writer process SIGKILLed in the middle of its chunk transactions, at several points."""
    old = feature_graph(gid, gid, 30, seed=1)
    store.write_graph(old)
    env = {**os.environ, "CIRCUITDB_TEST_PHASE_PAUSE": "0.05"}
    for kill_after in (1, 7, 20):
        proc = subprocess.Popen([sys.executable, str(WRITER), gid, gid, "30", "5", str(kill_after)],
                                stdout=subprocess.PIPE, text=True, env=env)
        chunks = 0
        for line in proc.stdout:
            chunks += line.strip() == "neo4j-chunk"
            if chunks == kill_after:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(60)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, f"the writer finished before chunk {kill_after}"
        assert store.list_graphs().set_index("id").loc[gid, "n_edges"] == old.n_edges
        assert old.diff(store.read_graph(gid)) == []
        assert store.complete_ids([gid]) == {gid}
    assert store.gc(lease_seconds=0) == 3
    assert node_count(store, gid) == old.n_nodes and len(versions_of(store, gid)) == 1


def test_two_writer_processes_sharing_units_both_finish_complete(store, gid) -> None:
    env = dict(os.environ)
    ids = [f"{gid}-a", f"{gid}-b"]
    procs = [subprocess.Popen([sys.executable, str(WRITER), i, gid, "60", "7", str(s)], stdout=subprocess.DEVNULL,
                              env=env) for s, i in enumerate(ids)]
    assert [p.wait(300) for p in procs] == [0, 0]
    for s, i in enumerate(ids):
        assert feature_graph(i, gid, 60, seed=s).diff(store.read_graph(i), meta=False) == []
    units = store.run("MATCH (u:Unit)<-[:INSTANCE_OF]-(n:Node) WHERE n.graph_id IN $ids "
                      "RETURN u.uid AS uid, count(DISTINCT n.graph_id) AS n", {"ids": ids})
    assert len(units) == 60 and (units["n"] == 2).all()  # one unit per feature, shared, none doubled


def test_damaged_graph_is_an_error_naming_it(store, gid) -> None:
    store.write_graph(sample_graph(gid))
    store.run("MATCH (:Node {graph_id: $g})-[e:ATTRIBUTES]->() WITH e LIMIT 1 DELETE e", {"g": gid}, write=True)
    with pytest.raises(StoreError, match=gid):
        store.read_graph(gid)


def test_read_only_run_is_refused_by_us_and_by_the_server(store, gid) -> None:
    with pytest.raises(QueryError, match="write=True"):
        store.run("CREATE (:Node {uid: $u})", {"u": gid})
    with pytest.raises(StoreError), store._errors("test write in", StoreError):  # the server's own wall
        with store._session(READ) as s:
            s.execute_read(lambda tx: tx.run("CREATE (:Node {uid: $u, graph_id: $u})", {"u": gid}).consume())
    assert store.run("MATCH (n:Node {uid: $u}) RETURN count(n) AS n", {"u": gid})["n"].iat[0] == 0


def test_a_reader_opens_only_read_sessions(store, gid, neo4j_server) -> None:
    """connect / list / read / query / complete_ids never open a WRITE session, so a user without write or schema
    rights can use them. (Neo4j Community has no roles to make such a user: every user may write; READ access mode
    is what the server enforces here, checked by the previous test.)"""
    g = sample_graph(gid)
    store.write_graph(g)
    driver = live_driver(neo4j_server)
    reader = Neo4jStore(driver=driver).connect()
    reader.list_graphs()
    assert g.diff(reader.read_graph(gid)) == []
    reader.read_subgraph(gid, min_abs_weight=0.1, kinds=["head"])
    reader.has_graph(gid)
    reader.complete_ids([gid])
    reader.list_circuits()
    reader.run("MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", {"g": gid})
    assert driver.sessions and set(driver.sessions) == {READ}
    assert WRITE not in {c.mode for c in driver.calls}
    driver.close()


def _db_checksum(store) -> str:
    """Every node (labels, properties) and relationship (type, endpoints' properties, properties) of the database."""
    import hashlib
    import json

    h = hashlib.sha256()
    for q in ("MATCH (n) RETURN labels(n) AS l, properties(n) AS p",
              "MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(a) AS a, properties(b) AS b, properties(r) AS p"):
        for row in sorted(json.dumps(r, sort_keys=True, default=str) for r in store.run(q).to_dict("records")):
            h.update(row.encode())
    return h.hexdigest()


def test_the_hostile_queries_of_the_embedded_suite_are_refused_here_too(store, gid, tmp_path) -> None:
    """tests/store/test_adversarial_queries.py's hostile texts through ``Neo4jStore.run``: each one a QueryError,
    the database unchanged, no file written."""
    from test_adversarial_queries import HOSTILE

    store.write_graph(sample_graph(gid))
    store.save_circuit("c", gid, ["A0.1@1", "L:5@1"], method="m", params={}, scores={})
    out = tmp_path / "leak"
    before = _db_checksum(store)
    for text in HOSTILE:
        with pytest.raises(QueryError):
            store.run(text.replace("{out}", str(out)))
    assert _db_checksum(store) == before and not out.exists()
