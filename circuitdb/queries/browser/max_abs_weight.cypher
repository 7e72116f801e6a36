// max_abs_weight (Browser form): the edge with the largest |weight| of a graph, drawn (queries/max_abs_weight.cypher
// returns its |weight| and the graph's edge count).
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (a:Node {sid: g.sid})-[e:ATTRIBUTES]->(b:Node)
RETURN a, e, b
ORDER BY e.abs_weight DESC, a.key, b.key, e.channel
LIMIT 1
