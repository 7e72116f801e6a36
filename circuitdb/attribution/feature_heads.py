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


def _targets_and_columns(rm: ReplacementModel, nodes: pd.DataFrame) -> tuple[list, np.ndarray, np.ndarray]:
    """For a feature graph's node table: the engine targets of its logit / feature nodes (and their node rows), and
    each node's source column in ``rm`` (-1 for logits)."""
    S = rm.sources
    fmt = {"feature": "F{l}:{f}@{p}", "error": "ERR{l}@{p}", "mlp": "M{l}@{p}", "embed": "E@{p}"}
    col_of = {fmt[k].format(l=l, f=f, p=p): j for j, (k, l, f, p) in enumerate(zip(S.kind, S.layer, S.feature, S.pos))}
    keys, kinds = nodes["key"].to_numpy(), nodes["kind"].to_numpy()
    cols = np.array([col_of.get(k, -1) for k in keys], dtype=np.int64)
    di_of = {d.id: i for i, d in enumerate(rm.dicts)}
    targets, rows = [], []
    for i in np.flatnonzero(np.isin(kinds, ("logit", "feature"))):
        r = nodes.iloc[i]
        if kinds[i] == "logit":
            targets.append(("logit", int(r["pos"]), int(r["token"]), -1))
        else:
            targets.append(("feature", int(r["pos"]), int(r["feature"]), di_of[r["dictionary"]]))
        rows.append(i)
    return targets, np.asarray(rows, dtype=np.int64), cols


def decompose_heads(rm: ReplacementModel, nodes: pd.DataFrame, e: dict[str, np.ndarray], batch_size: int = 64,
                    progress: bool = False) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The head decomposition of the edges ``e`` of a (pruned) plain feature graph: only targets with an in-edge are
    computed, and only the stored ``source → target`` pairs are split (module docstring: direct part + one head node
    per (head, target)); so every stored pair's one- and two-hop sums equal its edge weight."""
    from tqdm.auto import tqdm

    targets, rows, cols = _targets_and_columns(rm, nodes)
    has_in = np.isin(rows, e["dst"])
    targets, rows = [t for t, h in zip(targets, has_in) if h], rows[has_in]
    src_cols = cols[e["src"]]
    order = np.argsort(e["dst"], kind="stable")
    bounds = np.searchsorted(e["dst"][order], rows), np.searchsorted(e["dst"][order], rows, side="right")
    frames, edges = [nodes], []
    next_id = len(nodes)
    keys, pos = nodes["key"].to_numpy(), nodes["pos"].to_numpy()
    for start in tqdm(range(0, len(targets), batch_size), disable=not progress, desc="head decomposition"):
        sl = slice(start, start + batch_size)
        direct, parts = head_parts(rm, targets[sl])
        b_idx = np.concatenate([np.full(hi - lo, b) for b, (lo, hi) in
                                enumerate(zip(bounds[0][sl], bounds[1][sl]))]).astype(np.int64)
        eidx = np.concatenate([order[lo:hi] for lo, hi in zip(bounds[0][sl], bounds[1][sl])]).astype(np.int64)
        c = torch.as_tensor(src_cols[eidx])
        bt = torch.as_tensor(b_idx)
        d_np = direct[bt, c].double().cpu().numpy()
        p_np = {k: v[bt, c].double().cpu().numpy() for k, v in parts.items()}
        f, ed = pair_frames(d_np, p_np, b_idx, e["src"][eidx], rows[sl], keys[rows[sl]], pos[rows[sl]], next_id)
        next_id += len(f)
        frames.append(f)
        edges.append(ed)
    out = {k: np.concatenate([x[k] for x in edges]) if edges else e[k][:0] for k in ("src", "dst", "weight", "channel")}
    nodes = pd.concat([f for f in frames if len(f)], ignore_index=True)
    _head_influence(nodes, out)
    return nodes, out


def pair_frames(direct: np.ndarray, parts: dict[tuple[int, int], np.ndarray], b_idx: np.ndarray, src: np.ndarray,
                target_nodes: np.ndarray, target_keys: np.ndarray, target_pos: np.ndarray, first_id: int
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Head nodes and edges for a list of stored pairs ``src[i] → target_nodes[b_idx[i]]`` whose direct part is
    ``direct[i]`` and whose part through head ``(l, h)`` is ``parts[(l, h)][i]``."""
    frames: list[pd.DataFrame] = []
    s_out, d_out, w_out, ch = [], [], [], []
    nz = direct != 0
    s_out.append(src[nz]); d_out.append(target_nodes[b_idx[nz]]); w_out.append(direct[nz])
    ch.append(np.zeros(int(nz.sum()), np.int8))
    nid = first_id
    for (l, h), part in sorted(parts.items()):
        nz = part != 0
        live = np.unique(b_idx[nz])
        if not len(live):
            continue
        node_of = np.full(len(target_nodes), -1, np.int64)
        node_of[live] = nid + np.arange(len(live))
        value = np.bincount(b_idx[nz], weights=part[nz], minlength=len(target_nodes))[live]
        frames.append(pd.DataFrame({
            "key": [f"A{l}.{h}@{int(p)}>{k}" for p, k in zip(target_pos[live], target_keys[live])], "kind": "head",
            "layer": l, "head": h, "pos": target_pos[live], "activation": value}))
        s_out.append(src[nz]); d_out.append(node_of[b_idx[nz]]); w_out.append(part[nz])
        ch.append(np.full(int(nz.sum()), 3, np.int8))  # "v": the signal enters through the head's value input
        s_out.append(node_of[live]); d_out.append(target_nodes[live]); w_out.append(value)
        ch.append(np.zeros(len(live), np.int8))
        nid += len(live)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    heads = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return heads, {"src": cat(s_out, np.int64), "dst": cat(d_out, np.int64), "weight": cat(w_out, np.float64),
                   "channel": cat(ch, np.int8)}


def _head_influence(nodes: pd.DataFrame, e: dict[str, np.ndarray]) -> None:
    """A head node's influence: its target's influence × the head's share of the target's |in-weight|."""
    is_head = (nodes["kind"] == "head").to_numpy()
    if not is_head.any():
        return
    n = len(nodes)
    absin = np.bincount(e["dst"], weights=np.abs(e["weight"]), minlength=n)
    vals = nodes["influence"].to_numpy(dtype=np.float64, na_value=np.nan).copy()
    tgt_infl = np.nan_to_num(vals) + nodes.get("probability", pd.Series(np.nan, index=nodes.index)).fillna(0).to_numpy()
    from_head = is_head[e["src"]]
    h, t = e["src"][from_head], e["dst"][from_head]
    vals[h] = tgt_infl[t] * np.abs(e["weight"][from_head]) / np.maximum(absin[t], 1e-30)
    nodes["influence"] = vals
