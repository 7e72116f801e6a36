// induction_pairs (Browser form): the previous-token head → induction head pairs of
// queries/induction_pairs.cypher drawn, with the k edge between them, in the same order.
MATCH (g:Graph {id: $graph_id, current: true})
MATCH (p:Head {sid: g.sid})-[e:ATTRIBUTES {channel: 'k'}]->(i:Head)
WHERE p.layer < i.layer
  AND e.abs_weight >= $min_weight
  AND p.prev_token_score >= $min_prev_token_score
  AND i.induction_score >= $min_induction_score
RETURN p, e, i
ORDER BY e.abs_weight * p.prev_token_score * i.induction_score DESC, p.key, i.key
LIMIT $limit
