"""EAP-IG / MIB circuit files: EAP-IG's names and real-edge list, exact round trips (JSON and .pt), bad files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.formats import import_file, read_file, write_file
from circuitdb.formats.eap_ig import real_edges, read_eap_ig, to_eap_ig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import assert_import_refused, component_graph, feature_graph  # noqa: E402


def test_real_edges_match_eap_ig_counts():
    # EAP-IG Graph.from_model: n_forward = 1 + L(H+1), n_backward = L(3H+1) + 1; GPT-2 small has 32491 edges
    assert len(real_edges(12, 12)) == 32491
    e = real_edges(2, 2)
    names = {f"{p}->{c}" + (f"<{q}>" if q else "") for p, c, q in e}
    assert {"input->a0.h1<q>", "a0.h1->m0", "m0->a1.h0<v>", "a1.h1->logits", "input->logits"} <= names
    assert "m0->a0.h0<q>" not in names and "a1.h0->m0" not in names
    assert len(real_edges(2, 2, parallel_attn_mlp=True)) < len(e)  # no same-layer head → MLP edges


@pytest.mark.parametrize("kw", [{}, {"attn_only": True}, {"drop": 0.4}])
def test_json_round_trip_exact(kw, tmp_path):
    g = component_graph(**kw)
    path = write_file(g, tmp_path / "g.json", format="eap-ig", d_model=16)
    doc = json.loads(path.read_text())
    assert doc["cfg"] == {"n_layers": 2, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 16}
    assert len(doc["edges"]) == len(real_edges(2, 2))
    on = {k for k, v in doc["nodes"].items() if v["in_graph"]}
    assert on == ({"input", "a0.h0", "a0.h1", "a1.h0", "a1.h1", "logits"} | (set() if kw.get("attn_only") else
                                                                           {"m0", "m1"}))
    back, circuit = read_file(path)
    assert back.diff(g) == []  # a circuitdb graph comes back whole (meta and node columns ride along)
    assert circuit.n_edges == g.n_edges
    foreign = {k: v for k, v in doc.items() if k != "circuitdb"}  # as EAP-IG itself writes it
    g2, _ = read_eap_ig(foreign)
    assert sorted(g2.keys) == sorted(g.keys) and g2._edge_table().equals(g._edge_table())  # scores exact
    assert to_eap_ig(g2) == foreign  # file → graph → file: the same JSON


def test_circuit_marks_in_graph_and_pt_round_trip(tmp_path):
    from circuitdb.circuits.circuit import circuit_from_nodes

    g = component_graph()
    c = circuit_from_nodes(g, ["A0.1", "A1.0"])
    doc = to_eap_ig(c, d_model=16)
    on = {k for k, v in doc["edges"].items() if v["in_graph"]}
    assert len(on) == c.n_edges and "A0.1" in c.node_keys and doc["nodes"]["a0.h1"]["in_graph"]
    assert not doc["nodes"]["a0.h0"]["in_graph"]
    g2, c2 = read_eap_ig(doc)
    assert c2.edges.sort_values(["source", "target", "channel"]).reset_index(drop=True)[
        ["source", "target", "channel"]].equals(
        c.edges.sort_values(["source", "target", "channel"]).reset_index(drop=True)[["source", "target", "channel"]])
    pt = write_file(c, tmp_path / "c.pt", format="eap-ig", d_model=16)
    g3, c3 = read_file(pt)
    assert g3.diff(g2, meta=False, atol=1e-6) == [] and c3.n_edges == c.n_edges  # float32 scores in .pt


def test_graphs_that_have_no_eap_ig_form():
    with pytest.raises(ConfigError, match="component graph"):
        to_eap_ig(feature_graph())


BAD = {
    "missing cfg field": (lambda d: d["cfg"].pop("n_heads"), ["cfg", "n_heads", "required"]),
    "NaN score": (lambda d: d["edges"]["input->a0.h1<q>"].__setitem__("score", float("nan")),
                  ["edges.input->a0.h1<q>", "score", "finite"]),
    "wrong type": (lambda d: d["edges"]["a0.h1->m0"].__setitem__("in_graph", "yes"), ["a0.h1->m0", "in_graph"]),
    "unknown node": (lambda d: d["edges"].__setitem__("a7.h0->logits", {"score": 1.0, "in_graph": True}),
                     ["'a7.h0->logits'", "not an edge"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files(case, tmp_path):
    doc = to_eap_ig(component_graph(), d_model=16)
    breaker, words = BAD[case]
    breaker(doc)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    assert_import_refused(tmp_path, p, words)


def test_import_writes_graph_and_circuit(tmp_path):
    from circuitdb.circuits.circuit import Circuit, circuit_from_nodes
    from circuitdb.store.embedded import EmbeddedStore

    g = component_graph()
    c = circuit_from_nodes(g, ["A0.1", "A1.0"])
    p = write_file(c, tmp_path / "c.json", format="eap-ig", d_model=16)
    with EmbeddedStore(tmp_path / "db") as s:
        gid, name = import_file(s, p, graph_id="eap-1")
        back = Circuit.load(s, name, gid)
        assert back.n_edges == c.n_edges and sorted(back.node_keys) == sorted(c.node_keys)
        assert np.isclose(np.sort(back.graph.weight), np.sort(c.graph.weight)).all()
