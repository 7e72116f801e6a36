"""to_networkx keeps q/k/v channels apart; GraphML and GEXF round trips are exact."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from circuitdb.formats import read_file, write_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import component_graph, feature_graph  # noqa: E402


def test_multidigraph_keeps_channels_apart():
    g = component_graph()
    nxg = g.to_networkx()
    assert nxg.number_of_edges() == g.n_edges and nxg.number_of_nodes() == g.n_nodes
    qkv = nxg.get_edge_data("E", "A1.0")
    assert sorted(d["channel"] for d in qkv.values()) == ["k", "q", "v"]
    i, j = g.node_index("E"), g.node_index("A1.0")
    expect = {c: w for s, t, w, c in zip(g.src, g.dst, g.weight, g.channel) if s == i and t == j}
    assert {"qkv"[c - 1]: w for c, w in expect.items()} == {d["channel"]: d["weight"] for d in qkv.values()}
    assert nxg.nodes["A0.1"]["head"] == 1 and "influence" not in nxg.nodes["A0.1"]  # NaN left out


def test_circuit_to_networkx_no_longer_merges_qkv():
    from circuitdb.circuits.circuit import Circuit

    g = component_graph(n_layers=1, n_heads=2, attn_only=True)  # E → 2 heads × q/k/v, heads/E → LOGITS
    heads = g.subgraph((g.nodes["kind"].to_numpy()[g.dst] == "head")[:] | True)
    c = Circuit(heads, source_graph_id=g.id, method="none")
    nxg = c.to_networkx()
    assert c.n_edges == 9 and nxg.number_of_edges() == 9  # the DiGraph of old gave 5 (q/k/v summed)
    assert nxg.graph["graph_id"] == g.id


@pytest.mark.parametrize("fmt", ["graphml", "gexf"])
@pytest.mark.parametrize("make", [component_graph, feature_graph])
def test_file_round_trip_exact(fmt, make, tmp_path):
    g = make()
    p = write_file(g, tmp_path / f"g.{fmt}")
    back, _ = read_file(p)
    assert back.diff(g) == []
