"""Load the compiled tracr fixtures (``fixtures/tracr/*.json`` + ``.safetensors``, made by ``fixtures/make_tracr.py``)
as TransformerLens models, with a prompt-pair dataset and the true-edge labels of the component graph. No jax."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tracr"
TUNE = ("sort", "sort_unique", "hist", "make_length")
HELD_OUT = ("reverse", "sort_freq")
PROGRAMS = TUNE + HELD_OUT


@lru_cache(maxsize=None)
def meta(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def load_tracr(name: str, dtype: torch.dtype = torch.float32):
    """The compiled program as a HookedTransformer (bidirectional attention, no LayerNorm)."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**meta(name)["cfg"], dtype=dtype, device="cpu", seed=0)
    model = HookedTransformer(cfg)
    sd = {k: v.to(dtype) for k, v in load_file(str(FIXTURES / f"{name}.safetensors")).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    assert not bad and not unexpected, (bad, unexpected)
    model.eval()
    return model


def dataset(name: str, n: int | None = None, seed: int = 0):
    """Clean = the sample inputs; corrupted = another sample; the answer is the compiled output at a random
    non-BOS, non-PAD position and ``wrong`` a different output value (so ``logit_diff`` reads one output decision)."""
    from circuitdb.tasks.base import PromptPairs

    m = meta(name)
    ex = m["examples"][:n] if n else m["examples"]
    rng = np.random.default_rng(seed)
    n_out = len(m["output_encoding"])
    clean = torch.tensor([e["ids"] for e in ex])
    corrupted = torch.roll(clean, 1, dims=0)
    pos = torch.as_tensor([int(rng.integers(1, e["n_real"])) for e in ex])
    answer = torch.tensor([ex[i]["output_ids"][int(p)] for i, p in enumerate(pos)])
    wrong = (answer + torch.as_tensor(rng.integers(1, n_out, len(ex)))) % n_out
    texts = tuple(" ".join(map(str, e["input"])) for e in ex)
    return PromptPairs(clean, corrupted, answer, wrong, pos, name=f"tracr-{name}", texts=texts,
                       meta={"program": name, "metric": "logit_diff"})


def true_edges(name: str) -> set[tuple[str, str, str]]:
    return {tuple(e) for e in meta(name)["true_edges"]}


def edge_labels(graph, name: str) -> np.ndarray:
    """True for each edge of a component graph (from ``circuitdb.attribute``) that the program's dataflow has."""
    from circuitdb.graph import CHANNELS

    truth = true_edges(name)
    k = graph.keys
    return np.fromiter(((s, t, CHANNELS[c]) in truth for s, t, c in zip(k[graph.src], k[graph.dst], graph.channel)),
                       bool, graph.n_edges)


TIE = 1e-5
"""Scores within TIE · max |score| of zero count as ties at zero (float32 noise is not a ranking)."""


def edge_auc(graph, name: str, tie: float = TIE) -> float:
    """Edge ROC AUC of |weight| against the program's true edges (q/k/v channels kept apart; near-zero = tie)."""
    from circuitdb.circuits.evaluate import roc_auc

    w = np.abs(graph.weight)
    return roc_auc(np.where(w > tie * max(w.max(), 1e-30), w, 0.0), edge_labels(graph, name))


def support_edges(model, name: str) -> set[tuple[str, str, str]]:
    """The structural edges re-derived from the weights alone: ``u → v`` where what ``u`` writes (non-zero output
    columns) meets what ``v`` reads on that channel (non-zero input rows), for ``u`` upstream of ``v``."""
    from circuitdb.attribution.components import component_graph
    from circuitdb.graph import CHANNELS

    comp, cfg, eps = component_graph(model), model.cfg, 1e-9
    nz = lambda t, dim: (t.abs().amax(dim=dim) > eps)  # noqa: E731
    writes = {"E": nz(model.W_E, 0) | nz(model.W_pos, 0)}
    reads: dict[tuple[str, str], torch.Tensor] = {}
    for layer in range(cfg.n_layers):
        b = model.blocks[layer]
        for h in range(cfg.n_heads):
            writes[f"A{layer}.{h}"] = nz(b.attn.W_O[h], 0)
            for c in "qkv":
                reads[(f"A{layer}.{h}", c)] = nz(getattr(b.attn, f"W_{c.upper()}")[h], 1)
        writes[f"M{layer}"] = nz(b.mlp.W_out, 0)
        reads[(f"M{layer}", "")] = nz(b.mlp.W_in, 1)
    reads[("LOGITS", "")] = nz(model.W_U, 1)
    out = set()
    for t, s in zip(comp.edge_rcv, comp.edge_src):
        u, v, c = comp.keys[s], comp.keys[comp.rcv_node[t]], CHANNELS[comp.rcv_channel[t]]
        if bool((writes[u] & reads[(v, c)]).any()):
            out.add((u, v, c))
    return out
