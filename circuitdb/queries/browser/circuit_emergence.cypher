// circuit_emergence (Browser form): the edge source → target (through `channel`) of queries/circuit_emergence.cypher
// drawn in every checkpoint graph of a sweep (Graph rows with a `step`, optionally one model / one job), in step
// order; the relationship's `weight` caption shows it grow.
MATCH (g:Graph) WHERE g.current = true AND g.step IS NOT NULL
  AND (g.model = $model OR $model IS NULL)
  AND (g.id STARTS WITH $job OR $job IS NULL)
MATCH (a:Node {sid: g.sid, key: $source})-[r:ATTRIBUTES]->(b:Node {sid: g.sid, key: $target})
WHERE (r.channel = $channel OR $channel IS NULL)
RETURN a, r, b
ORDER BY g.step, g.id
LIMIT $limit
