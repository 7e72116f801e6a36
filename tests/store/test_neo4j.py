"""Neo4jStore configuration (no server) and, against the live server, empty graphs, errors and parity with the
embedded store. The behaviour of writes and reads on a real server is in test_neo4j_live.py."""

from __future__ import annotations

import uuid

import neo4j
import pytest
from neo4j_double import NASTY_ID, live_driver, sample_graph

from circuitdb.errors import ConfigError, StoreError
from circuitdb.store.neo4j import READ, WRITE, Neo4jStore

ENV = ("CIRCUITDB_NEO4J_URI", "CIRCUITDB_NEO4J_USER", "CIRCUITDB_NEO4J_PASSWORD", "CIRCUITDB_NEO4J_DATABASE")


class _NoDriver:
    def __init__(self) -> None:
        self.closed = False
        self.events: list[str] = []

    def verify_connectivity(self) -> None:
        self.events.append("verify_connectivity")

    def session(self, **kw):  # pragma: no cover - connect() opens none
        raise AssertionError(f"connect() opened a session {kw}")

    def close(self) -> None:
        self.closed = True


def test_constructor_does_no_io_and_connect_writes_nothing() -> None:
    d = _NoDriver()
    store = Neo4jStore(driver=d)
    assert d.events == []
    store.connect()
    store.connect()
    assert d.events == ["verify_connectivity"]  # no schema, no session: a read-only user can connect


def test_env_config_and_arguments_override(monkeypatch) -> None:
    monkeypatch.setenv("CIRCUITDB_NEO4J_URI", "neo4j://db.example:7687")
    monkeypatch.setenv("CIRCUITDB_NEO4J_USER", "alice")
    monkeypatch.setenv("CIRCUITDB_NEO4J_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("CIRCUITDB_NEO4J_DATABASE", "graphs")
    s = Neo4jStore()
    assert (s.uri, s.user, s.database) == ("neo4j://db.example:7687", "alice", "graphs")
    assert "s3cret-pw" not in repr(s)
    s2 = Neo4jStore("bolt://other:7687", user="bob", password="pw2", database="neo4j")
    assert (s2.uri, s2.user, s2.database) == ("bolt://other:7687", "bob", "neo4j")
    made = {}

    def fake_driver(uri, auth=None, **kw):
        made.update(uri=uri, auth=auth)
        return _NoDriver()

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", fake_driver)
    s.connect()
    assert made == {"uri": "neo4j://db.example:7687", "auth": ("alice", "s3cret-pw")}
    s.close()
    assert s._driver is None


def test_missing_uri_and_bad_batch_size_are_config_errors(monkeypatch) -> None:
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="CIRCUITDB_NEO4J_URI"):
        Neo4jStore()
    for bad in (0, -5, "10", True, 2.5):
        with pytest.raises(ConfigError, match="batch_size"):
            Neo4jStore(driver=_NoDriver(), batch_size=bad)
    with pytest.raises(ConfigError, match="bad Neo4j URI"):
        Neo4jStore("neo4j://host:notaport").connect()


def test_injected_driver_is_not_closed_by_store() -> None:
    d = _NoDriver()
    Neo4jStore(driver=d).connect().close()
    assert not d.closed


def test_access_mode_constants_match_driver() -> None:
    assert (READ, WRITE) == (neo4j.READ_ACCESS, neo4j.WRITE_ACCESS)


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        Neo4jStore("bolt://127.0.0.1:9", password="x-secret").connect()


# ---------------------------------------------------------------------- live
@pytest.mark.neo4j
def test_same_answers_as_embedded_store(tmp_path, neo4j_server) -> None:
    pytest.importorskip("ladybug")
    from circuitdb.store.embedded import EmbeddedStore

    gid = f"circuitdb-test-{uuid.uuid4().hex[:10]}{NASTY_ID}"
    g = sample_graph(gid)
    neo = Neo4jStore(driver=live_driver(neo4j_server), batch_size=3).connect()
    with EmbeddedStore(str(tmp_path / "db")) as emb:
        for s in (neo, emb):
            s.write_graph(g)
            s.save_circuit("c", gid, ["L:5@1", "A0.1@1"], method="m", params={"a": [1, 2]}, scores={"s": 0.5})
        assert neo.read_graph(gid).diff(emb.read_graph(gid)) == []
        f = dict(min_abs_weight=0.25, kinds=["head", "feature", "logit", "mlp"], positions=[1])
        assert neo.read_subgraph(gid, **f).diff(emb.read_subgraph(gid, **f)) == []
        listed = neo.list_graphs().set_index("id").loc[[gid]].reset_index().drop(columns="created_at")
        emb_listed = emb.list_graphs().drop(columns="created_at")
        nulls = [listed.astype(object).where(listed.notna(), None), emb_listed.astype(object).where(emb_listed.notna(),
                                                                                                   None)]
        assert nulls[0].to_dict("records") == nulls[1].to_dict("records")  # absent = NULL in both
        a, b = neo.read_circuit_record("c", gid), emb.read_circuit_record("c", gid)
        assert {k: v for k, v in a.items() if k not in ("created_at", "edges")} == \
            {k: v for k, v in b.items() if k not in ("created_at", "edges")}
    neo.delete_graph(gid)
    neo._driver.close()
