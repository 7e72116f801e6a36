"""All Cypher text circuitdb emits (outside ``queries/*.cypher``).

Values always go in as ``$parameters``. An identifier that must be interpolated (a table name in a ``COPY``) passes
:func:`quote_ident`. Sections: ``# schema (embedded)`` (Ladybug DDL and bulk COPY), ``# portable reads (both
stores)`` (run unchanged on Ladybug and Neo4j), ``# Neo4j writes`` (constraints, batched ``UNWIND $rows`` writes).
"""

from __future__ import annotations

import re

from circuitdb.errors import QueryError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_ident(name: str) -> str:
    """The one quoting helper for interpolated identifiers: a plain identifier, backquoted; anything else refused."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise QueryError(f"identifier {name!r} is not a plain name (letters, digits, underscore)")
    return f"`{name}`"


# ====================================================================== schema (embedded)
# Used by circuitdb.store.embedded.EmbeddedStore (Ladybug 0.22, a Kuzu fork): typed tables, COPY bulk loads, and
# the embedded store's own writes. Column order of each table = the column order of the frames COPY reads
# (rows.NODE_PROPS, rows.UNIT_PROPS; rel frames: from, to, then the properties).

#: bump when the embedded tables change; a store of another version is refused on open (StoreError)
LB_SCHEMA_VERSION = 2

LB_SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Graph(sid STRING PRIMARY KEY, id STRING, current BOOLEAN, seq INT64, "
    "written_at STRING, model STRING, granularity STRING, method STRING, metric STRING, prompt STRING, meta STRING, "
    "n_nodes INT64, n_edges INT64, created_at STRING, schema_version INT64, circuitdb_version STRING, step INT64)",
    "CREATE NODE TABLE IF NOT EXISTS Node(uid STRING PRIMARY KEY, sid STRING, graph_id STRING, idx INT64, "
    "name STRING, key STRING, kind STRING, layer INT64, head INT64, pos INT64, feature INT64, token INT64, "
    "dictionary STRING, label STRING, activation DOUBLE, influence DOUBLE, direct_logit DOUBLE, "
    "prev_token_score DOUBLE, induction_score DOUBLE, duplicate_token_score DOUBLE, probability DOUBLE)",
    "CREATE REL TABLE IF NOT EXISTS ATTRIBUTES(FROM Node TO Node, weight DOUBLE, abs_weight DOUBLE, channel STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Unit(uid STRING PRIMARY KEY, model STRING, kind STRING, layer INT64, "
    "head INT64, dictionary STRING, feature INT64)",
    "CREATE REL TABLE IF NOT EXISTS INSTANCE_OF(FROM Node TO Unit)",
    "CREATE NODE TABLE IF NOT EXISTS Circuit(uid STRING PRIMARY KEY, name STRING, graph_id STRING, method STRING, "
    "params STRING, scores STRING, n_nodes INT64, n_edges INT64, edges STRING, created_at STRING)",
    "CREATE REL TABLE IF NOT EXISTS INCLUDES(FROM Circuit TO Node, edges STRING[])",
    "CREATE NODE TABLE IF NOT EXISTS StoreInfo(key STRING PRIMARY KEY, value STRING)",
)
#: every table of the embedded store (checksums in the tests, schema check on open)
LB_TABLES = ("Graph", "Node", "ATTRIBUTES", "Unit", "INSTANCE_OF", "Circuit", "INCLUDES", "StoreInfo")
LB_TABLE_NAMES = "CALL show_tables() RETURN name"
LB_GRAPH_COLUMNS = "CALL table_info('Graph') RETURN name"
#: Graph.step (the checkpoint step a graph was computed on; queries/circuit_emergence.cypher) for older stores
LB_ADD_GRAPH_STEP = "ALTER TABLE Graph ADD step INT64"
#: INCLUDES.edges (a circuit's edge membership, rows.circuit_edge_lists; queries/circuit_edges.cypher) for older stores
LB_INCLUDES_COLUMNS = "CALL table_info('INCLUDES') RETURN name"
LB_ADD_INCLUDES_EDGES = "ALTER TABLE INCLUDES ADD edges STRING[]"
LB_GET_INFO = "MATCH (i:StoreInfo) WHERE i.key = $key RETURN i.value AS value"
LB_SET_INFO = "MERGE (i:StoreInfo {key: $key}) SET i.value = $value"

LB_COPY_NODES = "COPY Node FROM $rows"
LB_COPY_EDGES = "COPY ATTRIBUTES FROM $rows"
LB_COPY_UNITS = "COPY Unit FROM $rows"
LB_COPY_INSTANCE_OF = "COPY INSTANCE_OF FROM $rows"
LB_COPY_INCLUDES = "COPY INCLUDES FROM $rows"
LB_COPY_GRAPHS = "COPY Graph FROM $rows"

LB_BEGIN = "BEGIN TRANSACTION"
LB_BEGIN_READ_ONLY = "BEGIN TRANSACTION READ ONLY"
LB_COMMIT = "COMMIT"
LB_ROLLBACK = "ROLLBACK"

#: the flip (its own small transaction): the version ``r.sid`` of ``r.id`` becomes the one readers see
LB_FLIP = "UNWIND $rows AS r MATCH (g:Graph) WHERE g.id = r.id SET g.current = (g.sid = r.sid)"
#: every version row (repair and garbage collection on open)
LB_VERSIONS = (
    "MATCH (g:Graph) RETURN g.sid AS sid, g.id AS id, g.current AS current, g.seq AS seq, g.n_nodes AS n_nodes, "
    "g.n_edges AS n_edges"
)
LB_VERSIONS_OF = (
    "MATCH (g:Graph) WHERE g.id = $graph_id RETURN g.sid AS sid, g.current AS current, g.seq AS seq"
)
#: the existing versions of the ids a write is about to supersede
LB_OLD_VERSIONS = "UNWIND $ids AS i MATCH (g:Graph) WHERE g.id = i RETURN g.id AS id, g.sid AS sid"
LB_MAX_SEQ = "MATCH (g:Graph) RETURN max(g.seq) AS seq"
LB_SET_CURRENT = "MATCH (g:Graph) WHERE g.id = $graph_id SET g.current = (g.sid = $sid)"
LB_COUNT_VERSION_NODES = "MATCH (n:Node) WHERE n.sid = $sid RETURN count(n) AS n"
LB_COUNT_VERSION_EDGES = "MATCH (a:Node)-[e:ATTRIBUTES]->(:Node) WHERE a.sid = $sid RETURN count(e) AS n"
#: the sids some Node rows carry (a full scan: only for ``gc(full=True)``)
LB_NODE_SIDS = "MATCH (n:Node) RETURN DISTINCT n.sid AS sid"

#: units only version ``$sid``'s nodes are instances of (units are shared: the others stay); run before deleting
LB_DELETE_ORPHAN_UNITS = (
    "MATCH (n:Node)-[:INSTANCE_OF]->(u:Unit) WHERE n.sid = $sid WITH DISTINCT u "
    "WHERE NOT EXISTS { MATCH (u)<-[:INSTANCE_OF]-(m:Node) WHERE m.sid <> $sid } DETACH DELETE u"
)
LB_DELETE_VERSION_NODES = "MATCH (n:Node) WHERE n.sid = $sid DETACH DELETE n"
LB_DELETE_VERSION = "MATCH (g:Graph) WHERE g.sid = $sid DELETE g"
LB_DELETE_GRAPH_CIRCUITS = "MATCH (c:Circuit) WHERE c.graph_id = $graph_id DETACH DELETE c"
LB_DELETE_CIRCUIT = "MATCH (c:Circuit) WHERE c.uid = $uid DETACH DELETE c"

LB_CREATE_CIRCUIT = (
    "CREATE (c:Circuit {uid: $uid, name: $name, graph_id: $graph_id, method: $method, params: $params, "
    "scores: $scores, n_nodes: $n_nodes, n_edges: $n_edges, edges: $edges, created_at: $created_at})"
)

# ====================================================================== portable reads (both stores)
# Plain Cypher that Ladybug and Neo4j both run (one label + properties, WHERE with parameters, no comma MATCH).
# Every read takes the user's ``$graph_id`` and resolves it through the current Graph row (STORAGE_SPEC).

#: the current version of ``$graph_id``; the reads below continue from ``g``
def _current_graph() -> str:  # a fragment (a function, so the grammar test does not lint it as a statement)
    return "MATCH (g:Graph) WHERE g.id = $graph_id AND g.current = true"

_NODE_RETURN = ", ".join(f"n.{c} AS {c}" for c in ("idx", "key", "kind", "layer", "head", "pos", "feature", "token",
                                                    "dictionary", "label", "activation", "influence", "direct_logit",
                                                    "prev_token_score", "induction_score", "duplicate_token_score",
                                                    "probability"))

READ_GRAPH_PROPS = (
    f"{_current_graph()} RETURN g.sid AS sid, g.id AS id, g.meta AS meta, g.n_nodes AS n_nodes, g.n_edges AS n_edges, "
    "g.seq AS seq ORDER BY seq DESC"
)
COUNT_GRAPH = f"{_current_graph()} RETURN count(g) AS n"
LIST_GRAPHS = (
    "MATCH (g:Graph) WHERE g.current = true RETURN g.id AS id, g.model AS model, g.granularity AS granularity, "
    "g.method AS method, g.metric AS metric, g.prompt AS prompt, g.n_nodes AS n_nodes, g.n_edges AS n_edges, "
    "g.created_at AS created_at ORDER BY id"
)
#: which of ``$ids`` have a current version
CURRENT_IDS = "UNWIND $ids AS x MATCH (g:Graph) WHERE g.id = x AND g.current = true RETURN DISTINCT g.id AS id"
READ_NODES = f"{_current_graph()} MATCH (n:Node) WHERE n.sid = g.sid RETURN {_NODE_RETURN}"
READ_EDGES = (
    f"{_current_graph()} MATCH (a:Node)-[e:ATTRIBUTES]->(b:Node) WHERE a.sid = g.sid "
    "RETURN a.idx AS source, b.idx AS target, e.weight AS weight, e.channel AS channel"
)
COUNT_EDGES = f"{_current_graph()} MATCH (a:Node)-[e:ATTRIBUTES]->(:Node) WHERE a.sid = g.sid RETURN count(e) AS n"
#: which of ``$uids`` exist: one primary-key lookup each (``WHERE u.uid IN $uids`` scans the table per list element:
#: 38 s for 50k uids against 100k units on Ladybug 0.22). Callers batch ``$uids`` (≤ 10k).
EXISTING_UNITS = "UNWIND $uids AS x MATCH (u:Unit {uid: x}) RETURN u.uid AS uid"
EXISTING_NODES = "UNWIND $uids AS x MATCH (n:Node {uid: x}) RETURN n.uid AS uid"
#: which of ``$keys`` are nodes of the current version of ``$graph_id``
EXISTING_KEYS = f"{_current_graph()} MATCH (n:Node) WHERE n.sid = g.sid AND n.key IN $keys RETURN n.key AS key"

_SUB_FILTERS = {
    "kinds": "a.kind IN $kinds AND b.kind IN $kinds",
    "layers": "a.layer IN $layers AND b.layer IN $layers",
    "positions": "a.pos IN $positions AND b.pos IN $positions",
}


def read_subgraph_edges(filters: "tuple[str, ...] | list[str]" = ()) -> str:
    """Edges of ``$graph_id`` with ``abs_weight >= $min_abs_weight`` and both ends in the named filters
    (any of ``kinds``, ``layers``, ``positions``: the parameters of the same names are lists)."""
    bad = [f for f in filters if f not in _SUB_FILTERS]
    if bad:
        raise QueryError(f"unknown subgraph filter(s) {bad}; valid: {', '.join(_SUB_FILTERS)}")
    where = " AND ".join(["a.sid = g.sid", "e.abs_weight >= $min_abs_weight"]
                         + [_SUB_FILTERS[f] for f in _SUB_FILTERS if f in filters])
    return (f"{_current_graph()} MATCH (a:Node)-[e:ATTRIBUTES]->(b:Node) WHERE {where} "
            "RETURN a.idx AS source, b.idx AS target, e.weight AS weight, e.channel AS channel")


_CIRCUIT_RETURN = (
    "c.uid AS uid, c.name AS name, c.graph_id AS graph_id, c.method AS method, c.params AS params, "
    "c.scores AS scores, c.n_nodes AS n_nodes"
)
LIST_CIRCUITS = f"MATCH (c:Circuit) RETURN {_CIRCUIT_RETURN} ORDER BY graph_id, name"
LIST_CIRCUITS_OF_GRAPH = f"MATCH (c:Circuit) WHERE c.graph_id = $graph_id RETURN {_CIRCUIT_RETURN} ORDER BY name"
FIND_CIRCUITS = (
    "MATCH (c:Circuit) WHERE c.name = $name RETURN c.uid AS uid, c.name AS name, c.graph_id AS graph_id, "
    "c.method AS method, c.params AS params, c.scores AS scores, c.edges AS edges, c.created_at AS created_at "
    "ORDER BY graph_id"
)
#: the keys of circuit ``$uid`` among the nodes of its graph's current version
CIRCUIT_NODE_KEYS = (
    "MATCH (c:Circuit)-[:INCLUDES]->(n:Node) WHERE c.uid = $uid MATCH (g:Graph) WHERE g.sid = n.sid AND "
    "g.current = true RETURN n.key AS key, n.idx AS idx ORDER BY idx"
)
#: every circuit of ``$graph_id`` with the keys of its nodes in the current version (re-linked on a rewrite)
CIRCUIT_KEYS_OF_GRAPH = (
    f"{_current_graph()} MATCH (c:Circuit)-[i:INCLUDES]->(n:Node) WHERE c.graph_id = $graph_id AND n.sid = g.sid "
    "RETURN c.uid AS uid, c.name AS name, n.key AS key, i.edges AS edges"
)

# ====================================================================== Neo4j writes
# Used by circuitdb.store.neo4j.Neo4jStore (which reads with the portable reads above). These statements, the portable
# reads and queries/*.cypher are linted with Neo4j's grammar (Cypher 5, the language of Neo4j 5.26 LTS) by
# tests/store/test_cypher_grammar.py. Batched statements take ``$rows`` (≤ batch_size maps); batched deletes take
# ``$batch_size`` and return the number of rows they removed.

#: kind → second Neo4j label (Browser styling). A closed whitelist: the only labels ever interpolated.
NEO4J_KIND_LABELS = {
    "embed": "Embed", "head": "Head", "mlp": "Mlp", "feature": "Feature", "error": "Error", "logit": "Logit",
}

#: created by the first write or ``circuitdb neo4j init`` (never by ``connect``: a read-only user must be able to
#: read). The composite node indexes serve the filters of ``read_subgraph`` and the named queries
#: (``n.sid = g.sid AND n.kind IN …`` / ``… n.layer …``); ``Node.graph_id`` serves Browser users typing their id.
NEO4J_SCHEMA = (
    "DROP CONSTRAINT circuitdb_graph_id IF EXISTS",  # Graph.id was unique before versions (STORAGE_SPEC)
    "CREATE CONSTRAINT circuitdb_graph_sid IF NOT EXISTS FOR (g:Graph) REQUIRE g.sid IS UNIQUE",
    "CREATE CONSTRAINT circuitdb_node_uid IF NOT EXISTS FOR (n:Node) REQUIRE n.uid IS UNIQUE",
    "CREATE CONSTRAINT circuitdb_unit_uid IF NOT EXISTS FOR (u:Unit) REQUIRE u.uid IS UNIQUE",
    "CREATE CONSTRAINT circuitdb_circuit_uid IF NOT EXISTS FOR (c:Circuit) REQUIRE c.uid IS UNIQUE",
    "CREATE INDEX circuitdb_graph_id_current IF NOT EXISTS FOR (g:Graph) ON (g.id, g.current)",
    "CREATE INDEX circuitdb_node_sid IF NOT EXISTS FOR (n:Node) ON (n.sid)",
    "CREATE INDEX circuitdb_node_sid_kind IF NOT EXISTS FOR (n:Node) ON (n.sid, n.kind)",
    "CREATE INDEX circuitdb_node_sid_layer IF NOT EXISTS FOR (n:Node) ON (n.sid, n.layer)",
    "CREATE INDEX circuitdb_node_graph_id IF NOT EXISTS FOR (n:Node) ON (n.graph_id)",
    "CREATE INDEX circuitdb_circuit_graph_id IF NOT EXISTS FOR (c:Circuit) ON (c.graph_id)",
    "CREATE INDEX circuitdb_attributes_abs_weight IF NOT EXISTS FOR ()-[r:ATTRIBUTES]-() ON (r.abs_weight)",
)
NEO4J_AWAIT_INDEXES = "CALL db.awaitIndexes(300)"

# ---------------------------------------------------------------- versioned writes (STORAGE_SPEC)
# A write of graph id g: (1) its Graph row with ``current = false, complete = false``; (2) chunk transactions of
# nodes, units + INSTANCE_OF, edges (≤ ``chunk_rows`` rows each); (3) the flip (one small transaction): counts
# verified, circuits re-linked, ``complete = true``, ``current = (sid = new sid)`` for every row of g; (4) the
# superseded versions are collected in chunks. Readers only follow ``current`` rows, so they never see (2).

#: ``$rows``: Graph property maps (rows.GRAPH_PROPS) with current = false; ``complete`` is set by the flip
NEO4J_CREATE_VERSIONS = "UNWIND $rows AS r CREATE (g:Graph) SET g = r, g.complete = false"

#: kind → node-creating statement (``$rows``: property maps rows.NODE_PROPS; a None value = no property)
NEO4J_CREATE_NODES = {
    kind: f"UNWIND $rows AS r CREATE (n:Node:{quote_ident(label)}) SET n = r"
    for kind, label in NEO4J_KIND_LABELS.items()
}

#: ``$units``: unit property maps (rows.UNIT_PROPS; shared across graphs, so MERGE: a concurrent writer's MERGE of
#: the same uid waits on the constraint's lock or deadlocks, and the managed transaction retries);
#: ``$s`` / ``$t``: node uid / unit uid lists of the INSTANCE_OF links. Units and links in ONE transaction, so a
#: concurrent collection of an orphaned unit cannot slip in between.
NEO4J_MERGE_UNITS_AND_LINKS = """\
UNWIND $units AS r
MERGE (u:Unit {uid: r.uid})
ON CREATE SET u = r
WITH count(*) AS merged
UNWIND range(0, size($s) - 1) AS i
MATCH (n:Node {uid: $s[i]})
MATCH (u:Unit {uid: $t[i]})
CREATE (n)-[:INSTANCE_OF]->(u)
RETURN count(*) AS n"""

#: columnar edges (no map per edge): ``$s`` / ``$t`` source / target node uids, ``$w`` weights, ``$c`` channels
#: (null = none), all the same length; returns how many were created
NEO4J_CREATE_EDGES = """\
UNWIND range(0, size($s) - 1) AS i
MATCH (a:Node {uid: $s[i]})
MATCH (b:Node {uid: $t[i]})
CREATE (a)-[e:ATTRIBUTES]->(b)
SET e.weight = $w[i], e.abs_weight = abs($w[i]), e.channel = $c[i]
RETURN count(*) AS n"""

#: what version ``$sid`` holds: nodes and edges (degrees: no edge is read)
NEO4J_VERSION_COUNTS = """\
MATCH (n:Node {sid: $sid})
RETURN count(n) AS n_nodes, coalesce(sum(COUNT { (n)-[:ATTRIBUTES]->() }), 0) AS n_edges"""

#: circuits of ``$graph_id``, the node keys they include in its current version and the circuit edges out of each
#: (re-linked on a rewrite)
NEO4J_CIRCUIT_KEYS = """\
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (c:Circuit {graph_id: $graph_id})-[i:INCLUDES]->(n:Node {sid: g.sid})
RETURN c.uid AS uid, c.name AS name, n.key AS key, i.edges AS edges"""

#: ``$rows``: {c: circuit uid, n: node uid of the new version, edges: the link's circuit edges}
NEO4J_RELINK_CIRCUITS = """\
UNWIND $rows AS r
MATCH (c:Circuit {uid: r.c})
MATCH (n:Node {uid: r.n})
CREATE (c)-[:INCLUDES {edges: r.edges}]->(n)"""

#: the flip: ``$rows`` {id, sid}; returns the sids it made non-current (to collect)
NEO4J_FLIP = """\
UNWIND $rows AS r
MATCH (g:Graph {id: r.id})
WITH g, g.sid = r.sid AS mine, g.current AS was
SET g.current = mine, g.complete = CASE WHEN mine THEN true ELSE g.complete END
WITH g WHERE NOT g.current AND g.complete
RETURN g.sid AS sid"""

# ---------------------------------------------------------------- reads of the Neo4j store's own
#: which of the versions of ``$graph_id`` are current / complete (repair at read, delete)
NEO4J_VERSIONS_OF = """\
MATCH (g:Graph {id: $graph_id})
RETURN g.sid AS sid, g.current AS current, g.complete AS complete, g.seq AS seq, g.n_nodes AS n_nodes,
       g.n_edges AS n_edges
