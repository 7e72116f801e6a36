// compare_graphs (Browser form): the edges of queries/compare_graphs.cypher drawn — strong in graph A
// (|weight| >= min_weight) and weak (|weight_b| <= max_ratio × |weight_a|) or absent in graph B, as graph A's
// nodes and relationships, largest difference first.
MATCH (ga:Graph {id: $graph_a, current: true})
MATCH (a:Node {sid: ga.sid})-[r:ATTRIBUTES]->(b:Node)
WHERE r.abs_weight >= $min_weight
OPTIONAL MATCH (gb:Graph {id: $graph_b, current: true})
OPTIONAL MATCH (:Node {uid: gb.sid + '/' + a.key})-[r2:ATTRIBUTES {channel: r.channel}]->(:Node {uid: gb.sid + '/' + b.key})
WITH a, r, b, coalesce(abs(r2.weight), 0.0) AS abs_b
WHERE abs_b <= $max_ratio * r.abs_weight
RETURN a, r, b
ORDER BY r.abs_weight - abs_b DESC, a.key, b.key, r.channel
LIMIT $limit
