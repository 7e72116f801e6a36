"""A saved circuit comes back with exactly its edges, channels included, and edge_mask_in finds them in the graph."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitdb.circuits.circuit import Circuit
from circuitdb.graph import AttributionGraph


def _graph() -> AttributionGraph:
    nodes = pd.DataFrame({"key": ["E", "A0.0", "A1.0", "LOGITS"], "kind": ["embed", "head", "head", "logit"],
                          "layer": [-1, 0, 1, 2]})
    edges = pd.DataFrame({"source": [0, 0, 1, 1, 1, 2], "target": [1, 2, 2, 2, 3, 3],
                          "weight": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "channel": ["v", "q", "k", "v", "", ""]})
    return AttributionGraph.from_frames(nodes, edges, {"id": "g"})


def test_circuit_edges_round_trip_through_a_record() -> None:
    g = _graph()
    keep = np.array([False, True, True, False, False, True])  # E->A1.0 q, A0.0->A1.0 k, A1.0->LOGITS
    c = Circuit(g.subgraph(keep), source_graph_id="g", method="manual", params={}, scores={})
    assert c.edge_mask_in(g).tolist() == keep.tolist()
    rec = {"name": "c", "graph_id": "g", "method": "manual", "node_keys": list(c.node_keys), "edges": c.edges}
    back = Circuit.from_record(g, rec)
    assert back.edge_mask_in(g).tolist() == keep.tolist()  # A0.0 -> A1.0 v (same nodes, other channel) stays out
