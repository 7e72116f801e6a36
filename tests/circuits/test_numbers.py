"""Numbers that mean something: head statistics on the task's own prompts (and labelled), channel-aware ROC AUC,
truth sets naming the embedding / logits, greedy pruning that respects head groups and warns when it empties,
pruning defaults by granularity, and graph equality that ignores the order of parallel edges."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from circuitdb.circuits.evaluate import roc_auc_edges, roc_auc_nodes
from circuitdb.errors import ConfigError
from circuitdb.graph import AttributionGraph
from circuitdb.pruning import default_method, greedy_prune, prune_result


def _graph(nodes: list[tuple], edges: list[tuple], **meta) -> AttributionGraph:
    cols = ("key", "kind", "layer", "head", "pos")
    nd = pd.DataFrame([dict(zip(cols, n)) for n in nodes])
    idx = {k: i for i, k in enumerate(nd["key"])}
    ch = {"": 0, "q": 1, "k": 2, "v": 3}
    return AttributionGraph(nd, np.array([idx[e[0]] for e in edges]), np.array([idx[e[1]] for e in edges]),
                            np.array([float(e[2]) for e in edges]), np.array([ch[e[3]] for e in edges], np.int8),
                            {"id": "hand", "granularity": "component", **meta})


def _qkv_graph() -> AttributionGraph:
    """E and A0.0 feed A1.0 through q, k and v; the truth is channel-level: E→A1.0 (k) and A0.0→A1.0 (v)."""
    nodes = [("E", "embed", -1, -1, -1), ("A0.0", "head", 0, 0, -1), ("A1.0", "head", 1, 0, -1),
             ("LOGITS", "logit", 2, -1, -1)]
    edges = [("E", "A1.0", 0.9, "k"), ("E", "A1.0", 0.2, "q"), ("E", "A1.0", 0.1, "v"),
             ("A0.0", "A1.0", 0.8, "v"), ("A0.0", "A1.0", 0.3, "q"), ("A0.0", "A1.0", 0.25, "k"),
             ("E", "A0.0", 0.05, "q"), ("A1.0", "LOGITS", 1.0, ""), ("E", "LOGITS", 0.01, "")]
    return _graph(nodes, edges)


def test_roc_auc_edges_is_channel_aware() -> None:
    g = _qkv_graph()
    truth = [("E", "A1.0", "k"), ("A0.0", "A1.0", "v"), ("A1.0", "LOGITS", "")]
    assert roc_auc_edges(g, truth) == 1.0  # the channel ranking is perfect
    # pairs rank pairs (parallel edges collapse to their largest |weight|), not each channel edge as a positive
    assert roc_auc_edges(g, [("E", "A1.0"), ("A0.0", "A1.0"), ("A1.0", "LOGITS")]) == 1.0
    with pytest.raises(ConfigError, match="unknown channel"):
        roc_auc_edges(g, [("E", "A1.0", "x")])
    with pytest.raises(ConfigError, match="not edges of graph"):
        roc_auc_edges(g, [("A1.0", "E", "q")])


def test_roc_auc_nodes_accepts_embed_and_logits_in_the_truth() -> None:
    g = _qkv_graph()
    # abs_sum: E 1.26, A0.0 1.40, A1.0 3.55, LOGITS 1.01; E ranks with the heads once the truth names it
    assert roc_auc_nodes(g, ["A1.0", "E"]) == 0.5  # (A1.0 > A0.0) wins, (E < A0.0) loses
    assert roc_auc_nodes(g, ["LOGITS"]) == 0.0
    with pytest.raises(ConfigError, match="not nodes of graph"):
        roc_auc_nodes(g, ["nope"])


def _per_position_graph() -> AttributionGraph:
    """A head's k input at position 0 acts through its output at position 1 (attention moves it)."""
    nodes = [("E@0", "embed", -1, -1, 0), ("E@1", "embed", -1, -1, 1), ("A0.0@0", "head", 0, 0, 0),
             ("A0.0@1", "head", 0, 0, 1), ("LOGITS@1", "logit", 1, -1, 1)]
    edges = [("A0.0@1", "LOGITS@1", 1.0, ""), ("E@0", "A0.0@0", 0.9, "k"), ("E@1", "A0.0@1", 0.1, "q"),
             ("E@1", "LOGITS@1", 0.05, "")]
    return _graph(nodes, edges)


def test_greedy_respects_head_groups_in_per_position_graphs() -> None:
    g = _per_position_graph()
    res = greedy_prune(g, n=2)
    kept = {(g.keys[s], g.keys[t]) for s, t in zip(g.src[res.edge_mask], g.dst[res.edge_mask])}
    assert ("E@0", "A0.0@0") in kept  # reached through the head's group, not ignored for the weaker q edge
    assert ("A0.0@1", "LOGITS@1") in kept


def test_greedy_warns_when_every_chosen_edge_is_a_dead_end(caplog) -> None:
    g = _per_position_graph()
    with caplog.at_level(logging.WARNING):
        res = greedy_prune(g, n=1)
    assert res.n_edges == 0 and "circuit is empty" in caplog.text


def test_pruning_defaults_by_granularity_and_topn_needs_n() -> None:
    g = _qkv_graph()
    assert default_method(g) == ("greedy", {"n": 1})
    assert prune_result(g).method == "greedy"
    feat = AttributionGraph(g.nodes, g.src, g.dst, g.weight, g.channel, {**g.meta, "granularity": "feature"})
    assert default_method(feat) == ("influence", {}) and prune_result(feat).method == "influence"
    for method in ("topn", "greedy"):
        with pytest.raises(ConfigError, match=f"'{method}' needs n="):
            prune_result(g, method)


def test_equality_ignores_the_order_of_parallel_edges() -> None:
    nodes = [("E", "embed", -1, -1, -1), ("A0.0", "head", 0, 0, -1), ("LOGITS", "logit", 1, -1, -1)]
    a = _graph(nodes, [("E", "A0.0", 1.0, "k"), ("E", "A0.0", 2.0, "k"), ("A0.0", "LOGITS", 1.0, "")])
    b = _graph(nodes, [("A0.0", "LOGITS", 1.0, ""), ("E", "A0.0", 2.0, "k"), ("E", "A0.0", 1.0, "k")])
    assert a.equals(b) and a.diff(b) == []
    c = _graph(nodes, [("E", "A0.0", 1.0, "k"), ("E", "A0.0", 3.0, "k"), ("A0.0", "LOGITS", 1.0, "")])
    assert not a.equals(c)


def test_head_stats_are_computed_on_the_task_prompts_and_labelled() -> None:
    import circuitdb

    model = circuitdb.load_model("toy-induction-2l")
    g = circuitdb.attribute(model, "induction", method="eap", n=8, progress=False)
    label = g.meta["head_stats"]
    assert "clean prompts of dataset 'induction'" in label["computed_on"] and label["n_prompts"] == 8
    heads = g.nodes[g.nodes["kind"] == "head"].set_index("key")
    assert heads["induction_score"].idxmax() == "A1.2" and heads["prev_token_score"].idxmax() == "A0.2"
    # a dataset without answers: attention scores still computed, DLA says why it is missing
    ds = circuitdb.load_task("induction", model, n=4)
    from circuitdb.tasks.base import PromptPairs

    g2 = circuitdb.attribute(model, PromptPairs(ds.clean, ds.corrupted), method="eap", metric="kl", progress=False)
    assert "no answer tokens" in g2.meta["head_stats"]["direct_logit"]
    assert "direct_logit" not in g2.nodes.columns or g2.nodes["direct_logit"].isna().all()
