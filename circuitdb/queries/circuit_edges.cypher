// circuit_edges: the edges of a saved circuit (Circuit.save, `circuitdb prune … --save NAME`) in its graph's
// current version, strongest first. Each of the circuit's INCLUDES links lists the circuit's edges out of its node
// (`channel:target key`, in `edges`), so the query follows them in the graph itself: after a rewrite of the graph
// the circuit's edges carry the new weights.
//
// @param graph_id: string            id of the graph the circuit was saved on
// @param name: string                the circuit's name
// @param limit: integer = 1000       edges to return
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0', name: 'top16', limit: 1000}
MATCH (c:Circuit {graph_id: $graph_id, name: $name})-[i:INCLUDES]->(a:Node)
MATCH (g:Graph {sid: a.sid}) WHERE g.current = true
MATCH (a)-[e:ATTRIBUTES]->(b:Node)
WHERE (e.channel + ':' + b.key) IN i.edges
RETURN a.key AS source, b.key AS target, e.channel AS channel, e.weight AS weight, e.abs_weight AS abs_weight
ORDER BY abs_weight DESC, source, target, channel
LIMIT $limit
