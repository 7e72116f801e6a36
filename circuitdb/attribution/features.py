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

from circuitdb.attribution.active_rows import check_tokens
from circuitdb.attribution.feature_edges import (
    RowBlocks, block_edges, count_entries, resolve_prune, save_adjacency,
)
from circuitdb.attribution.feature_heads import DEFAULT_MIN_SHARE, check_min_share, decompose_heads
from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.errors import ConfigError
from circuitdb.graph import AttributionGraph
from circuitdb.identity import stamp
from circuitdb.models.dtypes import torch_dtype
from circuitdb.pruning import ALWAYS_KEPT, ERROR_KINDS, find_threshold, graph_scores, influence_prune_given, scores_from

log = logging.getLogger(__name__)


def salient_logits(logits: Float[Tensor, " vocab"], logit_prob: float, max_logits: int) -> tuple[Tensor, Tensor]:
    """Token ids and probabilities of the top logits up to cumulative ``logit_prob`` (at most ``max_logits``)."""
    probs = torch.softmax(logits.double(), -1)
    p, ids = probs.sort(descending=True)
    n = int((p.cumsum(0) < logit_prob).sum()) + 1
    n = max(1, min(n, max_logits, len(p)))
    return ids[:n], p[:n]


def _visit_order(rm: ReplacementModel, targets: list, feat_src: np.ndarray, logit_rows: Tensor, probs: Tensor,
                 cap: int, batch_size: int, bar: Any) -> tuple[list[int], Tensor]:
    """Feature targets to visit (source indices) and their rows, in circuit-tracer's influence-queue order."""
    n_feat, n_src = len(targets), logit_rows.shape[1]
    rows = torch.empty(cap, n_src, dtype=rm.dtype)
    order: list[int] = []
    visited = torch.zeros(n_feat, dtype=torch.bool)
    tpos = np.asarray([t[1] for t in targets], dtype=np.int64)  # a round's batches are cut by target position
    n_logits = len(probs)
    while len(order) < cap:
        if cap == n_feat:
            pending = torch.arange(n_feat)
        else:
            blocks = [(logit_rows, torch.arange(n_logits) + n_src),
                      (rows[: len(order)], torch.as_tensor(feat_src[order], dtype=torch.long))]
            w = np.zeros(n_src + n_logits)
            w[n_src:] = probs.double().numpy()
            infl = torch.as_tensor(RowBlocks(blocks, n_src + n_logits).influence(w)[feat_src])
            rank = torch.argsort(infl, descending=True)
            pending = rank[~visited[rank]][: min(4 * batch_size, cap - len(order))]
        pending = pending[torch.as_tensor(np.argsort(tpos[pending.numpy()], kind="stable"))]  # see rm.rows
        for chunk in pending.split(batch_size):
            idx = chunk.tolist()
            rows[len(order): len(order) + len(idx)] = rm.rows([targets[i] for i in idx]).cpu()
            order += idx
            visited[chunk] = True
            bar.update(1)
    return order, rows


