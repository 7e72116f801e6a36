"""Component graph shapes on every random config, edge rules, hook wiring, and the engine's model settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitdb.attribution.components import (
    ComponentGraph, component_graph, engine_mode, receiver_hooks, source_hooks, split_qkv,
)
from circuitdb.errors import ConfigError
from circuitdb.models import load_model

RANDOM = ["random-attn-1l", "random-2l", "random-4l", "random-gqa", "random-parallel"]


def expected_edges(L: int, H: int, attn_only: bool, parallel: bool) -> int:
    """Count edges by hand: every head input reads E and all earlier layers; an MLP also its own heads (unless
    parallel); LOGITS reads everything."""
    per = H + (0 if attn_only else 1)
    total = 0
    for layer in range(L):
        upstream = 1 + layer * per
        total += 3 * H * upstream
        if not attn_only:
            total += upstream + (0 if parallel else H)
    return total + 1 + L * per


@pytest.mark.parametrize("name", RANDOM)
def test_shapes_on_every_random_config(name: str) -> None:
    model = load_model(name)
    cfg = model.cfg
    comp = component_graph(model)
    H, L = cfg.n_heads, cfg.n_layers
    n_mlp = 0 if cfg.attn_only else L
    assert comp.n_nodes == 1 + L * H + n_mlp + 1
    assert comp.n_src == comp.n_nodes - 1
    assert comp.n_rcv == L * 3 * H + n_mlp + 1
    assert comp.n_edges == expected_edges(L, H, bool(cfg.attn_only), bool(cfg.parallel_attn_mlp))
    assert comp.keys[0] == "E" and comp.keys[-1] == "LOGITS"
    assert ("M0" in comp.keys) == (not cfg.attn_only)
    nodes = comp.node_frame
    assert list(nodes["kind"].value_counts().sort_index().items()) == sorted(
        {"embed": 1, "head": L * H, "logit": 1, **({"mlp": L} if n_mlp else {})}.items())
    assert nodes["layer"].iat[0] == -1 and nodes["layer"].iat[-1] == L
    # every edge runs downstream: source layer < target layer, or a head into its own layer's MLP (non-parallel)
    src_layer = nodes["layer"].to_numpy()[comp.edge_src]
    dst = comp.rcv_node[comp.edge_rcv]
    dst_layer = nodes["layer"].to_numpy()[dst]
    same = src_layer == dst_layer
    assert (src_layer <= dst_layer).all()
    if cfg.parallel_attn_mlp or cfg.attn_only:
        assert not same.any()
    else:
        assert (nodes["kind"].to_numpy()[dst][same] == "mlp").all()
        assert (nodes["kind"].to_numpy()[comp.edge_src][same] == "head").all()
    # channels: q/k/v exactly on edges into heads
    chan = comp.rcv_channel[comp.edge_rcv]
    into_head = nodes["kind"].to_numpy()[dst] == "head"
    assert (chan[into_head] > 0).all() and (chan[~into_head] == 0).all()


@pytest.mark.parametrize("name", RANDOM)
def test_hooks_exist_and_match_slots(name: str) -> None:
    """Every hook the engine uses exists, fires, and has the number of slots the graph assigns (GQA ungrouped)."""
    model = load_model(name)
    comp = component_graph(model)
    seen: dict[str, tuple] = {}

    def grab(act, hook) -> None:  # noqa: ANN001
        seen[hook.name] = tuple(act.shape)

    with engine_mode(model), split_qkv(model, True):
        names = [n for n, _, _ in source_hooks(comp)] + [n for n, _, _ in receiver_hooks(comp)]
        with torch.no_grad(), model.hooks(fwd_hooks=[(n, grab) for n in names]):
            model(torch.zeros(2, 5, dtype=torch.long))
    assert set(seen) == set(names)
    for nm, t0, n in receiver_hooks(comp):
        assert (seen[nm][2] if len(seen[nm]) == 4 else 1) == n, nm
    slots = sorted((t0, n) for _, t0, n in receiver_hooks(comp))
    assert sum(n for _, n in slots) == comp.n_rcv and slots[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(slots, slots[1:]))


def test_engine_mode_restores_model_settings() -> None:
    model = load_model("random-gqa")
    before = {k: getattr(model.cfg, k) for k in ("use_split_qkv_input", "use_attn_result", "use_hook_mlp_in",
                                                "ungroup_grouped_query_attention")}
    with pytest.raises(RuntimeError):
        with engine_mode(model):
            assert model.cfg.use_hook_mlp_in and model.cfg.ungroup_grouped_query_attention
            raise RuntimeError("boom")
    assert {k: getattr(model.cfg, k) for k in before} == before


def test_gqa_ungrouped_is_the_same_function() -> None:
    model = load_model("random-gqa")
    toks = torch.randint(0, model.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(toks)
        with engine_mode(model):
            got = model(toks)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_edge_lookup_and_masks() -> None:
    comp = ComponentGraph(n_layers=2, n_heads=2, attn_only=False, parallel=False)
    i = comp.edge_index("A0.1", "A1.0", "k")
    assert comp.keys[comp.edge_src[i]] == "A0.1" and comp.rcv_node[comp.edge_rcv[i]] == comp.keys.index("A1.0")
    assert comp.rcv_index(1, "k", 0) == comp.edge_rcv[i]
    assert comp.keys[comp.edge_src[comp.edge_index("A0.0", "M0")]] == "A0.0"
    with pytest.raises(ConfigError, match="no edge A1.0 -> A0.0"):
        comp.edge_index("A1.0", "A0.0", "q")
    with pytest.raises(ConfigError, match="unknown component 'A9.9'"):
        comp.edge_index("A9.9", "LOGITS")
    mask = np.zeros(comp.n_edges, bool)
    mask[i] = True
    dense = comp.edge_mask_matrix(mask)
    assert dense.sum() == 1 and dense[comp.rcv_index(1, "k", 0), comp.keys.index("A0.1")]
    with pytest.raises(ConfigError, match="edge mask has 3 entries"):
        comp.edge_mask_matrix(np.zeros(3, bool))


def test_per_position_frames() -> None:
    comp = ComponentGraph(n_layers=1, n_heads=2, attn_only=True, parallel=False)
    scores = np.random.default_rng(0).normal(size=(3, comp.n_rcv, comp.n_src)) * comp.allowed
    nodes, edges = comp.frames(scores, positions=3, tokens=np.array([5, -1, 7]))
    assert len(nodes) == 3 * comp.n_nodes and len(edges) == 3 * comp.n_edges
    assert nodes["key"].iat[comp.n_nodes + 1] == "A0.0@1" and nodes["pos"].iat[comp.n_nodes + 1] == 1
    assert nodes["token"].iat[0] == 5 and nodes["token"].iat[2 * comp.n_nodes] == 7
    # edges stay within one position and carry the right score
    assert (edges["source"] // comp.n_nodes == edges["target"] // comp.n_nodes).all()
    j = comp.n_edges + 2
    p, t, s = 1, comp.edge_rcv[2], comp.edge_src[2]
    assert edges["weight"].iat[j] == scores[p, t, s]


def test_unsupported_architecture_is_a_config_error() -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=8, d_head=4, n_heads=2, n_ctx=8, d_vocab=10,
                                  attn_only=True, positional_embedding_type="shortformer")
    with pytest.raises(ConfigError, match="shortformer"):
        component_graph(HookedTransformer(cfg))
