"""On ``toy-induction-2l`` EAP-IG finds the induction circuit that attention patterns identify independently.

Ground truth comes from attention patterns on the task's clean prompts ``[BOS] r_1..r_L r_1..r_{L-1}`` only:
- previous-token head: a layer-0 head with mean attention ≥ 0.5 at one fixed offset ``q → q − d``, ``d ∈ {1, 2}``.
  (The shipped model has one ``d = 1`` head and one ``d = 2`` "two back" head; both feed the induction head's keys,
  K-composition with a two-token context, so both are previous-token heads of the mechanism.)
- induction head: a layer-1 head with mean attention ≥ 0.3 from position ``i`` of the second copy to ``i − L + 1``.
- distractor: a head whose scores are all < 0.2. Heads in between are left out of the AUC.
Node score: the summed |weight| of the node's in- and out-edges in the EAP-IG graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import circuitdb


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    model = circuitdb.load_model("toy-induction-2l")
    ds = circuitdb.load_task("induction", model, n=32, seed=0)
    graph = circuitdb.attribute(model, ds, method="eap-ig", progress=False, head_stats=False)
    return model, ds, graph


def pattern_scores(model, ds) -> dict[str, dict[str, float]]:  # noqa: ANN001
    _, cache = model.run_with_cache(ds.clean, names_filter=lambda n: n.endswith("hook_pattern"))
    s, L = ds.seq_len, ds.meta["half_len"]
    out: dict[str, dict[str, float]] = {}
    for layer in range(model.cfg.n_layers):
        p = cache[f"blocks.{layer}.attn.hook_pattern"]  # batch head query key
        for h in range(model.cfg.n_heads):
            sc = {}
            for d in (1, 2):
                q = torch.arange(d + 1, s)
                sc[f"prev{d}"] = float(p[:, h, q, q - d].mean())
            q = torch.arange(L + 1, s)
            sc["induction"] = float(p[:, h, q, q - L + 1].mean())
            out[f"A{layer}.{h}"] = sc
    return out


def roc_auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_node_ranking_puts_circuit_heads_on_top(setup) -> None:  # noqa: ANN001
    model, ds, g = setup
    scores = pattern_scores(model, ds)
    prev = [k for k, v in scores.items() if k.startswith("A0.") and max(v["prev1"], v["prev2"]) >= 0.5]
    ind = [k for k, v in scores.items() if k.startswith("A1.") and v["induction"] >= 0.3]
    distractors = [k for k, v in scores.items() if max(v.values()) < 0.2]
    assert prev and ind and distractors, scores
    node_score = np.zeros(g.n_nodes)
    np.add.at(node_score, g.src, g.abs_weight)
    np.add.at(node_score, g.dst, g.abs_weight)
    by_key = dict(zip(g.keys, node_score))
    auc = roc_auc([by_key[k] for k in prev + ind], [by_key[k] for k in distractors])
    assert auc >= 0.95, (auc, prev, ind, distractors, by_key)


def test_prev_token_to_induction_goes_through_keys(setup) -> None:  # noqa: ANN001
    model, ds, g = setup
    scores = pattern_scores(model, ds)
    prev = [k for k, v in scores.items() if k.startswith("A0.") and max(v["prev1"], v["prev2"]) >= 0.5]
    ind = [k for k, v in scores.items() if k.startswith("A1.") and v["induction"] >= 0.3]
    nodes, edges = g.to_frames()
    keys = nodes["key"].to_numpy()
    edges = edges.assign(s=keys[edges["source"]], t=keys[edges["target"]], a=edges["weight"].abs())
    for i in ind:
        for p in prev:
            w = {c: float(edges[(edges.s == p) & (edges.t == i) & (edges.channel == c)]["a"].iloc[0]) for c in "qkv"}
            assert w["k"] > w["q"] and w["k"] > w["v"], (p, i, w)
        into_k = edges[(edges.t == i) & (edges.channel == "k")].sort_values("a", ascending=False)
        assert into_k["s"].iloc[0] in prev, into_k.head()
    # the one-offset previous-token head is among them (the classic circuit, not only the two-back head)
    assert any(scores[p]["prev1"] >= 0.5 for p in prev)
