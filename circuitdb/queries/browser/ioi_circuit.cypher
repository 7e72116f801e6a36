// ioi_circuit (Browser form): the IOI roles of queries/ioi_circuit.cypher drawn — the name movers with their
// edges into the logits, the S-inhibition heads with their q edges into the name movers, and the induction /
// duplicate-token feeders with their edges into the S-inhibition heads (each role's top heads, ties by key).
MATCH (g:Graph {id: $graph_id, current: true})
CALL (g) {
  MATCH (h:Head {sid: g.sid})-[r:ATTRIBUTES]->(:Logit)
  WITH h, abs(sum(r.weight)) AS score WHERE score > 0
  RETURN h ORDER BY score DESC, h.key LIMIT $n_name_movers
}
WITH g, collect(h) AS movers
CALL (movers) {
  UNWIND movers AS m
  MATCH (s:Head)-[q:ATTRIBUTES {channel: 'q'}]->(m) WHERE q.abs_weight >= $min_weight
  WITH s, sum(q.abs_weight) AS score
  RETURN s ORDER BY score DESC, s.key LIMIT $n_s_inhibition
}
WITH movers, collect(s) AS inhibitors
CALL (inhibitors) {
  UNWIND inhibitors AS s
  MATCH (d:Head)-[f:ATTRIBUTES]->(s)
  WHERE f.abs_weight >= $min_weight AND (f.channel = $feeder_channel OR $feeder_channel IS NULL)
  WITH d, sum(f.abs_weight) AS score
  RETURN d ORDER BY score DESC, d.key LIMIT $n_feeders
}
WITH movers, inhibitors, collect(d) AS feeders
CALL (movers, inhibitors, feeders) {
  UNWIND movers AS m
  MATCH (m)-[e:ATTRIBUTES]->(:Logit)
  RETURN e
  UNION
  UNWIND inhibitors AS s
  MATCH (s)-[e:ATTRIBUTES {channel: 'q'}]->(m) WHERE m IN movers AND e.abs_weight >= $min_weight
  RETURN e
  UNION
  UNWIND feeders AS d
  MATCH (d)-[e:ATTRIBUTES]->(s)
  WHERE s IN inhibitors AND e.abs_weight >= $min_weight AND (e.channel = $feeder_channel OR $feeder_channel IS NULL)
  RETURN e
}
RETURN startNode(e) AS a, e, endNode(e) AS b
