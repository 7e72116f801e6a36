"""Heads inside feature graphs: split every edge by the *last* attention head its signal passes through.

Conventions (stated once):
- In the frozen replacement model a target ``t`` at position ``p`` reads the residual stream with a vector ``r_t``.
  Going down from ``t``, the signal that has not yet crossed a head (the *direct* part) is ``r_t`` at ``p``; at
  attention layer ``l`` head ``h`` turns it into ``attn_back_{l,h}(r_t)``, which then travels down through every lower
  layer, heads included. So ``A(s→t) = direct(s→t) + Σ_{l,h} part_{l,h}(s→t)`` exactly (linearity), where
  ``part_{l,h}`` is the signal whose last head before ``t`` is ``(l, h)`` writing at position ``p``; ``direct`` is
  non-zero only for sources at ``p`` (no position change without a head).
- Storage form (in the graph): one head node per (head, target), key ``A{l}.{h}@{p}>{target key}``; edges
  ``source → head`` (channel ``v``: the signal enters through the head's value input) carry ``part_{l,h}(s→t)``,
  ``head → target`` carries the head node's value ``Σ_s part_{l,h}(s→t)``, and the plain ``source → target`` edge
  carries only the direct part. Every node's value is the sum of its in-edges, and the sum over the one- and two-hop
  paths from ``s`` to ``t`` is the full ``A(s→t)`` (:func:`collapse_heads` gives the plain feature graph back).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.attribution.replacement import ReplacementModel


def head_parts(rm: ReplacementModel, targets: list[tuple[str, int, int, int]]
               ) -> tuple[Float[Tensor, "B n_src"], dict[tuple[int, int], Float[Tensor, "B n_src"]]]:
    """``(direct, {(layer, head): part})`` for a batch of targets; ``direct + Σ parts`` equals :meth:`rm.rows`."""
    top, raw, _ = rm.injections(targets)
    B = len(targets)
    G = torch.zeros(B, rm.P, rm.cfg.d_model, dtype=rm.dtype, device=rm.device)
    arriving: dict[int, Tensor] = {}
    parts: dict[tuple[int, int], Tensor] = {}
    with torch.no_grad():
        direct = rm.source_rows(rm.propagate(G, len(rm.steps), top, raw, heads=False, record=arriving))
        for l, D in sorted(arriving.items()):
            if not bool(D.any()):
                continue
            Gh = rm.attn_back(l, D, per_head=True)  # [H, B, P, d]
            H = Gh.shape[0]
            grads = rm.propagate(Gh.reshape(H * B, rm.P, -1), rm.step_index("attn", l), {}, {})
            rows = rm.source_rows(grads).reshape(H, B, -1)
            for h in range(H):
                parts[(l, h)] = rows[h]
    return direct, parts


def head_frames(direct: np.ndarray, parts: dict[tuple[int, int], np.ndarray], target_nodes: np.ndarray,
                target_keys: np.ndarray, target_pos: np.ndarray, source_nodes: np.ndarray, first_id: int
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Head nodes and the edges through them for one batch.

    ``direct`` / ``parts[(l, h)]`` are ``[B, n_cols]`` over the kept source columns whose node rows are
    ``source_nodes``; target ``b`` is node ``target_nodes[b]``. New head nodes get rows from ``first_id`` on.
    Returns the head node frame and edge arrays ``src, dst, weight, channel`` (direct edges included).
    """
    frames: list[pd.DataFrame] = []
    src, dst, w, ch = [], [], [], []
    b_idx, c_idx = np.nonzero(direct)
    src.append(source_nodes[c_idx]); dst.append(target_nodes[b_idx]); w.append(direct[b_idx, c_idx])
    ch.append(np.zeros(len(b_idx), np.int8))
    nid = first_id
    for (l, h), part in sorted(parts.items()):
        b_idx, c_idx = np.nonzero(part)
        live = np.unique(b_idx)  # targets this head reaches
        if not len(live):
            continue
        node_of = np.full(len(part), -1, np.int64)
        node_of[live] = nid + np.arange(len(live))
        value = part[live].sum(1)
        frames.append(pd.DataFrame({
            "key": [f"A{l}.{h}@{int(p)}>{k}" for p, k in zip(target_pos[live], target_keys[live])], "kind": "head",
            "layer": l, "head": h, "pos": target_pos[live], "activation": value}))
        src.append(source_nodes[c_idx]); dst.append(node_of[b_idx]); w.append(part[b_idx, c_idx])
        ch.append(np.full(len(b_idx), 3, np.int8))  # "v": the signal enters through the head's value input
        src.append(node_of[live]); dst.append(target_nodes[live]); w.append(value)
        ch.append(np.zeros(len(live), np.int8))
        nid += len(live)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    heads = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return heads, {"src": cat(src, np.int64), "dst": cat(dst, np.int64), "weight": cat(w, np.float64),
                   "channel": cat(ch, np.int8)}


def collapse_heads(graph):  # noqa: ANN001, ANN201
    """The plain feature graph of a graph with head nodes: ``A(s→t) = direct + Σ_heads part``; head nodes dropped."""
    from circuitdb.graph import AttributionGraph

    kinds = graph.nodes["kind"].to_numpy()
    is_head = kinds == "head"
    if not is_head.any():
        return graph
    into_head = is_head[graph.dst]
    out_of_head = is_head[graph.src]
    head_target = np.full(graph.n_nodes, -1)
    head_target[graph.src[out_of_head]] = graph.dst[out_of_head]
    src = np.concatenate([graph.src[~into_head & ~out_of_head], graph.src[into_head]])
    dst = np.concatenate([graph.dst[~into_head & ~out_of_head], head_target[graph.dst[into_head]]])
    w = np.concatenate([graph.weight[~into_head & ~out_of_head], graph.weight[into_head]])
    edges = pd.DataFrame({"s": src, "t": dst, "w": w}).groupby(["s", "t"], sort=True)["w"].sum().reset_index()
    keep = ~is_head
    new = np.cumsum(keep) - 1
    meta = {**graph.meta, "id": f"{graph.id}-collapsed", "params": {**graph.meta.get("params", {}), "heads": False}}
    return AttributionGraph(graph.nodes[keep].reset_index(drop=True), new[edges["s"].to_numpy()],
                            new[edges["t"].to_numpy()], edges["w"].to_numpy(), None, meta)
