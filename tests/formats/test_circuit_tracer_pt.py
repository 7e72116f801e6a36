"""circuit-tracer's saved Graph (.pt): a fixture in circuit-tracer's exact layout imports with the expected nodes,
weights and influence; files carrying foreign pickled objects are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitdb.errors import GraphValidationError
from circuitdb.formats import guess_format, read_file


def _circuit_tracer_file(path, *, n_layers=2, n_pos=3, seed=0):
    """What circuit-tracer's Graph.to_pt writes: nodes [features, errors (layer-major), tokens, logits]."""
    from transformer_lens import HookedTransformerConfig

    g = torch.Generator().manual_seed(seed)
    active = torch.tensor([[0, 0, 11], [0, 2, 5], [1, 1, 11], [1, 2, 40], [1, 0, 3]])  # (layer, pos, index)
    selected = torch.tensor([0, 1, 2, 3])  # the 5th active feature was not selected
    F, E, K = 4, n_layers * n_pos, 2
    n = F + E + n_pos + K
    # a DAG by layer: tokens (-1) → features/errors of layer 0 → layer 1 → logits (n_layers)
    order = active[selected, 0].tolist() + [l for l in range(n_layers) for _ in range(n_pos)] + [-1] * n_pos \
        + [n_layers] * K
    adj = torch.zeros(n, n)
    for t in range(n):
        for s in range(n):
            if order[s] < order[t] and order[s] < n_layers and torch.rand(1, generator=g) < 0.6:
                adj[t, s] = torch.randn(1, generator=g)
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=8, n_ctx=8, d_head=4, n_heads=2, d_vocab=50,
                                  act_fn="relu", model_name="toy-ct")
    torch.save({"input_string": "a b c", "adjacency_matrix": adj, "cfg": cfg, "active_features": active,
                "logit_tokens": torch.tensor([7, 9]), "logit_probabilities": torch.tensor([0.7, 0.2]),
                "input_tokens": torch.tensor([1, 2, 3]), "selected_features": selected,
                "activation_values": torch.tensor([1.5, 2.5, 3.5, 4.5, 5.5]), "scan": "toy-scan"}, path)
    return adj


def test_imports_expected_nodes_and_weights(tmp_path):
    p = tmp_path / "g.pt"
    adj = _circuit_tracer_file(p)
    assert guess_format(p) == "circuit-tracer"
    g, _ = read_file(p)
    keys = g.keys.tolist()
    assert keys[:4] == ["F0:11@0", "F0:5@2", "F1:11@1", "F1:40@2"]
    assert keys[4:10] == ["ERR0@0", "ERR0@1", "ERR0@2", "ERR1@0", "ERR1@1", "ERR1@2"]
    assert keys[10:] == ["E@0", "E@1", "E@2", "L:7@2", "L:9@2"]
    n = g.nodes.set_index("key")
    assert n.loc["F1:40@2", "activation"] == 4.5 and n.loc["F1:40@2", "dictionary"] == "toy-scan/L1"
    assert n.loc["L:7@2", "probability"] == pytest.approx(0.7) and n.loc["L:7@2", "layer"] == 2
    assert n.loc["E@1", "token"] == 2
    dense = np.zeros((g.n_nodes, g.n_nodes))
    dense[g.dst, g.src] = g.weight
    assert np.array_equal(dense, adj.double().numpy())
    assert g.n_edges == int((adj != 0).sum())
    # influence: circuit-tracer's compute_node_influence on the same matrix, written out independently
    A = np.abs(adj.double().numpy())
    A = A / np.maximum(A.sum(1, keepdims=True), 1e-10)
    w = np.zeros(len(A)); w[-2:] = [0.7, 0.2]
    total = w @ np.linalg.inv(np.eye(len(A)) - A) - w
    assert np.allclose(g.nodes["influence"].to_numpy()[:-2], total[:-2], atol=1e-6)
    assert g.meta["prompt"] == "a b c" and g.meta["tokens"] == [1, 2, 3]


def test_refuses_foreign_objects_and_bad_shapes(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"adjacency_matrix": torch.zeros(2, 2), "payload": np.random.default_rng(0)}, p)
    with pytest.raises(GraphValidationError, match="safely"):
        read_file(p, format="circuit-tracer")
    q = tmp_path / "short.pt"
    _circuit_tracer_file(q)
    d = torch.load(q, weights_only=False)
    d["adjacency_matrix"] = d["adjacency_matrix"][:-1]
    torch.save(d, q)
    with pytest.raises(GraphValidationError, match="adjacency_matrix has shape"):
        read_file(q, format="circuit-tracer")
