// upstream: the nodes that feed a node through up to `depth` hops (1..4) of edges with |weight| >= min_weight.
//
// One row per (node, depth): `strength` is the largest product of |weights| over the paths of that length,
// `n_paths` how many such paths there are. Each depth is one UNION ALL branch, ordered by strength;
// circuitdb.query sorts the union by depth, then strength, and keeps the first `limit` rows.
// Cost grows with the fan-in at each hop: raise min_weight on large graphs.
//
// @param graph_id: string            id of the graph
// @param node: string                key of the node (e.g. 'LOGITS', 'A1.4', 'F3:117@5')
// @param depth: integer = 2          maximum number of hops (1..4)
// @param min_weight: float = 0.0     minimum |weight| of every edge on the path
// @param limit: integer = 100        rows per depth (and in total, after sorting)
// @sort: depth asc, strength desc, key asc
// @branches: depth
//
// One MATCH per hop, joined by WITH: Ladybug 0.22 returned wrong rows for one MATCH of three or more
// relationships filtered in WHERE (tests/queries check every hop count against a Python ground truth).
// No LIMIT inside the branches: a LIMIT in a UNION ALL branch crashed Ladybug 0.22 when another branch was empty.
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0', node: 'LOGITS', depth: 2, min_weight: 0.01, limit: 100}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (n1:Node)-[r1:ATTRIBUTES]->(t:Node {uid: cur1.sid + '/' + $node})
WHERE r1.abs_weight >= $min_weight
WITH n1, r1.abs_weight AS s
WITH n1 AS n, max(s) AS strength, count(*) AS n_paths
RETURN n.key AS key, n.kind AS kind, n.layer AS layer, n.head AS head, n.pos AS pos, 1 AS depth,
       strength, n_paths
ORDER BY strength DESC, key
UNION ALL
MATCH (cur2:Graph {id: $graph_id}) WHERE cur2.current = true
MATCH (n1:Node)-[r1:ATTRIBUTES]->(t:Node {uid: cur2.sid + '/' + $node})
WHERE $depth >= 2 AND r1.abs_weight >= $min_weight
WITH n1, r1.abs_weight AS s
MATCH (n2:Node)-[r2:ATTRIBUTES]->(n1)
WHERE r2.abs_weight >= $min_weight
WITH n2, s * r2.abs_weight AS s
WITH n2 AS n, max(s) AS strength, count(*) AS n_paths
RETURN n.key AS key, n.kind AS kind, n.layer AS layer, n.head AS head, n.pos AS pos, 2 AS depth,
       strength, n_paths
ORDER BY strength DESC, key
UNION ALL
MATCH (cur3:Graph {id: $graph_id}) WHERE cur3.current = true
MATCH (n1:Node)-[r1:ATTRIBUTES]->(t:Node {uid: cur3.sid + '/' + $node})
WHERE $depth >= 3 AND r1.abs_weight >= $min_weight
WITH n1, r1.abs_weight AS s
MATCH (n2:Node)-[r2:ATTRIBUTES]->(n1)
WHERE r2.abs_weight >= $min_weight
WITH n2, s * r2.abs_weight AS s
MATCH (n3:Node)-[r3:ATTRIBUTES]->(n2)
WHERE r3.abs_weight >= $min_weight
WITH n3, s * r3.abs_weight AS s
WITH n3 AS n, max(s) AS strength, count(*) AS n_paths
RETURN n.key AS key, n.kind AS kind, n.layer AS layer, n.head AS head, n.pos AS pos, 3 AS depth,
       strength, n_paths
ORDER BY strength DESC, key
UNION ALL
MATCH (cur4:Graph {id: $graph_id}) WHERE cur4.current = true
MATCH (n1:Node)-[r1:ATTRIBUTES]->(t:Node {uid: cur4.sid + '/' + $node})
WHERE $depth >= 4 AND r1.abs_weight >= $min_weight
WITH n1, r1.abs_weight AS s
MATCH (n2:Node)-[r2:ATTRIBUTES]->(n1)
WHERE r2.abs_weight >= $min_weight
WITH n2, s * r2.abs_weight AS s
MATCH (n3:Node)-[r3:ATTRIBUTES]->(n2)
WHERE r3.abs_weight >= $min_weight
WITH n3, s * r3.abs_weight AS s
MATCH (n4:Node)-[r4:ATTRIBUTES]->(n3)
WHERE r4.abs_weight >= $min_weight
WITH n4, s * r4.abs_weight AS s
WITH n4 AS n, max(s) AS strength, count(*) AS n_paths
RETURN n.key AS key, n.kind AS kind, n.layer AS layer, n.head AS head, n.pos AS pos, 4 AS depth,
       strength, n_paths
ORDER BY strength DESC, key
