// recurring_units (Browser form): the units of queries/recurring_units.cypher drawn — each of the top `limit`
// heads / MLPs / features (by graphs seen in, then mean strength) with its instance nodes on strong edges.
MATCH (u:Unit)<-[:INSTANCE_OF]-(n:Node)-[r:ATTRIBUTES]-(:Node)
WHERE r.abs_weight >= $min_weight
  AND (u.kind = $kind OR $kind IS NULL)
  AND (u.model = $model OR $model IS NULL)
  AND (n.graph_id IN $graph_ids OR $graph_ids IS NULL)
MATCH (g:Graph {sid: n.sid}) WHERE g.current = true
WITH u, n.graph_id AS graph_id, max(r.abs_weight) AS strength, collect(DISTINCT n) AS nodes
WITH u, count(graph_id) AS n_graphs, avg(strength) AS mean_strength, collect(nodes) AS nodes
WHERE n_graphs >= $min_graphs
WITH u, nodes ORDER BY n_graphs DESC, mean_strength DESC, u.uid LIMIT $limit
UNWIND nodes AS per_graph
UNWIND per_graph AS n
MATCH (n)-[i:INSTANCE_OF]->(u)
RETURN u, i, n
