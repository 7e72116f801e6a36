"""Feature-to-feature attribution graphs (circuit-tracer's method, plus the heads the edges pass through).

Conventions (stated once):
- Rows are targets, columns are sources: ``A[t, s] = a_s · W_dec[s] · J_{s→t} · r_t`` in the frozen replacement model
  (:mod:`circuitdb.attribution.replacement`), computed by batched backward passes from targets; exact, not a
  first-order estimate. A feature target's quantity is its pre-activation; a logit target's is the centred logit.
- Logit targets: the top next-token logits at the last position up to cumulative probability ``logit_prob``, at most
  ``max_logits``. Feature targets are visited in order of their influence on the logits when ``max_feature_nodes``
  caps them (circuit-tracer's queue: influence recomputed from the rows computed so far).
- Node keys: ``F{layer}:{index}@{pos}``, ``ERR{layer}@{pos}``, ``M{layer}@{pos}`` (frozen MLPs without a transcoder),
  ``E@{pos}``, ``L:{token}@{pos}``; head nodes ``A{l}.{h}@{pos}>{target}`` (see :mod:`.feature_heads`).
- Influence (the ``influence`` column) and the scores follow circuit-tracer: row-normalised |A|, influence
  ``I = w (Â + Â² + …)`` from the logit probabilities ``w``; replacement score = token influence / (token + error
  influence); completeness = influence-weighted mean over nodes of the fraction of |in-weight| not from errors.
  Frozen-MLP nodes count as errors.
- Node columns: ``activation`` = feature activation / error, MLP or embedding vector norm / centred logit / a head
  node's value; ``direct_logit`` = the node's full edge weight into the most probable logit; ``probability`` on logits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from circuitdb.attribution.feature_heads import head_frames, head_parts
from circuitdb.attribution.replacement import ReplacementModel, check_tokens
from circuitdb.errors import ConfigError
from circuitdb.graph import AttributionGraph
from circuitdb.identity import stamp
from circuitdb.models.dtypes import torch_dtype

log = logging.getLogger(__name__)


def salient_logits(logits: Float[Tensor, " vocab"], logit_prob: float, max_logits: int) -> tuple[Tensor, Tensor]:
    """Token ids and probabilities of the top logits up to cumulative ``logit_prob`` (at most ``max_logits``)."""
    probs = torch.softmax(logits.double(), -1)
    p, ids = probs.sort(descending=True)
    n = int((p.cumsum(0) < logit_prob).sum()) + 1
    n = max(1, min(n, max_logits, len(p)))
    return ids[:n], p[:n]


def _chunks(blocks: list[tuple[Tensor, Tensor]], size: int = 2048):  # noqa: ANN202
    for rows, row_node in blocks:
        for i in range(0, len(rows), size):
            yield rows[i: i + size], row_node[i: i + size]


def influence(blocks: list[tuple[Tensor, Tensor]], n_nodes: int, weights: Tensor, max_iter: int = 256) -> Tensor:
    """Influence of every node on the weighted targets, through row-normalised |A|.

    ``blocks`` are ``(rows [n, n_cols], row_node [n])`` pairs: row ``i`` is the in-edges of node ``row_node[i]``;
    columns are nodes ``0..n_cols-1``. Processed in row chunks, so no copy of the whole matrix is made.
    """
    dtype = weights.dtype
    sums = [r.abs().sum(1).to(dtype).clamp_min(1e-10) for r, _ in _chunks(blocks)]
    total = torch.zeros(n_nodes, dtype=dtype)
    prod = weights.clone()
    for _ in range(max_iter):
        nxt = torch.zeros(n_nodes, dtype=dtype)
        for (r, rn), sm in zip(_chunks(blocks), sums):
            w = prod[rn] / sm
            if bool(w.any()):
                nxt[: r.shape[1]] += (w.to(r.dtype) @ r.abs()).to(dtype)
        prod = nxt
        if not bool(prod.any()):
            break
        total += prod
    return total


def _error_fraction(blocks: list[tuple[Tensor, Tensor]], n_nodes: int, err_cols: Tensor) -> Tensor:
    """Per node: the fraction of its |in-weight| that comes from error columns (0 for nodes without rows)."""
    out = torch.zeros(n_nodes, dtype=torch.float64)
    for r, rn in _chunks(blocks):
        a = r.abs()
        out[rn] = (a[:, err_cols].sum(1) / a.sum(1).clamp_min(1e-10)).double()
    return out


def _visit_order(rm: ReplacementModel, targets: list, feat_src: np.ndarray, logit_rows: Tensor, probs: Tensor,
                 cap: int, batch_size: int, bar: Any) -> tuple[list[int], Tensor]:
    """Feature targets to visit (source indices) and their rows, in circuit-tracer's influence-queue order."""
    n_feat, n_src = len(targets), logit_rows.shape[1]
    rows = torch.empty(cap, n_src, dtype=rm.dtype)
    order: list[int] = []
    visited = torch.zeros(n_feat, dtype=torch.bool)
    n_logits = len(probs)
    while len(order) < cap:
        if cap == n_feat:
            pending = torch.arange(n_feat)
        else:
            blocks = [(logit_rows, torch.arange(n_logits) + n_src),
                      (rows[: len(order)], torch.as_tensor(feat_src[order], dtype=torch.long))]
            w = torch.zeros(n_src + n_logits, dtype=torch.float64)
            w[n_src:] = probs.double()
            infl = influence(blocks, n_src + n_logits, w)[feat_src]
            rank = torch.argsort(infl, descending=True)
            pending = rank[~visited[rank]][: min(4 * batch_size, cap - len(order))]
        for chunk in pending.split(batch_size):
            idx = chunk.tolist()
            rows[len(order): len(order) + len(idx)] = rm.rows([targets[i] for i in idx]).cpu()
            order += idx
            visited[chunk] = True
            bar.update(1)
    return order, rows


