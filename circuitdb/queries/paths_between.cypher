// paths_between: directed paths from one node to another, at most `max_hops` (1..4) edges, every edge with
// |weight| >= min_weight, ranked by the product of |weights| (rank_by 'product') or their minimum ('min').
//
// Each path length is one UNION ALL branch, ranked by score; circuitdb.query merges them by score and keeps
// the first `limit` paths.
// Paths through parallel q/k/v edges are distinct paths (see `channels`).
//
// @param graph_id: string              id of the graph
// @param source: string                key of the first node
// @param target: string                key of the last node
// @param max_hops: integer = 3         maximum path length in edges (1..4)
// @param min_weight: float = 0.0       minimum |weight| of every edge on the path
// @param rank_by: string = 'product'   'product' or 'min' (the bottleneck |weight|)
// @param limit: integer = 20           paths to return
// @sort: score desc, hops asc
// @branches: max_hops
//
// One MATCH per hop, joined by WITH: Ladybug 0.22 returned wrong rows for one MATCH of three or more
// relationships filtered in WHERE (tests/queries check every hop count against a Python ground truth).
// No LIMIT inside the branches: a LIMIT in a UNION ALL branch crashed Ladybug 0.22 when another branch was empty.
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0', source: 'E', target: 'LOGITS', max_hops: 3, min_weight: 0.01, rank_by: 'product', limit: 20}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (a:Node {uid: cur1.sid + '/' + $source})-[r1:ATTRIBUTES]->(b:Node {uid: cur1.sid + '/' + $target})
WHERE r1.abs_weight >= $min_weight
WITH b, [a.key, b.key] AS path, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck
RETURN path, channels, 1 AS hops, product, bottleneck,
       CASE WHEN $rank_by = 'min' THEN bottleneck ELSE product END AS score
ORDER BY score DESC
UNION ALL
MATCH (cur2:Graph {id: $graph_id}) WHERE cur2.current = true
MATCH (a:Node {uid: cur2.sid + '/' + $source})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 2 AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck
MATCH (cur3:Graph {id: $graph_id}) WHERE cur3.current = true
MATCH (m1)-[r2:ATTRIBUTES]->(b:Node {uid: cur3.sid + '/' + $target})
WHERE r2.abs_weight >= $min_weight
WITH b, path + [b.key] AS path, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck
RETURN path, channels, 2 AS hops, product, bottleneck,
       CASE WHEN $rank_by = 'min' THEN bottleneck ELSE product END AS score
ORDER BY score DESC
UNION ALL
MATCH (cur4:Graph {id: $graph_id}) WHERE cur4.current = true
MATCH (a:Node {uid: cur4.sid + '/' + $source})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 3 AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck
MATCH (m1)-[r2:ATTRIBUTES]->(m2:Node)
WHERE r2.abs_weight >= $min_weight
WITH m2, path + [m2.key] AS path, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck
MATCH (cur5:Graph {id: $graph_id}) WHERE cur5.current = true
MATCH (m2)-[r3:ATTRIBUTES]->(b:Node {uid: cur5.sid + '/' + $target})
WHERE r3.abs_weight >= $min_weight
WITH b, path + [b.key] AS path, channels + [r3.channel] AS channels, product * r3.abs_weight AS product, CASE WHEN r3.abs_weight < bottleneck THEN r3.abs_weight ELSE bottleneck END AS bottleneck
RETURN path, channels, 3 AS hops, product, bottleneck,
       CASE WHEN $rank_by = 'min' THEN bottleneck ELSE product END AS score
ORDER BY score DESC
UNION ALL
MATCH (cur6:Graph {id: $graph_id}) WHERE cur6.current = true
MATCH (a:Node {uid: cur6.sid + '/' + $source})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 4 AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck
MATCH (m1)-[r2:ATTRIBUTES]->(m2:Node)
WHERE r2.abs_weight >= $min_weight
WITH m2, path + [m2.key] AS path, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck
MATCH (m2)-[r3:ATTRIBUTES]->(m3:Node)
WHERE r3.abs_weight >= $min_weight
WITH m3, path + [m3.key] AS path, channels + [r3.channel] AS channels, product * r3.abs_weight AS product, CASE WHEN r3.abs_weight < bottleneck THEN r3.abs_weight ELSE bottleneck END AS bottleneck
MATCH (cur7:Graph {id: $graph_id}) WHERE cur7.current = true
MATCH (m3)-[r4:ATTRIBUTES]->(b:Node {uid: cur7.sid + '/' + $target})
WHERE r4.abs_weight >= $min_weight
WITH b, path + [b.key] AS path, channels + [r4.channel] AS channels, product * r4.abs_weight AS product, CASE WHEN r4.abs_weight < bottleneck THEN r4.abs_weight ELSE bottleneck END AS bottleneck
RETURN path, channels, 4 AS hops, product, bottleneck,
       CASE WHEN $rank_by = 'min' THEN bottleneck ELSE product END AS score
ORDER BY score DESC
