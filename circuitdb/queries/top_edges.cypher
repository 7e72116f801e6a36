// top_edges: a graph's strongest edges (by |weight|), optionally filtered by node kind, layer and channel.
//
// @param graph_id: string               id of the graph
// @param limit: integer = 25            how many edges to return
// @param min_weight: float = 0.0        minimum |weight|
// @param source_kind: string = null     kind of the source node (embed, head, mlp, feature, error, logit); null = any
// @param target_kind: string = null     kind of the target node; null = any
// @param layer: integer = null          layer of the source or of the target; null = any
// @param channel: string = null         edge channel ('' none, 'q', 'k', 'v'); null = any
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0', limit: 25, min_weight: 0.0, source_kind: 'head', target_kind: null, layer: null, channel: null}
//
// Speed: circuitdb.query runs this first with a |weight| floor well above min_weight (max |weight| × 10^-k,
// lowered until `limit` rows pass) — the same rows, since every top row passes the floor (@top_k below).
// @top_k: min_weight
//
// Portability: a nullable parameter is compared to a property before its IS NULL test (Ladybug types parameters
// from their first use).
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (a:Node {sid: cur1.sid})-[r:ATTRIBUTES]->(b:Node)
WHERE r.abs_weight >= $min_weight
  AND (a.kind = $source_kind OR $source_kind IS NULL)
  AND (b.kind = $target_kind OR $target_kind IS NULL)
  AND (a.layer = $layer OR b.layer = $layer OR $layer IS NULL)
  AND (r.channel = $channel OR $channel IS NULL)
RETURN a.key AS source, b.key AS target, r.weight AS weight, r.abs_weight AS abs_weight, r.channel AS channel,
       a.kind AS source_kind, b.kind AS target_kind, a.layer AS source_layer, b.layer AS target_layer
ORDER BY abs_weight DESC, source, target, channel
LIMIT $limit