def attribute_features(model, tokens, dictionaries=None, *, max_feature_nodes: int | None = None,  # noqa: ANN001
                       batch_size: int = 64, logit_prob: float = 0.95, max_logits: int = 10, heads: bool = True,
                       dtype: Any = None, progress: bool = True, graph_id: str | None = None) -> AttributionGraph:
    """The feature graph of one prompt (see the module docstring); ``model`` may be a zoo / model name."""
    from circuitdb.dictionaries.load import load_dictionaries

    if isinstance(model, str):
        from circuitdb.models import load_model

        model = load_model(model)
    if isinstance(dtype, str) or dtype is None:
        dtype = torch_dtype(dtype, allowed=("float32", "float64")) or torch.float32
    if batch_size < 1 or max_logits < 1 or not (0 < logit_prob <= 1):
        raise ConfigError(f"need batch_size ≥ 1 (got {batch_size}), max_logits ≥ 1 (got {max_logits}) and "
                          f"0 < logit_prob ≤ 1 (got {logit_prob})")
    if max_feature_nodes is not None and max_feature_nodes < 0:
        raise ConfigError(f"max_feature_nodes must be ≥ 0 or None; got {max_feature_nodes}")
    tokens = check_tokens(model, tokens)
    dicts = load_dictionaries(dictionaries, model, dtype=dtype)
    rm = ReplacementModel.build(model, tokens, dicts, dtype)
    S, P = rm.sources, rm.P
    n_src = len(S)
    feat_src = np.flatnonzero(S.kind == "feature")
    ids, probs = salient_logits(rm.logits[-1].cpu(), logit_prob, max_logits)
    logit_targets = [("logit", P - 1, int(t), -1) for t in ids]
    feat_targets = [("feature", int(S.pos[i]), int(S.feature[i]), int(S.dictionary[i])) for i in feat_src]
    cap = len(feat_src) if max_feature_nodes is None else min(max_feature_nodes, len(feat_src))
    log.info("%d tokens, %d active features (visiting %d), %d logit targets, %d sources", P, len(feat_src), cap,
             len(ids), n_src)
    n_batches = -(-cap // batch_size) + 1
    with tqdm(total=n_batches, disable=not progress, desc="feature attribution") as bar:
        logit_rows = rm.rows(logit_targets).cpu()
        bar.update(1)
        order, feat_rows = _visit_order(rm, feat_targets, feat_src, logit_rows, probs, cap, batch_size, bar)
    # ---- node table: visited features (source order), errors, frozen MLPs, embeddings, logits
    order_arr = np.asarray(order, dtype=np.int64)
    visited = np.sort(order_arr)
    keep = np.concatenate([feat_src[visited], np.flatnonzero(S.kind != "feature")]).astype(np.int64)
    col_node = np.full(n_src, -1, np.int64)
    col_node[keep] = np.arange(len(keep))
    n_nodes = len(keep) + len(ids)
    logit_nodes = np.arange(len(keep), n_nodes)
    sel = (lambda r: r) if len(keep) == n_src else (lambda r: r[:, keep])  # all visited: keep == arange(n_src)
    feat_node = col_node[feat_src[order_arr]]
    blocks = [(sel(logit_rows), torch.as_tensor(logit_nodes)), (sel(feat_rows), torch.as_tensor(feat_node))]
    del feat_rows
    lw = torch.zeros(n_nodes, dtype=torch.float64)
    lw[logit_nodes] = probs.double()
    infl = influence(blocks, n_nodes, lw)
    kind_k = S.kind[keep]
    err_cols = torch.as_tensor(np.isin(kind_k, ("error", "mlp")))
    nef = 1 - _error_fraction(blocks, n_nodes, err_cols)
    out_infl = infl + lw
    tok_i = float(infl[: len(keep)][torch.as_tensor(kind_k == "embed")].sum())
    err_i = float(infl[: len(keep)][err_cols].sum())
    scores = {"replacement": tok_i / max(tok_i + err_i, 1e-30),
              "completeness": float((nef * out_infl).sum() / out_infl.sum().clamp_min(1e-30))}
    nodes = _node_frame(rm, keep, ids, probs, infl, blocks[0][0][0])
    if heads:
        del blocks
        tgt_list = logit_targets + [feat_targets[i] for i in order]
        target_nodes = np.concatenate([logit_nodes, feat_node])
        head_nodes, e = _head_edges(rm, tgt_list, target_nodes, nodes, keep, col_node, batch_size, progress)
        nodes = pd.concat([nodes, head_nodes], ignore_index=True) if len(head_nodes) else nodes
        _head_influence(nodes, e, out_infl)
    else:
        e = _edges(blocks)
    meta = {
        "id": graph_id, "model": str(getattr(rm.cfg, "model_name", "model")), "granularity": "feature",
        "method": "replacement-transcoder" if all(d.kind == "transcoder" for d in dicts) else "replacement",
        "metric": "logit", "prompt": _prompt_text(rm), "tokens": rm.tokens.tolist(),
        "params": {"max_feature_nodes": max_feature_nodes, "batch_size": batch_size, "logit_prob": logit_prob,
                   "max_logits": max_logits, "heads": heads, "dtype": str(dtype).replace("torch.", ""),
                   "n_active_features": int(len(feat_src))},
        "dictionaries": [d.id for d in dicts], "scores": scores,
    }
    stamp(meta, model, graph_id, inputs=(rm.tokens,), dictionaries=dicts)
    return AttributionGraph(nodes, e["src"], e["dst"], e["weight"], e["channel"], meta)


def _edges(blocks: list[tuple[Tensor, Tensor]]) -> dict[str, np.ndarray]:
    """Non-zero entries of the row blocks as edge arrays (chunked, so no dense float64 copy is made)."""
    src, dst, w = [], [], []
    for r, rn in _chunks(blocks):
        b, c = r.nonzero(as_tuple=True)
        src.append(c.numpy())
        dst.append(rn[b].numpy())
        w.append(r[b, c].double().numpy())
    src_a = np.concatenate(src) if src else np.zeros(0, np.int64)
    return {"src": src_a, "dst": np.concatenate(dst) if dst else src_a.copy(),
            "weight": np.concatenate(w) if w else np.zeros(0), "channel": np.zeros(len(src_a), np.int8)}


def _labels(rm: ReplacementModel, ids: list[int]) -> list[str]:
    try:
        from circuitdb.models import detokenize

        return list(detokenize(rm.model, ids))
    except Exception:  # noqa: BLE001 - labels are cosmetic
        return [f"#{i}" for i in ids]


def _prompt_text(rm: ReplacementModel) -> str:
    return " ".join(_labels(rm, rm.tokens.tolist()))


def _node_frame(rm: ReplacementModel, keep: np.ndarray, ids: Tensor, probs: Tensor, infl: Tensor,
                top_logit_row: Tensor) -> pd.DataFrame:
    S, P = rm.sources, rm.P
    kind, layer, pos, feat, di = S.kind[keep], S.layer[keep], S.pos[keep], S.feature[keep], S.dictionary[keep]
    keys = np.empty(len(keep), object)
    for k, fmt in (("feature", "F{l}:{f}@{p}"), ("error", "ERR{l}@{p}"), ("mlp", "M{l}@{p}"), ("embed", "E@{p}")):
        m = kind == k
        keys[m] = [fmt.format(l=a, f=b, p=c) for a, b, c in zip(layer[m], feat[m], pos[m])]
    dict_ids = np.array([d.id for d in rm.dicts] + [""], dtype=object)
    tokens = rm.tokens.numpy()
    tok_labels = np.array(_labels(rm, tokens.tolist()), dtype=object)
    is_emb = kind == "embed"
    src_nodes = pd.DataFrame({
        "key": keys, "kind": kind, "layer": layer, "pos": pos, "feature": feat,
        "token": np.where(is_emb, tokens[pos], -1), "dictionary": dict_ids[di],
        "label": np.where(is_emb, tok_labels[pos], ""), "activation": S.activation[keep],
        "direct_logit": top_logit_row.double().numpy(),
    })
    lg = rm.logits[-1].cpu()
    logit_nodes = pd.DataFrame({
        "key": [f"L:{int(t)}@{P - 1}" for t in ids], "kind": "logit", "layer": rm.L, "pos": P - 1,
        "token": ids.numpy(), "label": _labels(rm, ids.tolist()), "probability": probs.numpy(),
        "activation": (lg[ids] - lg.mean()).double().numpy(),
    })
    nodes = pd.concat([src_nodes, logit_nodes], ignore_index=True)
    nodes["influence"] = infl.double().numpy()
    return nodes


def _head_edges(rm: ReplacementModel, tgt_list: list, target_nodes: np.ndarray, nodes: pd.DataFrame,
                keep: np.ndarray, col_node: np.ndarray, batch_size: int, progress: bool
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    frames, edges = [], []
    next_id = len(nodes)
    keys = nodes["key"].to_numpy()
    for start in tqdm(range(0, len(tgt_list), batch_size), disable=not progress, desc="head decomposition"):
        batch = tgt_list[start: start + batch_size]
        tn = target_nodes[start: start + batch_size]
        direct, parts = head_parts(rm, batch)
        d_np = direct.cpu()[:, keep].double().numpy()
        p_np = {k: v.cpu()[:, keep].double().numpy() for k, v in parts.items()}
        f, e = head_frames(d_np, p_np, tn, keys[tn], nodes["pos"].to_numpy()[tn], col_node[keep], next_id)
        next_id += len(f)
        frames.append(f)
        edges.append(e)
    heads = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return heads, {k: np.concatenate([e[k] for e in edges]) for k in ("src", "dst", "weight", "channel")}


def _head_influence(nodes: pd.DataFrame, e: dict[str, np.ndarray], out_infl: Tensor) -> None:
    """A head node's influence: its target's (influence + logit weight) × its share of the target's |in-weight|."""
    is_head = (nodes["kind"] == "head").to_numpy()
    if not is_head.any():
        return
    n = len(nodes)
    absin = np.bincount(e["dst"], weights=np.abs(e["weight"]), minlength=n)
    oi = np.concatenate([out_infl.double().numpy(), np.zeros(n - len(out_infl))])
    from_head = is_head[e["src"]]
    h, t = e["src"][from_head], e["dst"][from_head]
    vals = nodes["influence"].to_numpy(dtype=np.float64, na_value=np.nan).copy()
    vals[h] = oi[t] * np.abs(e["weight"][from_head]) / np.maximum(absin[t], 1e-30)
    nodes["influence"] = vals
