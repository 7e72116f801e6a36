// upstream (Browser form): the nodes feeding `node` through up to `depth` hops (1..4) of edges with
// |weight| >= min_weight, drawn: for each row of queries/upstream.cypher (a node and a depth), the path of that
// length with the largest product of |weights|, in the same order (depth, strength, key) and cut at `limit`.
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (t:Node {sid: g.sid, key: $node})
CALL (t) {
  MATCH p = (n:Node)-[r:ATTRIBUTES]->(t) WHERE r.abs_weight >= $min_weight
  RETURN n, p
  UNION ALL
  MATCH p = (n:Node)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $depth >= 2 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN n, p
  UNION ALL
  MATCH p = (n:Node)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $depth >= 3 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN n, p
  UNION ALL
  MATCH p = (n:Node)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $depth >= 4 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN n, p
}
WITH n, p, length(p) AS depth, reduce(s = 1.0, r IN relationships(p) | s * r.abs_weight) AS strength
ORDER BY strength DESC
WITH n, depth, collect(p)[0] AS path, max(strength) AS strength
RETURN path
ORDER BY depth, strength DESC, n.key
LIMIT $limit
