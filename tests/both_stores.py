"""The both-stores test suites: one test, run on the embedded store and on the live Neo4j server.

``STORE_KINDS`` parametrises a test (or a module-scoped ``store_kind`` fixture, so pytest runs a module's tests
store by store); :func:`open_empty_store` gives each test an empty store, :func:`cached_store` a store filled once
and shared by read-only tests. The Neo4j side uses the session server's database (``neo4j_database`` in
tests/conftest.py), emptied between tests.
"""

from __future__ import annotations

import pytest

#: the store kinds every store test and every named query runs on; the Neo4j side is marked ``neo4j``
STORE_KINDS = ("embedded", pytest.param("neo4j", marks=pytest.mark.neo4j))


class Neo4jDatabase:
    """The session's Neo4j database as the both-stores suites share it: one driver, and what it holds now.

    Isolation is the cheapest that is correct on Community's single ``neo4j`` database: :meth:`empty` deletes every
    node (``DETACH DELETE`` in batches; constraints and indexes stay, so no test pays for the schema again). Only
    the server this session started is emptied — a server named by ``CIRCUITDB_NEO4J_URI`` only with
    ``CIRCUITDB_NEO4J_WIPE=1``; otherwise the Neo4j side of these suites skips."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.holds: object = None  # a token for what a cached fixture wrote (None: unknown or empty)

    def empty(self) -> None:
        with self.driver.session() as s:
            s.run("MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()
        self.holds = None

    def store(self, **kw):
        from circuitdb.store.neo4j import Neo4jStore

        return Neo4jStore(driver=self.driver, **kw).connect()  # an injected driver: close() leaves it open


#: chunk size of the Neo4j stores of the parametrised suites: the 6,000-edge test graphs span several chunks
SUITE_BATCH_SIZE = 2500


def open_empty_store(kind: str, request, path):
    """An empty, connected store of ``kind`` (``embedded``: a new database under ``path``; ``neo4j``: the session
    database, emptied)."""
    if kind == "embedded":
        from circuitdb.store.embedded import EmbeddedStore

        return EmbeddedStore(path / "db").connect()
    db = request.getfixturevalue("neo4j_database")
    db.empty()
    return db.store(batch_size=SUITE_BATCH_SIZE)


_EMBEDDED_CACHE: dict[object, object] = {}


def cached_store(kind: str, request, token: object, path, fill):
    """A store holding what ``fill(store)`` writes, written once per ``token`` while nothing emptied it since
    (embedded: a database per token under ``path``; neo4j: rewritten after a test emptied the shared database)."""
    if kind == "embedded":
        if token not in _EMBEDDED_CACHE:
            for old in _EMBEDDED_CACHE.values():  # one module's stores at a time (tests run module by module)
                old.close()
            _EMBEDDED_CACHE.clear()
            _EMBEDDED_CACHE[token] = open_empty_store(kind, request, path)
            fill(_EMBEDDED_CACHE[token])
        return _EMBEDDED_CACHE[token]
    db = request.getfixturevalue("neo4j_database")
    if db.holds != token:
        store = open_empty_store(kind, request, path)
        fill(store)
        db.holds = token
    return db.store(batch_size=SUITE_BATCH_SIZE)


def count(store, cypher: str, **params) -> int:
    """The single value ``cypher`` returns (a count)."""
    return int(store.run(cypher, params).iat[0, 0])


def row_counts(store) -> tuple[int, ...]:
    """Nodes, edges, units, instance links, graph rows, circuits: what a failed write must leave unchanged."""
    return tuple(count(store, q) for q in (
        "MATCH (n:Node) RETURN count(n)", "MATCH ()-[r:ATTRIBUTES]->() RETURN count(r)",
        "MATCH (u:Unit) RETURN count(u)", "MATCH ()-[r:INSTANCE_OF]->() RETURN count(r)",
        "MATCH (g:Graph) RETURN count(g)", "MATCH (c:Circuit) RETURN count(c)"))
