"""toy-ioi-circuit: the full IOI circuit (duplicate-token → S-inhibition → name movers), each role found twice and
independently: from attention patterns on prompts the attribution never saw, and by the ``ioi_circuit`` query on an
EAP-IG graph; the query's heads make a circuit that is faithful on held-out prompts.

The model was trained with one head per role guided (A0.0 S2→S1, A1.0 END→S2, A2.0 END→IO; see
``circuitdb.models.train``'s ``toy-ioi-circuit`` recipe); A1.2, A2.2 and A2.3 took roles on their own, so the test
also checks that the query finds heads nobody told it about."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("torch")

import circuitdb  # noqa: E402
from circuitdb.circuits.circuit import circuit_from_nodes  # noqa: E402
from circuitdb.circuits.query import query  # noqa: E402
from circuitdb.errors import ConfigError  # noqa: E402
from circuitdb.models import load_model  # noqa: E402
from circuitdb.store.base import open_store  # noqa: E402
from circuitdb.tasks import load_task  # noqa: E402

log = logging.getLogger(__name__)


def _attention_roles(model) -> dict[str, set[str]]:  # noqa: ANN001
    """Heads whose mean attention on 64 held-out IOI prompts (seed 5) makes them a role: duplicate-token (S2→S1),
    S-inhibition (END→S2) and name mover (END→IO, with END→S1 and END→S2 both low)."""
    from circuitdb.models.attention_scores import ioi_attention

    a = ioi_attention(model, load_task("ioi", model, n=64, seed=5))
    log.info("toy-ioi-circuit attention: %s", {k: [[round(float(x), 2) for x in r] for r in v] for k, v in a.items()})
    heads = lambda mask: {f"A{int(l_)}.{int(h)}" for l_, h in mask.nonzero().tolist()}  # noqa: E731
    return {"duplicate_token": heads(a["s2_s1"] >= 0.9),
            "s_inhibition": heads(a["end_s2"] >= 0.9),
            "name_mover": heads((a["end_io"] >= 0.9) & (a["end_s1"] < 0.05) & (a["end_s2"] < 0.05))}


def test_full_ioi_circuit_roles_from_attention_and_from_the_graph(tmp_path):
    model = load_model("toy-ioi-circuit")
    truth = _attention_roles(model)
    assert all(truth.values()), truth  # every role exists in the model's attention
    assert {"A0.0", "A1.0", "A2.0"} <= set().union(*truth.values())  # the guided heads did what they were told
    ds = load_task("ioi", model, n=24, seed=0)
    graph = circuitdb.attribute(model, ds, method="eap-ig", progress=False, graph_id="ioi-full")
    store = open_store(f"embedded:{tmp_path}/db")
    store.write_graph(graph)
    roles = query(store, "ioi_circuit", graph_id=graph.id)
    log.info("toy-ioi-circuit roles:\n%s", roles.to_string())
    assert {"name_mover", "s_inhibition", "duplicate_token"} <= set(roles["role"])
    # the query's heads that carry weight (≥ 10 % of the strongest of their role) are exactly the attention roles
    for role in truth:
        rows = roles[roles.role == role]
        strong = set(rows[rows.score >= 0.1 * rows.score.max()]["head"])
        assert strong == truth[role], (role, strong, truth[role])
    circuit = circuit_from_nodes(graph, roles["head"], include_kinds=("embed", "logit", "mlp"), method="ioi_circuit")
    inside = circuit.evaluate(model, split="in_sample")
    held = inside.evaluate(model, split="held_out", n=64)
    log.info("toy-ioi-circuit: %d/%d edges, faithfulness %.3f in sample, %.3f held out", circuit.n_edges,
             graph.n_edges, inside.scores["faithfulness"], held.scores["faithfulness"])
    assert held.scores["split"] == "held_out" and held.scores["faithfulness"] >= 0.8
    assert inside.scores["faithfulness"] >= 0.8
    # without the duplicate-token head the circuit loses most of its effect: the roles are causal, not decoration
    no_dup = circuit_from_nodes(graph, [h for h in roles["head"] if h not in truth["duplicate_token"]],
                                include_kinds=("embed", "logit", "mlp"), method="ioi_circuit")
    assert no_dup.evaluate(model, split="held_out", n=64).scores["faithfulness"] < 0.5
    store.close()


def test_guided_training_roles_are_checked():
    from circuitdb.models.train_ioi import IOIData, role_positions

    with pytest.raises(ConfigError, match="name_movers.*valid options: duplicate_token, s_inhibition, name_mover"):
        IOIData(guide={"name_movers": [[2, 0]]})
    import torch

    #                     BOS  Mary John went John gave to
    prompts = torch.tensor([[0, 5, 6, 9, 6, 10, 11]])
    pos = role_positions(prompts, torch.tensor([5]), torch.tensor([6]))
    assert {k: int(v) for k, v in pos.items()} == {"io": 1, "s1": 2, "s2": 4, "end": 6}


def test_feature_graph_with_the_retrained_transcoders():
    """toy-ioi-circuit's own transcoders (dictionaries/, FVE 0.89–0.98) give a feature graph whose top logit is the
    IO name and whose replacement model explains most of the prompt (circuit-tracer's replacement score)."""
    model = load_model("toy-ioi-circuit")
    ds = load_task("ioi", model, n=1, seed=3)
    g = circuitdb.attribute_features(model, ds.clean[0], progress=False)
    assert {d.split("/")[0] for d in g.meta["dictionaries"]} == {"toy-ioi-circuit"}
    logits = g.nodes[g.nodes.kind == "logit"].sort_values("probability", ascending=False)
    assert int(logits["token"].iat[0]) == int(ds.answer[0])
    assert g.meta["scores"]["replacement"] >= 0.6 and g.meta["scores"]["completeness"] >= 0.85
