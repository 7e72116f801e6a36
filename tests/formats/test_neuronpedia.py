"""Neuronpedia / circuit-tracer graph JSON: schema, exact round trips, foreign files, bad files, the store."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from circuitdb.errors import GraphValidationError
from circuitdb.formats import import_file, read_file, write_file
from circuitdb.formats.neuronpedia import read_neuronpedia, to_neuronpedia

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import assert_import_refused, feature_graph  # noqa: E402

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "neuronpedia-graph-schema.json").read_text())


@pytest.fixture(scope="module")
def graph():
    return feature_graph()


def _foreign(doc):
    d = copy.deepcopy(doc)
    d["metadata"].pop("circuitdb")
    for n in d["nodes"]:
        n.pop("circuitdb")
    return d


def test_export_passes_published_schema_and_reads_back_exactly(graph, tmp_path):
    path = write_file(graph, tmp_path / "g.json")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert len(doc["nodes"]) == graph.n_nodes and len(doc["links"]) == graph.n_edges
    back, circuit = read_file(path)
    assert circuit is None
    assert back.diff(graph) == []


def test_layout_matches_circuit_tracer(graph):
    doc = to_neuronpedia(graph, node_threshold=0.8, edge_threshold=0.98)
    by_id = {n["node_id"]: n for n in doc["nodes"]}
    f = by_id["1_107_2"]  # F1:107@2
    assert (f["feature"], f["layer"], f["ctx_idx"], f["feature_type"], f["jsNodeId"]) == (
        107, "1", 2, "cross layer transcoder", "1_107-0")
    e = by_id["E_12_2"]
    assert (e["layer"], e["feature"], e["feature_type"]) == ("E", 2, "embedding")
    top, second = by_id["3_5_3"], by_id["3_9_3"]  # logits sit one layer above the last (n_layers + 1)
    assert top["is_target_logit"] and not second["is_target_logit"]
    assert top["clerp"] == 'Output " Paris" (p=0.600)' and second["clerp"] == 'Output "⏎" (p=0.300)'
    assert top["token_prob"] == 0.6 and top["influence"] is None
    assert by_id["0_error_mlp_1"]["feature_type"] == "mlp reconstruction error"
    assert by_id["0_0_0"]["clerp"] == "the word 'cat'"
    # circuit-tracer's own frontend Node model: feature an int (never null), layer a string, jsNodeId present
    assert all(isinstance(n["feature"], int) and isinstance(n["layer"], str) and n["jsNodeId"] for n in doc["nodes"])
    assert all("(p=" in n["clerp"] for n in doc["nodes"] if n["feature_type"] == "logit")  # the viewer parses it
    md = doc["metadata"]
    assert md["prompt_tokens"] == [" tok0", " tok1", " tok2", " tok3"] and md["prompt"] == "a b c d"
    assert md["pruning_settings"] == {"node_threshold": 0.8, "edge_threshold": 0.98}


def test_influence_is_circuit_tracers_cumulative_score(graph):
    doc = to_neuronpedia(graph)
    infl = graph.nodes["influence"].to_numpy()
    ok = np.isfinite(infl)
    order = np.argsort(-infl[ok])
    expect = np.cumsum(infl[ok][order]) / infl[ok].sum()  # circuit-tracer's prune_graph cumulative_scores
    got = np.array([n["influence"] for n, k in zip(doc["nodes"], ok) if k])[order]
    assert np.allclose(got, expect, rtol=0, atol=1e-12)
    assert got[-1] == pytest.approx(1.0) and np.all(np.diff(got) >= 0)


def test_pruned_export_uses_the_full_graphs_scores(graph):
    from circuitdb.circuits.circuit import circuit_from_nodes

    feats = graph.nodes.loc[graph.nodes["kind"] == "feature", "key"].tolist()[:4]
    c = circuit_from_nodes(graph, feats)
    full = {n["node_id"]: n["influence"] for n in to_neuronpedia(graph)["nodes"]}
    doc = to_neuronpedia(c, reference=graph)
    jsonschema.validate(doc, SCHEMA)
    assert len(doc["nodes"]) == c.n_nodes < graph.n_nodes
    assert all(n["influence"] == full[n["node_id"]] for n in doc["nodes"])


def test_foreign_file_reads_by_layout(graph):
    doc = _foreign(to_neuronpedia(graph))
    back = read_neuronpedia(doc)
    assert sorted(back.keys) == sorted(graph.keys)
    # weights exact; influence = share of the total (raw influence / its sum); labels as the viewer shows them
    a = back.nodes.set_index("key").loc[graph.keys]
    assert (a["layer"].to_numpy() == graph.nodes["layer"].to_numpy()).all()
    assert (a["feature"].to_numpy() == graph.nodes["feature"].to_numpy()).all()
    assert (a["token"].to_numpy() == graph.nodes["token"].to_numpy()).all()
    raw = graph.nodes["influence"].to_numpy()
    ok = np.isfinite(raw)
    assert np.allclose(a["influence"].to_numpy()[ok], raw[ok] / raw[ok].sum(), atol=1e-12)
    e1, e2 = back._edge_table(), graph._edge_table()
    assert (e1.index == e2.index).all() and (e1["weight"].to_numpy() == e2["weight"].to_numpy()).all()
    assert back.meta["tokens"] == [10, 11, 12, 13] and back.meta["prompt"] == "a b c d"


def test_heads_collapse_or_carry():
    from circuitdb.attribution.feature_heads import collapse_heads

    g = _with_heads(feature_graph())
    collapsed = read_neuronpedia(_foreign(to_neuronpedia(g)))
    plain = collapse_heads(g)
    assert collapsed.n_edges == plain.n_edges and "head" not in set(collapsed.nodes["kind"])
    carried_doc = to_neuronpedia(g, heads="carry")
    jsonschema.validate(carried_doc, SCHEMA)
    heads = [n for n in carried_doc["nodes"] if n["feature_type"] == "attention head"]
    assert len(heads) == 2 and len({h["feature"] for h in heads}) == 2
    assert read_neuronpedia(carried_doc).diff(g) == []


def _with_heads(g):
    """Route one edge through a head node (the storage form of feature_heads): s → head (v) → t."""
    import pandas as pd

    from circuitdb.graph import AttributionGraph

    nodes = g.nodes.copy()
    s, t = int(g.src[0]), int(g.dst[0])
    heads = pd.DataFrame([dict(key=f"A0.{h}@1>{g.keys[t]}", kind="head", layer=0, head=h, pos=1, activation=0.1)
                          for h in range(2)])
    nodes = pd.concat([nodes, heads], ignore_index=True)
    h0, h1 = g.n_nodes, g.n_nodes + 1
    src = np.concatenate([g.src, [s, s, h0, h1]])
    dst = np.concatenate([g.dst, [h0, h1, t, t]])
    w = np.concatenate([g.weight, [0.1, 0.2, 0.1, 0.2]])
    ch = np.concatenate([g.channel, [3, 3, 0, 0]])
    return AttributionGraph(nodes, src, dst, w, ch, dict(g.meta))


BAD = {
    "missing field": (lambda d: d["nodes"][5].pop("ctx_idx"), ["nodes[5]", "node_id '0_0_0'", "ctx_idx", "required"]),
    "wrong type": (lambda d: d["nodes"][5].__setitem__("ctx_idx", "two"), ["nodes[5]", "'0_0_0'", "ctx_idx"]),
    "NaN weight": (lambda d: d["links"][5].__setitem__("weight", math.nan), ["links[5]", "weight", "finite"]),
    "unknown node": (lambda d: d["links"][2].__setitem__("target", "9_9_9"), ["links[2]", "target", "'9_9_9'"]),
    "duplicate id": (lambda d: d["nodes"][6].__setitem__("node_id", d["nodes"][5]["node_id"]),
                     ["nodes[6]", "duplicate node_id '0_0_0'", "nodes[5]"]),
    "missing metadata": (lambda d: d["metadata"].pop("prompt"), ["metadata", "prompt", "required"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_get_named_errors_and_write_nothing(graph, tmp_path, case):
    doc = to_neuronpedia(graph)
    assert doc["nodes"][5]["node_id"] == "0_0_0"
    breaker, words = BAD[case]
    breaker(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))  # NaN written as the NaN token Python's json reads back
    assert_import_refused(tmp_path, path, words)


def test_import_into_store_and_query(graph, tmp_path):
    from circuitdb.circuits.query import query
    from circuitdb.store.embedded import EmbeddedStore

    path = write_file(graph, tmp_path / "g.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(_foreign(json.loads(path.read_text()))))
    with EmbeddedStore(tmp_path / "db") as s:
        gid, _ = import_file(s, foreign, graph_id="np-1")
        assert s.read_graph(gid).n_edges == graph.n_edges
        top = query(s, "top_edges", graph_id="np-1", limit=3)
        w = np.sort(np.abs(graph.weight))[::-1][:3]
        assert np.allclose(np.sort(np.abs(top.filter(like="weight").iloc[:, 0].to_numpy()))[::-1], w)
