// circuit_emergence: at which training step a circuit edge appears. For every current graph of a checkpoint sweep
// (Graph rows with a `step`, optionally one model / one ingest job), the weight of the edge source → target
// (through `channel`), in step order, whether its |weight| passes `threshold`, and `first_step`: the first step at
// which it does (null if it never does). Default: the previous-token head A0.2 → induction head A1.2 K-composition
// of toy-induction-2l.
//
// @param source: string = 'A0.2'          key of the edge's source node
// @param target: string = 'A1.2'          key of the edge's target node
// @param channel: string = 'k'            channel of the edge (q/k/v); null = any
// @param threshold: float = 0.1           the edge has appeared once |weight| >= threshold
// @param model: string = null             only graphs of this model name; null = any
// @param job: string = null               only graphs whose id starts with this text (an ingest job's name)
// @param limit: integer = 1000            rows to return
// @sort: step asc, graph_id asc
//
// Example (Neo4j Browser):
// :params {source: 'A0.2', target: 'A1.2', channel: 'k', threshold: 0.1, model: null, job: null, limit: 1000}
MATCH (g0:Graph) WHERE g0.current = true AND g0.step IS NOT NULL
  AND (g0.model = $model OR $model IS NULL)
  AND (g0.id STARTS WITH $job OR $job IS NULL)
MATCH (a0:Node {sid: g0.sid, key: $source})-[r0:ATTRIBUTES]->(b0:Node {sid: g0.sid, key: $target})
WHERE (r0.channel = $channel OR $channel IS NULL)
WITH min(CASE WHEN r0.abs_weight >= $threshold THEN g0.step ELSE null END) AS first_step
MATCH (g:Graph) WHERE g.current = true AND g.step IS NOT NULL
  AND (g.model = $model OR $model IS NULL)
  AND (g.id STARTS WITH $job OR $job IS NULL)
MATCH (a:Node {sid: g.sid, key: $source})-[r:ATTRIBUTES]->(b:Node {sid: g.sid, key: $target})
WHERE (r.channel = $channel OR $channel IS NULL)
RETURN g.step AS step, g.id AS graph_id, g.model AS model, r.weight AS weight, r.abs_weight AS abs_weight,
       r.abs_weight >= $threshold AS passes, first_step
ORDER BY step, graph_id
LIMIT $limit
