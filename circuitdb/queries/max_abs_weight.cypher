// max_abs_weight: the largest |weight| of a graph's edges, and how many edges it has.
//
// circuitdb.query uses it to run top-k queries (top_edges) with a selective |weight| floor first.
//
// @param graph_id: string     id of the graph
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0'}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (a:Node {sid: cur1.sid})-[r:ATTRIBUTES]->(:Node)
RETURN max(r.abs_weight) AS max_abs_weight, count(r) AS n_edges
