// feature_paths (Browser form): the token → … → logit paths of queries/feature_paths.cypher drawn — from embed
// nodes (or `source`) to logit nodes (or `target`) through at most `max_hops` (1..4) edges with
// |weight| >= min_weight (only those through a head node with `through_heads`), the `limit` paths with the largest
// product of |weights|.
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (s:Embed {sid: g.sid}) WHERE s.key = $source OR $source IS NULL
CALL (s) {
  MATCH p = (s)-[r:ATTRIBUTES]->(t:Logit) WHERE r.abs_weight >= $min_weight
  RETURN p, t
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t:Logit)
  WHERE $max_hops >= 2 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p, t
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t:Logit)
  WHERE $max_hops >= 3 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p, t
  UNION ALL
  MATCH p = (s)-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->()-[:ATTRIBUTES]->(t:Logit)
  WHERE $max_hops >= 4 AND all(r IN relationships(p) WHERE r.abs_weight >= $min_weight)
  RETURN p, t
}
WITH p, t WHERE (t.key = $target OR $target IS NULL)
  AND (NOT $through_heads OR any(n IN nodes(p)[1..-1] WHERE n.kind = 'head'))
RETURN p
ORDER BY reduce(x = 1.0, r IN relationships(p) | x * r.abs_weight) DESC, length(p)
LIMIT $limit