def attribute_features(model, tokens, dictionaries=None, *, max_feature_nodes: int | None = None,  # noqa: ANN001
                       batch_size: int = 64, logit_prob: float = 0.95, max_logits: int = 10, heads: bool = True,
                       min_head_share: float = DEFAULT_MIN_SHARE, prune: Any = "influence", adjacency: "str | None" = None, zero_first_pos: bool = False,
                       token_vectors: str = "embed+pos", dtype: Any = None,
                       device: Any = None, progress: bool = True, graph_id: str | None = None) -> AttributionGraph:
    """The feature graph of one prompt (see the module docstring); ``model`` may be a zoo / model name.

    ``prune``: what is stored (:mod:`.feature_edges`): influence pruning by default, ``None`` for every non-zero
    entry, or a callable pruner. ``adjacency``: a path for the unpruned adjacency as a side file. ``heads``: the head
    decomposition of the stored edges (:mod:`.feature_heads`); head parts below ``min_head_share`` of their pair's
    absolute mass stay in the plain edge (0: every part gets a head node). ``dtype`` / ``device``: default the model's; half
    precision runs the linear backward in float32. ``zero_first_pos`` / ``token_vectors="embed"``: circuit-tracer's
    conventions (:mod:`.replacement`)."""
    from circuitdb.dictionaries.load import load_dictionaries

    if isinstance(model, str):
        from circuitdb.models import load_model

        model = load_model(model)
    # one dtype rule (as attribute()): None follows the model's dtype
    dtype = torch_dtype(dtype) or model.cfg.dtype
    if batch_size < 1 or max_logits < 1 or not (0 < logit_prob <= 1):
        raise ConfigError(f"need batch_size ≥ 1 (got {batch_size}), max_logits ≥ 1 (got {max_logits}) and "
                          f"0 < logit_prob ≤ 1 (got {logit_prob})")
    if max_feature_nodes is not None and max_feature_nodes < 0:
        raise ConfigError(f"max_feature_nodes must be ≥ 0 or None; got {max_feature_nodes}")
    check_min_share(min_head_share)
    tokens = check_tokens(model, tokens)
    dicts = load_dictionaries(dictionaries, model, dtype=dtype)
    rm = ReplacementModel.build(model, tokens, dicts, dtype, device, zero_first_pos=zero_first_pos,
                                token_vectors=token_vectors)
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
    lw = np.zeros(n_nodes)
    lw[logit_nodes] = probs.double().numpy()
    kinds = np.concatenate([S.kind[keep], np.full(len(ids), "logit", object)])
    adj = RowBlocks(blocks, n_nodes)
    infl = adj.influence(lw)
    scores = scores_from(infl, lw, kinds, adj.error_share(np.isin(kinds, ERROR_KINDS)))
    nodes = _node_frame(rm, keep, ids, probs, infl, blocks[0][0][0])
    n_raw = count_entries(blocks)
    meta = {
        "id": graph_id, "model": str(getattr(rm.cfg, "model_name", "model")), "granularity": "feature",
        "method": "replacement-transcoder" if all(d.kind == "transcoder" for d in dicts) else "replacement",
        "metric": "logit", "prompt": _prompt_text(rm), "tokens": rm.tokens.tolist(),
        "params": {"prune": _prune_param(prune), "max_feature_nodes": max_feature_nodes, "batch_size": batch_size, "logit_prob": logit_prob,
                   "max_logits": max_logits, "heads": heads,
                   **({"min_head_share": float(min_head_share)} if heads else {}), "dtype": str(dtype).replace("torch.", ""),
                   "device": str(rm.device), "n_active_features": int(len(feat_src)),
                   "zero_first_pos": bool(zero_first_pos), "token_vectors": token_vectors},
        "dictionaries": [d.id for d in dicts], "scores": scores,
    }
    # ---- which entries become edges: pruning before storing
    spec = resolve_prune(prune)
    keys = nodes["key"].to_numpy()
    if adjacency is not None or spec is None or spec[0] == "callable":
        raw = block_edges(blocks)
        if adjacency is not None:
            meta["adjacency"] = save_adjacency(adjacency, keys, raw)
    if spec is None:
        node_mask, e = np.ones(n_nodes, bool), raw
    elif spec[0] == "influence":
        params = spec[1]
        node_mask = (infl >= find_threshold(infl, params["node_threshold"])) | np.isin(kinds, ALWAYS_KEPT)
        cand = block_edges(blocks, node_mask)  # only the entries among nodes that pass the node threshold
        g_cand = AttributionGraph(nodes, cand["src"], cand["dst"], cand["weight"], cand["channel"], meta,
                                  validate=False)
        res = influence_prune_given(g_cand, infl, params["node_threshold"], params["edge_threshold"])
        node_mask, e = res.node_mask, {k: v[res.edge_mask] for k, v in cand.items()}
        meta["pruning"] = {"method": "influence", "params": params}
    else:
        g_raw = AttributionGraph(nodes, raw["src"], raw["dst"], raw["weight"], raw["channel"], meta, validate=False)
        res = spec[1](g_raw)
        node_mask, edge_mask = np.asarray(res.node_mask, bool), np.asarray(res.edge_mask, bool)
        e = {k: v[edge_mask] for k, v in raw.items()}
        meta["pruning"] = {"method": str(getattr(res, "method", getattr(spec[1], "__name__", "callable"))),
                           "params": _jsonable(getattr(res, "params", {}))}
    del blocks
    if spec is not None:
        meta["pruning"].update({"unpruned_nodes": int(n_nodes), "unpruned_edges": n_raw,
                                "kept_nodes": int(node_mask.sum()), "kept_edges": int(len(e["src"]))})
        nodes, e = _restrict(nodes, node_mask, e)
        meta["pruning"]["scores"] = graph_scores(  # the stored (pruned) graph's own scores
            AttributionGraph(nodes, e["src"], e["dst"], e["weight"], e["channel"], meta, validate=False))
    if heads:
        nodes, e, meta["head_decomposition"] = decompose_heads(rm, nodes, e, batch_size, progress, min_head_share)
    stamp(meta, model, graph_id, inputs=(rm.tokens,), dictionaries=dicts)
    return AttributionGraph(nodes, e["src"], e["dst"], e["weight"], e["channel"], meta)


def _restrict(nodes: pd.DataFrame, node_mask: np.ndarray, e: dict[str, np.ndarray]
              ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Kept nodes (renumbered) and the edges among them."""
    new = np.cumsum(node_mask) - 1
    live = node_mask[e["src"]] & node_mask[e["dst"]]
    e = {k: v[live] for k, v in e.items()}
    e["src"], e["dst"] = new[e["src"]], new[e["dst"]]
    return nodes[node_mask].reset_index(drop=True), e


def _prune_param(prune: Any) -> Any:
    spec = resolve_prune(prune)
    return None if spec is None else spec[1] if spec[0] == "influence" else getattr(
        getattr(prune, "func", prune), "__name__", "callable") + repr(getattr(prune, "keywords", ""))


def _jsonable(params: dict) -> dict:
    return {str(k): (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in params.items()}


def _labels(rm: ReplacementModel, ids: list[int]) -> list[str]:
    try:
        from circuitdb.models import detokenize

        return list(detokenize(rm.model, ids))
    except Exception:  # noqa: BLE001 - labels are cosmetic
        return [f"#{i}" for i in ids]


def _prompt_text(rm: ReplacementModel) -> str:
    return " ".join(_labels(rm, rm.tokens.tolist()))


def _node_frame(rm: ReplacementModel, keep: np.ndarray, ids: Tensor, probs: Tensor, infl: np.ndarray,
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
    nodes["influence"] = np.asarray(infl, dtype=np.float64)
    return nodes


