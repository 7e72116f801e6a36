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
- Minor parts fold into the plain edge (``min_share``): a part gets its head node only where
  ``|part_{l,h}(s→t)| ≥ min_share · (|direct| + Σ_{l',h'} |part_{l',h'}|)`` (so at most ``1 / min_share`` heads per
  pair); the rest is added to the plain ``s → t`` edge, which then carries ``direct + Σ folded parts``. Sums stay exact
  (the same identity, with the folded parts moved), kept parts are exact, and the stored rows stay a small multiple of
  the plain graph's instead of one edge per pair and head that carries any signal. ``min_share=0`` keeps every
  non-zero part (the full decomposition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from circuitdb.attribution.replacement import ReplacementModel
from circuitdb.dictionaries.base import parse_hook
from circuitdb.errors import ConfigError

DEFAULT_MIN_SHARE = 0.1  # a head part gets its own node where it carries ≥ 10 % of its pair's |mass|


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


def _source_vectors(rm: ReplacementModel, cols: np.ndarray) -> dict[tuple, Tensor]:
    """Per site (``("embed",)``, ``("mlp", l)``, ``("sae", station)``): ``[n, P, d]`` with source ``cols[b]``'s vector at
    its position in row ``b`` (the vectors :meth:`ReplacementModel.source_rows` contracts with)."""
    S, n = rm.sources, len(cols)
    out: dict[tuple, Tensor] = {}
    first_feat = np.cumsum([0] + [len(a.pos) for a in rm.active])
    for b, j in enumerate(cols.tolist()):
        kind, p, di = S.kind[j], int(S.pos[j]), int(S.dictionary[j])
        if kind == "feature":  # a cross-layer feature writes several sites
            k = j - int(first_feat[di])
            vecs = [(site, rm.active[di].vector(k, t)) for t, site in enumerate(rm.dict_sites[di])]
        elif kind == "error":
            site, v = rm.dict_site[di], rm.errors[di][p]
        elif kind == "mlp":
            site, v = ("mlp", int(S.layer[j])), rm.mlp_out[int(S.layer[j])][p]
        else:
            site, v = ("embed",), rm.embed[p]
        for site, v in vecs if kind == "feature" else [(site, v)]:
            if site not in out:
                out[site] = torch.zeros(n, rm.P, rm.cfg.d_model, dtype=rm.dtype, device=rm.device)
            out[site][b, p] += v
    return out


def _norm_forward(rm: ReplacementModel, X: Tensor, scale: Tensor | None, w: Tensor | None) -> Tensor:
    """The frozen normalisation ``x -> norm(x) (* w)`` (the transpose of :meth:`ReplacementModel._norm_T`)."""
    if rm.norm is None:
        return X
    if rm.norm.startswith("LN"):
        X = X - X.mean(-1, keepdim=True)
    X = X / scale
    return X * w if w is not None and rm.norm in ("LN", "RMS") else X


def _forward_z(rm: ReplacementModel, cols: np.ndarray):  # noqa: ANN202
    """Push the sources ``cols`` forward through the frozen linear model; yield ``(layer, z)`` at every attention layer,
    ``z [n, H, P, d_head]`` = each head's value-weighted sum (before ``W_O``) of the source's whole signal there."""
    inj = _source_vectors(rm, cols)
    X = inj.get(("embed",), torch.zeros(len(cols), rm.P, rm.cfg.d_model, dtype=rm.dtype, device=rm.device))
    for kind, key in rm.steps:
        if kind == "station":
            if key in rm.sae_at:  # the SAE cuts the stream; its features / errors write after the cut
                X = torch.zeros_like(X)
            if ("sae", key) in inj:
                X = X + inj[("sae", key)]
        elif kind == "attn":
            v = einsum(_norm_forward(rm, X, rm.ln1[key], rm.w1[key]), rm.W_V[key], "n k d, h d e -> n h k e")
            z = einsum(rm.patterns[key], v, "h q k, n h k e -> n h q e")
            yield key, z
            X = X + einsum(z, rm.W_O[key], "n h q e, h e d -> n q d")
        else:
            if key in rm.skip_at:
                _, suffix = parse_hook(rm.dicts[rm.skip_at[key]].hook_in)
                x_in = _norm_forward(rm, X, rm.ln2[key], None) if suffix == "ln2.hook_normalized" else X
                X = X + x_in @ rm.W_skip[key]
            if ("mlp", key) in inj:
                X = X + inj[("mlp", key)]


def decompose_heads(rm: ReplacementModel, nodes: pd.DataFrame, e: dict[str, np.ndarray], batch_size: int = 64,
                    progress: bool = False, min_share: float = DEFAULT_MIN_SHARE
                    ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict]:
    """The head decomposition of the edges ``e`` of a (pruned) plain feature graph, for the stored pairs only.

    Targets (with an in-edge) run one backward pass without heads: the direct part of every pair and ``D_t^l``, the
    gradient reaching attention layer ``l``'s output on paths without a head. Sources (with an out-edge) run one
    forward pass: ``z_s`` at every head. The part of pair ``s → t`` whose last head is ``(l, h)`` is then
    ``z_s[h, p_t] · W_O[h] D_t^l[p_t]`` (exact by linearity), a dot product per pair and head — so the cost is about
    one pass per kept target and one per kept source, not one per head. Parts below ``min_share`` of their pair's
    absolute mass fold into the plain edge (module doc). Returns ``(nodes, edges, stats)``; ``stats`` (for
    ``meta["head_decomposition"]``) counts pairs, kept parts and the share of |part| mass folded."""
    from tqdm.auto import tqdm

    check_min_share(min_share)
    targets, rows, cols = _targets_and_columns(rm, nodes)
    has_in = np.isin(rows, e["dst"])
    targets, rows = [t for t, h in zip(targets, has_in) if h], rows[has_in]
    if not len(e["src"]) or not targets:
        return nodes, e, fold_parts(np.zeros(0), {}, min_share)[2]
    t_of_node = np.full(len(nodes), -1, np.int64)
    t_of_node[rows] = np.arange(len(rows))
    pair_t, pair_src = t_of_node[e["dst"]], e["src"]
    src_cols = cols[pair_src]
    H, L, dh = rm.cfg.n_heads, rm.L, rm.cfg.d_head
    t_pos = torch.as_tensor([t[1] for t in targets], device=rm.device)
    Dp = torch.zeros(len(targets), L, H, dh, dtype=rm.dtype, device=rm.device)  # W_O[l][h] · D_t^l[p_t]
    direct = np.zeros(len(pair_src))
    order = np.argsort(pair_t, kind="stable")
    bounds = np.searchsorted(pair_t[order], np.arange(len(targets) + 1))
    bar = tqdm(total=-(-len(targets) // batch_size), disable=not progress, desc="head decomposition")
    with torch.no_grad():
        for start in range(0, len(targets), batch_size):
            batch = targets[start: start + batch_size]
            top, raw, _ = rm.injections(batch)
            arriving: dict[int, Tensor] = {}
            G = torch.zeros(len(batch), rm.P, rm.cfg.d_model, dtype=rm.dtype, device=rm.device)
            d_rows = rm.source_rows(rm.propagate(G, len(rm.steps), top, raw, heads=False, record=arriving))
            tp = t_pos[start: start + len(batch)]
            for l, D in arriving.items():
                Dp[start: start + len(batch), l] = einsum(D[torch.arange(len(batch)), tp], rm.W_O[l], "b d, h e d -> b h e")
            idx = order[bounds[start]: bounds[min(start + batch_size, len(targets))]]
            direct[idx] = d_rows[torch.as_tensor(pair_t[idx] - start), torch.as_tensor(src_cols[idx])].double().cpu().numpy()
            bar.update(1)
        bar.close()
        parts = {(l, h): np.zeros(len(pair_src)) for l in range(L) for h in range(H)}
        uniq = np.unique(src_cols)
        by_src = np.argsort(src_cols, kind="stable")
        sb = np.searchsorted(src_cols[by_src], uniq)
        sb = np.append(sb, len(by_src))
        for start in tqdm(range(0, len(uniq), batch_size), disable=not progress, desc="head decomposition (sources)"):
            chunk = uniq[start: start + batch_size]
            idx = by_src[sb[start]: sb[min(start + batch_size, len(uniq))]]
            local = torch.as_tensor(np.searchsorted(chunk, src_cols[idx]), device=rm.device)
            pt, pp = torch.as_tensor(pair_t[idx], device=rm.device), t_pos[torch.as_tensor(pair_t[idx])]
            for l, z in _forward_z(rm, chunk):
                val = (z[local, :, pp] * Dp[pt, l]).sum(-1).double().cpu().numpy()  # [pairs, H]
                for h in range(H):
                    parts[(l, h)][idx] = val[:, h]
    direct, parts, stats = fold_parts(direct, parts, min_share)
    keys, pos = nodes["key"].to_numpy(), nodes["pos"].to_numpy()
    f, out = pair_frames(direct, parts, pair_t, pair_src, rows, keys[rows], pos[rows], len(nodes))
    nodes = pd.concat([nodes, f], ignore_index=True) if len(f) else nodes
    _head_influence(nodes, out)
    return nodes, out, {**stats, "head_nodes": int(len(f))}


def check_min_share(min_share: float) -> None:
    if not isinstance(min_share, (int, float)) or isinstance(min_share, bool) or not 0 <= min_share <= 1:
        raise ConfigError(f"min_head_share must be a number in [0, 1] (0 keeps every head part); got {min_share!r}")


def fold_parts(direct: np.ndarray, parts: dict[tuple[int, int], np.ndarray], min_share: float
               ) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray], dict]:
    """Per pair, keep the head parts carrying ≥ ``min_share`` of the pair's absolute mass (``|direct| + Σ |part|``);
    add the others to ``direct``. Returns the new direct parts, the kept parts (zero where folded) and the counts."""
    mass = np.abs(direct).copy()
    for v in parts.values():
        mass += np.abs(v)
    direct = direct.copy()
    kept: dict[tuple[int, int], np.ndarray] = {}
    n_nonzero = n_kept = 0
    part_mass = folded_mass = 0.0
    for k, v in parts.items():
        nz = v != 0
        keep = nz & (np.abs(v) >= min_share * mass)
        fold = nz & ~keep
        direct[fold] += v[fold]
        n_nonzero, n_kept = n_nonzero + int(nz.sum()), n_kept + int(keep.sum())
        part_mass += float(np.abs(v).sum())
        folded_mass += float(np.abs(v[fold]).sum())
        if keep.any():
            kept[k] = np.where(keep, v, 0.0)
    stats = {"min_share": float(min_share), "pairs": int(len(direct)), "nonzero_parts": n_nonzero,
             "kept_parts": n_kept, "folded_mass_share": folded_mass / part_mass if part_mass else 0.0}
    return direct, kept, stats


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


def add_heads(graph, model, dictionaries=None, *, keys=None, batch_size: int = 64,  # noqa: ANN001, ANN201
              device=None, progress: bool = False, min_head_share: float = DEFAULT_MIN_SHARE):  # noqa: ANN001
    """Heads on demand: the head decomposition of a stored (e.g. pruned, heads-off) feature ``graph`` — or of the
    subgraph among the node ``keys`` — recomputed from ``model`` and the graph's ``dictionaries`` (the same spec the
    graph was built with) on the graph's own tokens. Returns a new graph; existing head nodes are collapsed first.
    ``min_head_share``: parts below that share of their pair's mass stay in the plain edge (module doc)."""
    from circuitdb.dictionaries.load import load_dictionaries
    from circuitdb.graph import AttributionGraph
    from circuitdb.models.dtypes import torch_dtype

    check_min_share(min_head_share)
    if graph.meta.get("granularity") != "feature":
        raise ConfigError(f"graph {graph.id!r} is not a feature graph (granularity {graph.meta.get('granularity')!r})")
    g = collapse_heads(graph)
    if keys is not None:
        want = set(map(str, keys))
        unknown = sorted(want - set(g.keys))
        if unknown:
            raise ConfigError(f"node key(s) {unknown[:5]} are not in graph {graph.id!r}")
        g = g.subgraph(node_mask=np.isin(g.keys, list(want)))
    dtype = torch_dtype(graph.meta.get("params", {}).get("dtype")) or model.cfg.dtype
    dicts = load_dictionaries(dictionaries, model, dtype=dtype, device=device)
    got = [d.id for d in dicts]
    if graph.meta.get("dictionaries") and got != list(graph.meta["dictionaries"]):
        raise ConfigError(f"graph {graph.id!r} was built with dictionaries {graph.meta['dictionaries']}; got {got}")
    params = graph.meta.get("params", {})
    rm = ReplacementModel.build(model, graph.meta["tokens"], dicts, dtype, device,
                                zero_first_pos=bool(params.get("zero_first_pos", False)),
                                token_vectors=params.get("token_vectors", "embed+pos"))
    nodes, e, stats = decompose_heads(rm, g.nodes, {"src": g.src, "dst": g.dst, "weight": g.weight,
                                                    "channel": g.channel}, batch_size, progress, min_head_share)
    params = {**graph.meta.get("params", {}), "heads": True, "min_head_share": float(min_head_share)}
    meta = {**graph.meta, "params": params, "head_decomposition": stats}
    if keys is not None:
        meta["heads_for"] = sorted(map(str, keys))
    return AttributionGraph(nodes, e["src"], e["dst"], e["weight"], e["channel"], meta)
