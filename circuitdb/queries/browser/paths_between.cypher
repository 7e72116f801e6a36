// paths_between (Browser form): the paths of queries/paths_between.cypher drawn — from `source` to `target`
// through at most `max_hops` (1..4) edges with |weight| >= min_weight, ranked by the product of |weights|
// (rank_by 'product') or their minimum ('min'), the best `limit` of them.
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (s:Node {sid: g.sid, key: $source})
MATCH (t:Node {sid: g.sid, key: $target})
CALL (s, t) {
  MATCH p = (s)-[r:ATTRIBUTES]->(t) WHERE r.abs_weight >= $min_weight
  RETURN p
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $max_hops >= 2 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $max_hops >= 3 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t)
  WHERE $max_hops >= 4 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p
}
WITH p, [r IN relationships(p) | r.abs_weight] AS w
WITH p, CASE $rank_by
          WHEN 'min' THEN reduce(m = w[0], x IN w | CASE WHEN x < m THEN x ELSE m END)
          ELSE reduce(m = 1.0, x IN w | m * x) END AS score
RETURN p
ORDER BY score DESC, length(p)
LIMIT $limit
