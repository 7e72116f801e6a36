// induction_pairs: previous-token head → induction head pairs (K-composition): an edge through the k channel from
// a head in an earlier layer to a head in a later one, with both heads' attention-pattern scores.
//
// `score` = |weight| × prev_token_score(source) × induction_score(target): the pair the edge and both patterns
// agree on ranks first. Heads without the pattern scores (NULL) are left out.
//
// @param graph_id: string                     id of the graph
// @param min_weight: float = 0.0              minimum |weight| of the k edge
// @param min_prev_token_score: float = 0.3    minimum previous-token score of the source head
// @param min_induction_score: float = 0.3     minimum induction score of the target head
// @param limit: integer = 10                  pairs to return
//
// Example (Neo4j Browser):
// :params {graph_id: 'induction-0', min_weight: 0.0, min_prev_token_score: 0.3, min_induction_score: 0.3, limit: 10}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (p:Node {sid: cur1.sid, kind: 'head'})-[r:ATTRIBUTES]->(i:Node {kind: 'head'})
WHERE r.channel = 'k'
  AND p.layer < i.layer
  AND r.abs_weight >= $min_weight
  AND p.prev_token_score >= $min_prev_token_score
  AND i.induction_score >= $min_induction_score
RETURN p.key AS prev_token_head, i.key AS induction_head, r.weight AS weight, r.abs_weight AS abs_weight,
       p.prev_token_score AS prev_token_score, i.induction_score AS induction_score,
       r.abs_weight * p.prev_token_score * i.induction_score AS score
ORDER BY score DESC, prev_token_head, induction_head
LIMIT $limit
