// ioi_circuit: the IOI roles read off one graph (Wang et al. 2022), one row per (role, head):
//   name_mover      the heads whose direct edges to the logits are strongest (|summed weight|: under patching
//                   ablation a head that carries the answer has a negative EAP score)
//   s_inhibition    the heads feeding the name movers' q channel most strongly (summed |weight|)
//   induction / duplicate_token   the heads feeding the S-inhibition heads most strongly, named by whichever of
//                   their induction / duplicate-token pattern scores is larger
// `score` is the |summed weight| (name movers) or summed |weight| that selected the head; `via` lists what it
// feeds (logits, or heads of the next role); `rank` is 0 for the strongest head of a role.
// Three UNION ALL branches repeat the name-mover selection (no subqueries, so the text runs on both stores).
// Top-k inside the query is a rank count (collect, UNWIND twice, count the better ones), not ORDER BY … LIMIT:
// Ladybug 0.22 ignored a WITH's ORDER BY … LIMIT when more clauses followed (it kept the first rows scanned).
//
// @param graph_id: string                 id of the graph
// @param n_name_movers: integer = 3       name movers to keep
// @param n_s_inhibition: integer = 3      S-inhibition heads to keep
// @param n_feeders: integer = 3           induction / duplicate-token heads to keep
// @param min_weight: float = 0.0          minimum |weight| of the q and feeder edges
// @param feeder_channel: string = null    channel of the feeder edges into S-inhibition heads ('v', 'k', 'q'); null = any
//
// Example (Neo4j Browser):
// :params {graph_id: 'ioi-0', n_name_movers: 3, n_s_inhibition: 3, n_feeders: 3, min_weight: 0.0, feeder_channel: null}
MATCH (cur1:Graph {id: $graph_id}) WHERE cur1.current = true
MATCH (nm:Node {sid: cur1.sid, kind: 'head'})-[r:ATTRIBUTES]->(l:Node {kind: 'logit'})
WITH nm, abs(sum(r.weight)) AS score, collect(DISTINCT l.key) AS via
WHERE score > 0
WITH collect({key: nm.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_name_movers
MATCH (cur2:Graph {id: $graph_id}) WHERE cur2.current = true
MATCH (h:Node {uid: cur2.sid + '/' + x.key})
RETURN 'name_mover' AS role, h.key AS head, h.layer AS layer, h.head AS head_index, x.score AS score, x.via AS via, rank
ORDER BY score DESC
UNION ALL
MATCH (cur3:Graph {id: $graph_id}) WHERE cur3.current = true
MATCH (nm:Node {sid: cur3.sid, kind: 'head'})-[r:ATTRIBUTES]->(l:Node {kind: 'logit'})
WITH nm, abs(sum(r.weight)) AS score, collect(DISTINCT l.key) AS via
WHERE score > 0
WITH collect({key: nm.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_name_movers
MATCH (cur4:Graph {id: $graph_id}) WHERE cur4.current = true
MATCH (nm:Node {uid: cur4.sid + '/' + x.key})
MATCH (s:Node {kind: 'head'})-[q:ATTRIBUTES]->(nm)
WHERE q.channel = 'q' AND q.abs_weight >= $min_weight
WITH s, sum(q.abs_weight) AS score, collect(DISTINCT nm.key) AS via
WITH collect({key: s.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_s_inhibition
MATCH (cur5:Graph {id: $graph_id}) WHERE cur5.current = true
MATCH (h:Node {uid: cur5.sid + '/' + x.key})
RETURN 's_inhibition' AS role, h.key AS head, h.layer AS layer, h.head AS head_index, x.score AS score, x.via AS via, rank
ORDER BY score DESC
UNION ALL
MATCH (cur6:Graph {id: $graph_id}) WHERE cur6.current = true
MATCH (nm:Node {sid: cur6.sid, kind: 'head'})-[r:ATTRIBUTES]->(l:Node {kind: 'logit'})
WITH nm, abs(sum(r.weight)) AS score, collect(DISTINCT l.key) AS via
WHERE score > 0
WITH collect({key: nm.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_name_movers
MATCH (cur7:Graph {id: $graph_id}) WHERE cur7.current = true
MATCH (nm:Node {uid: cur7.sid + '/' + x.key})
MATCH (s:Node {kind: 'head'})-[q:ATTRIBUTES]->(nm)
WHERE q.channel = 'q' AND q.abs_weight >= $min_weight
WITH s, sum(q.abs_weight) AS score, collect(DISTINCT nm.key) AS via
WITH collect({key: s.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_s_inhibition
MATCH (cur8:Graph {id: $graph_id}) WHERE cur8.current = true
MATCH (s:Node {uid: cur8.sid + '/' + x.key})
MATCH (d:Node {kind: 'head'})-[f:ATTRIBUTES]->(s)
WHERE f.abs_weight >= $min_weight AND (f.channel = $feeder_channel OR $feeder_channel IS NULL)
WITH d, sum(f.abs_weight) AS score, collect(DISTINCT s.key) AS via
WITH collect({key: d.key, score: score, via: via}) AS xs
UNWIND xs AS x
UNWIND xs AS y
WITH x, sum(CASE WHEN y.score > x.score OR (y.score = x.score AND y.key < x.key) THEN 1 ELSE 0 END) AS rank
WHERE rank < $n_feeders
MATCH (cur9:Graph {id: $graph_id}) WHERE cur9.current = true
MATCH (d:Node {uid: cur9.sid + '/' + x.key})
RETURN CASE WHEN coalesce(d.induction_score, 0.0) >= coalesce(d.duplicate_token_score, 0.0) THEN 'induction'
            ELSE 'duplicate_token' END AS role,
       d.key AS head, d.layer AS layer, d.head AS head_index, x.score AS score, x.via AS via, rank
ORDER BY score DESC
