"""Recording the Cypher Neo4jStore sends to a live server, and the graphs the Neo4j tests share.

``RecordingDriver(real_driver)`` passes every call through to a real ``neo4j`` driver (the local server of
``tests/conftest.py``'s ``neo4j_server`` fixture) and logs each statement in ``driver.calls`` (query, parameters,
access mode) and the module-wide :data:`EMITTED`, which the grammar test lints with the parameter names actually
sent. (It replaced an in-memory emulation of our statements once a real Neo4j 5.26 ran in the tests.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

EMITTED: list[tuple[str, dict[str, Any]]] = []


@dataclass
class Call:
    query: str
    params: dict[str, Any]
    mode: str  # "READ" / "WRITE"


class _Tx:
    def __init__(self, tx: Any, log: Callable[[str, dict[str, Any]], None]) -> None:
        self._tx, self._log = tx, log

    def run(self, query: str, parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
        self._log(query, dict(parameters or {}, **kw))
        return self._tx.run(query, parameters, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class _Session:
    def __init__(self, session: Any, driver: "RecordingDriver", mode: str) -> None:
        self._s, self._d, self.mode = session, driver, mode

    def _log(self, query: str, params: dict[str, Any]) -> None:
        self._d.calls.append(Call(query, params, self.mode))
        EMITTED.append((query, params))

    def run(self, query: str, parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
        self._log(query, dict(parameters or {}, **kw))
        return self._s.run(query, parameters, **kw)

    def execute_read(self, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return self._s.execute_read(lambda tx, *x, **y: fn(_Tx(tx, self._log), *x, **y), *a, **kw)

    def execute_write(self, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return self._s.execute_write(lambda tx, *x, **y: fn(_Tx(tx, self._log), *x, **y), *a, **kw)

    def __enter__(self) -> "_Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._s.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


class RecordingDriver:
    """A real driver whose sessions log what they run; ``sessions`` lists the access mode of each one opened."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self.calls: list[Call] = []
        self.sessions: list[str] = []

    def session(self, database: str | None = None, default_access_mode: str = "WRITE", **kw: Any) -> _Session:
        self.sessions.append(default_access_mode)
        return _Session(self._driver.session(database=database, default_access_mode=default_access_mode, **kw),
                        self, default_access_mode)

    def verify_connectivity(self) -> None:
        self._driver.verify_connectivity()

    def close(self) -> None:
        self._driver.close()


def live_driver(neo4j_server: dict[str, str]) -> RecordingDriver:
    import neo4j

    return RecordingDriver(neo4j.GraphDatabase.driver(
        neo4j_server["CIRCUITDB_NEO4J_URI"], notifications_min_severity="OFF",
        auth=(neo4j_server["CIRCUITDB_NEO4J_USER"], neo4j_server["CIRCUITDB_NEO4J_PASSWORD"])))


# ---------------------------------------------------------------------- fixtures shared by the Neo4j tests
NASTY_ID = "g'1\"} //x\\`) DETACH DELETE n //"


def sample_graph(graph_id: str = "sample", *, model: str = "toy", scale: float = 1.0):
    """Every node kind, per-position keys, NaN and finite optional floats, q/k/v channels, quotes in labels."""
    import numpy as np
    import pandas as pd

    from circuitdb.graph import AttributionGraph

    nodes = pd.DataFrame({
        "key": ["E@0", "E@1", "A0.1@1", "A0.1@0", "M0@1", "F0:3@1", "ERR0@1", "A1.0@1", "L:5@1"],
        "kind": ["embed", "embed", "head", "head", "mlp", "feature", "error", "head", "logit"],
        "layer": [-1, -1, 0, 0, 0, 0, 0, 1, 2],
        "head": [-1, -1, 1, 1, -1, -1, -1, 0, -1],
        "pos": [0, 1, 1, 0, 1, 1, 1, 1, 1],
        "feature": [-1, -1, -1, -1, -1, 3, -1, -1, -1],
        "token": [10, 11, -1, -1, -1, -1, -1, -1, 5],
        "dictionary": ["", "", "", "", "", "tc'0", "", "", ""],
        "label": ["the", "cat", "", "", "", "a \"quoted\" } // label", "", "", " France"],
        "activation": [np.nan, np.nan, 1.5, 0.5, np.nan, 0.25, np.nan, 2.0, np.nan],
        "probability": [np.nan] * 8 + [0.75],
    })
    e = [(0, 3, 0.4, 3), (1, 2, 0.9, 1), (0, 2, -0.2, 2), (3, 2, 0.05, 2), (2, 4, 1.2, 0), (4, 5, -0.7, 0),
         (5, 7, 0.6, 0), (6, 7, 0.01, 0), (2, 7, -1.1, 1), (7, 8, 2.5, 0), (5, 8, 0.3, 0), (1, 8, -0.02, 0)]
    src, dst, w, ch = (np.array(c) for c in zip(*e))
    return AttributionGraph(nodes, src, dst, w * scale, ch, {"id": graph_id, "model": model, "granularity": "feature",
                                                           "method": "test", "prompt": "the cat"})


#: the ad-hoc texts exercise() passes to run() (everything else Neo4jStore sends comes from circuitdb.store.cypher)
EXERCISE_READ = "MATCH (n:Node {graph_id: $graph_id}) RETURN n.key AS key ORDER BY key"
EXERCISE_WRITE = "MATCH (n:Node {uid: $uid}) SET n.label = $label"
EXERCISE_REFUSED = "MATCH (n:Node) DETACH DELETE n"


def exercise(store) -> None:
    """Call every public method of a connected Neo4jStore (the grammar test lints what this emits)."""
    import pytest

    from circuitdb.errors import ConfigError, GraphNotFoundError, QueryError

    store.init()
    g = sample_graph(NASTY_ID)
    store.write_graph(g)
    store.write_graph(g)  # the replace path
    store.write_graphs([sample_graph(NASTY_ID + "-2"), sample_graph(NASTY_ID + "-3")])
    assert store.complete_ids([NASTY_ID + "-2", "nope"]) == {NASTY_ID + "-2"}
    store.read_graph(NASTY_ID)
    store.read_subgraph(NASTY_ID, min_abs_weight=0.1, kinds=["head", "logit"], layers=[0, 1, 2], positions=[1])
    store.list_graphs()
    store.has_graph(NASTY_ID)
    store.save_circuit("c'1", NASTY_ID, ["A0.1@1", "L:5@1"], method="topn", params={"n": 2}, scores={"f": 1.0})
    with pytest.raises(ConfigError):
        store.save_circuit("bad", NASTY_ID, ["A0.1@1", "nope"], method="topn", params={}, scores={})
    store.list_circuits()
    store.list_circuits(NASTY_ID)
    store.read_circuit_record("c'1", NASTY_ID)
    store.run(EXERCISE_READ, {"graph_id": NASTY_ID})
    with pytest.raises(QueryError):
        store.run(EXERCISE_REFUSED)
    store.run(EXERCISE_WRITE, {"uid": NASTY_ID + "/E@0", "label": "x"}, write=True)
    store.write_graph(g)  # a rewrite re-links the circuit
    store.delete_graph(NASTY_ID)
    store.delete_graph(NASTY_ID + "-2")
    store.delete_graph(NASTY_ID + "-3")
    store.gc(lease_seconds=0)
    with pytest.raises(GraphNotFoundError):
        store.read_graph(NASTY_ID)
    assert store.delete_graph(NASTY_ID) is False
