// circuit_edges (Browser form): a saved circuit drawn — its nodes and the edges of queries/circuit_edges.cypher
// (the ones its INCLUDES links list), strongest first; nodes without a circuit edge out of them come last.
MATCH (c:Circuit {graph_id: $graph_id, name: $name})-[i:INCLUDES]->(a:Node)
MATCH (g:Graph {sid: a.sid, current: true})
OPTIONAL MATCH (a)-[e:ATTRIBUTES]->(b:Node) WHERE (e.channel + ':' + b.key) IN i.edges
RETURN a, e, b
ORDER BY e.abs_weight IS NULL, e.abs_weight DESC, a.key, b.key, e.channel
LIMIT $limit
