// top_edges (Browser form): the strongest edges of a graph, drawn. Same parameters and rows as
// queries/top_edges.cypher, returned as nodes and relationships.
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (a:Node {sid: g.sid})-[e:ATTRIBUTES]->(b:Node)
WHERE e.abs_weight >= $min_weight
  AND (a.kind = $source_kind OR $source_kind IS NULL)
  AND (b.kind = $target_kind OR $target_kind IS NULL)
  AND (a.layer = $layer OR b.layer = $layer OR $layer IS NULL)
  AND (e.channel = $channel OR $channel IS NULL)
RETURN a, e, b
ORDER BY e.abs_weight DESC, a.key, b.key, e.channel
LIMIT $limit
