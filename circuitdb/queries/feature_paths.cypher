// feature_paths: token → … → logit paths in a (feature) graph: from embed nodes to logit nodes through at most
// `max_hops` (1..4) edges with |weight| >= min_weight, through head nodes (A{l}.{h}@{pos}) where present.
//
// Each path length is one UNION ALL branch, ranked by the product of |weights|; circuitdb.query merges them
// and keeps the first `limit` paths. `through_heads: true` keeps only paths with a head node between the token and the logit.
//
// @param graph_id: string               id of the graph
// @param source: string = null          key of the embed node to start from (e.g. 'E@3'); null = every token
// @param target: string = null          key of the logit node to end at (e.g. 'L:262@7'); null = every logit
// @param max_hops: integer = 3          maximum path length in edges (1..4)
// @param min_weight: float = 0.0        minimum |weight| of every edge on the path
// @param through_heads: boolean = false only paths through at least one head node
// @param limit: integer = 20            paths to return
// @sort: product desc, hops asc
// @branches: max_hops
//
// One MATCH per hop, joined by WITH: Ladybug 0.22 returned wrong rows for one MATCH of three or more
// relationships filtered in WHERE (tests/queries check every hop count against a Python ground truth).
// No LIMIT inside the branches: a LIMIT in a UNION ALL branch crashed Ladybug 0.22 when another branch was empty.
//
// Example (Neo4j Browser):
// :params {graph_id: 'fg-0', source: null, target: null, max_hops: 3, min_weight: 0.05, through_heads: false, limit: 20}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (a:Node {sid: cur1.sid, kind: 'embed'})-[r1:ATTRIBUTES]->(b:Node {kind: 'logit'})
WHERE (a.key = $source OR $source IS NULL) AND r1.abs_weight >= $min_weight AND (b.key = $target OR $target IS NULL)
WITH [a.key, b.key] AS path, [a.kind, b.kind] AS kinds, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck, 0 AS heads
WITH path, kinds, channels, product, bottleneck, heads WHERE NOT $through_heads OR heads > 0
RETURN path, kinds, channels, 1 AS hops, product, bottleneck
ORDER BY product DESC
UNION ALL
MATCH (cur2:Graph {id: $graph_id}) WHERE cur2.current = true
MATCH (a:Node {sid: cur2.sid, kind: 'embed'})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 2 AND (a.key = $source OR $source IS NULL) AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [a.kind, m1.kind] AS kinds, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck, CASE WHEN m1.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m1)-[r2:ATTRIBUTES]->(b:Node {kind: 'logit'})
WHERE r2.abs_weight >= $min_weight AND (b.key = $target OR $target IS NULL)
WITH path + [b.key] AS path, kinds + [b.kind] AS kinds, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck, heads
WITH path, kinds, channels, product, bottleneck, heads WHERE NOT $through_heads OR heads > 0
RETURN path, kinds, channels, 2 AS hops, product, bottleneck
ORDER BY product DESC
UNION ALL
MATCH (cur3:Graph {id: $graph_id}) WHERE cur3.current = true
MATCH (a:Node {sid: cur3.sid, kind: 'embed'})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 3 AND (a.key = $source OR $source IS NULL) AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [a.kind, m1.kind] AS kinds, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck, CASE WHEN m1.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m1)-[r2:ATTRIBUTES]->(m2:Node)
WHERE r2.abs_weight >= $min_weight
WITH m2, path + [m2.key] AS path, kinds + [m2.kind] AS kinds, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck, heads + CASE WHEN m2.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m2)-[r3:ATTRIBUTES]->(b:Node {kind: 'logit'})
WHERE r3.abs_weight >= $min_weight AND (b.key = $target OR $target IS NULL)
WITH path + [b.key] AS path, kinds + [b.kind] AS kinds, channels + [r3.channel] AS channels, product * r3.abs_weight AS product, CASE WHEN r3.abs_weight < bottleneck THEN r3.abs_weight ELSE bottleneck END AS bottleneck, heads
WITH path, kinds, channels, product, bottleneck, heads WHERE NOT $through_heads OR heads > 0
RETURN path, kinds, channels, 3 AS hops, product, bottleneck
ORDER BY product DESC
UNION ALL
MATCH (cur4:Graph {id: $graph_id}) WHERE cur4.current = true
MATCH (a:Node {sid: cur4.sid, kind: 'embed'})-[r1:ATTRIBUTES]->(m1:Node)
WHERE $max_hops >= 4 AND (a.key = $source OR $source IS NULL) AND r1.abs_weight >= $min_weight
WITH m1, [a.key, m1.key] AS path, [a.kind, m1.kind] AS kinds, [r1.channel] AS channels, r1.abs_weight AS product, r1.abs_weight AS bottleneck, CASE WHEN m1.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m1)-[r2:ATTRIBUTES]->(m2:Node)
WHERE r2.abs_weight >= $min_weight
WITH m2, path + [m2.key] AS path, kinds + [m2.kind] AS kinds, channels + [r2.channel] AS channels, product * r2.abs_weight AS product, CASE WHEN r2.abs_weight < bottleneck THEN r2.abs_weight ELSE bottleneck END AS bottleneck, heads + CASE WHEN m2.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m2)-[r3:ATTRIBUTES]->(m3:Node)
WHERE r3.abs_weight >= $min_weight
WITH m3, path + [m3.key] AS path, kinds + [m3.kind] AS kinds, channels + [r3.channel] AS channels, product * r3.abs_weight AS product, CASE WHEN r3.abs_weight < bottleneck THEN r3.abs_weight ELSE bottleneck END AS bottleneck, heads + CASE WHEN m3.kind = 'head' THEN 1 ELSE 0 END AS heads
MATCH (m3)-[r4:ATTRIBUTES]->(b:Node {kind: 'logit'})
WHERE r4.abs_weight >= $min_weight AND (b.key = $target OR $target IS NULL)
WITH path + [b.key] AS path, kinds + [b.kind] AS kinds, channels + [r4.channel] AS channels, product * r4.abs_weight AS product, CASE WHEN r4.abs_weight < bottleneck THEN r4.abs_weight ELSE bottleneck END AS bottleneck, heads
WITH path, kinds, channels, product, bottleneck, heads WHERE NOT $through_heads OR heads > 0
RETURN path, kinds, channels, 4 AS hops, product, bottleneck
ORDER BY product DESC
