// recurring_units: heads / MLPs / features (graph-independent Units) that touch a strong edge (|weight| >=
// min_weight, either direction) in many graphs, with the number of graphs and the mean of each graph's strongest
// such edge.
//
// @param min_weight: float = 0.1          an edge counts as strong from this |weight| on
// @param kind: string = null              unit kind ('head', 'mlp', 'feature'); null = any
// @param model: string = null             only units of this model; null = any
// @param graph_ids: list<string> = null   only these graphs; null = every graph
// @param min_graphs: integer = 1          only units seen in at least this many graphs
// @param limit: integer = 50              units to return
//
// Example (Neo4j Browser):
// :params {min_weight: 0.1, kind: 'head', model: null, graph_ids: null, min_graphs: 1, limit: 50}
MATCH (u:Unit)<-[:INSTANCE_OF]-(n:Node)-[r:ATTRIBUTES]-(:Node)
WHERE r.abs_weight >= $min_weight
  AND (u.kind = $kind OR $kind IS NULL)
  AND (u.model = $model OR $model IS NULL)
  AND (n.graph_id IN $graph_ids OR $graph_ids IS NULL)
MATCH (g:Graph {sid: n.sid}) WHERE g.current = true
WITH u, n.graph_id AS graph_id, max(r.abs_weight) AS strength
WITH u, count(graph_id) AS n_graphs, avg(strength) AS mean_strength
WHERE n_graphs >= $min_graphs
RETURN u.uid AS unit, u.kind AS kind, u.layer AS layer, u.head AS head, u.feature AS feature, u.model AS model,
       n_graphs, mean_strength
ORDER BY n_graphs DESC, mean_strength DESC, unit
LIMIT $limit