ORDER BY seq DESC"""

#: versions nobody reads: superseded (complete, not current) or incomplete and older than ``$cutoff`` (the lease:
#: a writer may still be writing a younger one)
NEO4J_COLLECTABLE = """\
MATCH (g:Graph)
WHERE g.current = false AND (g.complete = true OR g.written_at < $cutoff)
RETURN g.sid AS sid, g.id AS id, g.complete AS complete ORDER BY sid"""

# ---------------------------------------------------------------- deletes (bounded: each returns what it removed)
NEO4J_HIDE_GRAPH = """\
MATCH (g:Graph {id: $graph_id})
SET g.current = false, g.complete = true
RETURN count(g) AS n"""

NEO4J_DELETE_GRAPH_CIRCUITS = "MATCH (c:Circuit {graph_id: $graph_id}) DETACH DELETE c RETURN count(*) AS n"

NEO4J_DELETE_VERSION_EDGES = """\
MATCH (:Node {sid: $sid})-[r:ATTRIBUTES]->()
WITH r LIMIT $batch_size
DELETE r
RETURN count(*) AS n"""

#: units only version ``$sid``'s nodes point at (units are shared across graphs; the others stay)
NEO4J_DELETE_ORPHAN_UNITS = """\
MATCH (:Node {sid: $sid})-[:INSTANCE_OF]->(u:Unit)
WITH DISTINCT u
WHERE NOT EXISTS { MATCH (u)<-[:INSTANCE_OF]-(m:Node) WHERE m.sid <> $sid }
WITH u LIMIT $batch_size
DETACH DELETE u
RETURN count(*) AS n"""

NEO4J_DELETE_VERSION_NODES = """\
MATCH (n:Node {sid: $sid})
WITH n LIMIT $batch_size
DETACH DELETE n
RETURN count(*) AS n"""

NEO4J_DELETE_VERSION = "MATCH (g:Graph {sid: $sid}) DELETE g RETURN count(*) AS n"

# ---------------------------------------------------------------- circuits
NEO4J_DELETE_CIRCUIT = "MATCH (c:Circuit {uid: $uid}) DETACH DELETE c"

NEO4J_CREATE_CIRCUIT = "CREATE (c:Circuit) SET c = $props"

#: links circuit ``$uid`` to the nodes of the current version of ``$graph_id`` (``$rows``: {k: node key, edges: the
#: circuit's edges out of it, rows.circuit_edge_lists}); returns how many matched
NEO4J_LINK_CIRCUIT = """\
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (c:Circuit {uid: $uid})
UNWIND $rows AS r
MATCH (n:Node {uid: g.sid + '/' + r.k})
CREATE (c)-[:INCLUDES {edges: r.edges}]->(n)
RETURN count(n) AS n"""

# ---------------------------------------------------------------- reads in columns
def neo4j_columnar_edges(edge_query: str) -> str:
    """A portable edge read (columns source, target, weight, channel) as ONE record of four lists: the driver decodes
    lists ~4× faster than one record per edge (100k edges: 2.9 s instead of 10.8 s on the local server)."""
    return (f"CALL {{ {edge_query} }} RETURN collect(source) AS source, collect(target) AS target, "
            "collect(weight) AS weight, collect(channel) AS channel")


# ----------------------------------------------------------------------------------------------- labels (formats)
# Feature descriptions attached after a graph was stored (circuitdb.formats.labels): plain Cypher both stores run.
#: the portable statements that write (every other unprefixed statement is a read; tests/store/test_readonly.py)
PORTABLE_WRITES = ("SET_NODE_LABELS",)
LABEL_TARGETS = "UNWIND $uids AS x MATCH (n:Node {uid: x}) RETURN n.uid AS uid, n.key AS key, n.kind AS kind"
SET_NODE_LABELS = """UNWIND $rows AS r
MATCH (n:Node {uid: r.uid})
SET n.label = r.label, n.name = r.name
RETURN count(n) AS n"""
