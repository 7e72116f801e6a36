// compare_graphs: edges strong in graph A (|weight| >= min_weight) that are weak or absent in graph B (the same
// source key, target key and channel with |weight| <= max_ratio × the A weight, or no such edge).
//
// @param graph_a: string               id of the graph where the edges are strong
// @param graph_b: string               id of the graph to compare with
// @param min_weight: float = 0.1       minimum |weight| in graph A
// @param max_ratio: float = 0.5        an edge is "weak" in B when |weight_b| <= max_ratio × |weight_a|
// @param limit: integer = 50           edges to return
//
// Example (Neo4j Browser):
// :params {graph_a: 'ioi-0', graph_b: 'ioi-1', min_weight: 0.1, max_ratio: 0.5, limit: 50}
MATCH (ga:Graph {id: $graph_a}) WHERE ga.current = true
MATCH (a:Node {sid: ga.sid})-[r:ATTRIBUTES]->(b:Node)
WHERE r.abs_weight >= $min_weight
OPTIONAL MATCH (gb:Graph {id: $graph_b}) WHERE gb.current = true
OPTIONAL MATCH (a2:Node {uid: gb.sid + '/' + a.key})-[r2:ATTRIBUTES]->(b2:Node {uid: gb.sid + '/' + b.key})
WHERE r2.channel = r.channel
WITH a, b, r, r2.weight AS weight_b
WITH a, b, r, weight_b, coalesce(abs(weight_b), 0.0) AS abs_b
WHERE abs_b <= $max_ratio * r.abs_weight
RETURN a.key AS source, b.key AS target, r.channel AS channel, r.weight AS weight_a, weight_b,
       r.abs_weight - abs_b AS difference, weight_b IS NULL AS absent_in_b
ORDER BY difference DESC, source, target, channel
LIMIT $limit
