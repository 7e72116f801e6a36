"""Interventions by stored node key: ablate / patch / scale heads, MLPs and features, steer with a feature's decoder
direction, and check that a feature graph predicts what an intervention does (the logit lens: circuitdb.lens).

Conventions (stated once):
- Node keys are those of the stored graphs (``docs/design.md``): ``A{l}.{h}`` / ``A{l}.{h}@{p}`` (a head's output,
  at ``blocks.{l}.attn.hook_z``), ``M{l}`` / ``M{l}@{p}`` (``blocks.{l}.hook_mlp_out``), ``F{l}:{i}@{p}`` (feature
  ``i`` of the dictionary whose hook is at layer ``l``; its contribution is ``a_i · W_dec[i]`` at the dictionary's
  output hook, and for a cross-layer transcoder also ``a_i · W_dec_later[i, j - 1]`` at MLP ``l + j``: a feature
  intervention moves every site the feature writes, by ``Dictionary.decoder(j)``; "``W_dec[i]``" below means all
  of them). Without ``@p`` an intervention acts at every position.
- Operations: ``zero`` (ablate: the node's output is removed), ``scale`` (multiplied by ``value``), ``patch`` (the
  output it has on the ``corrupted`` tokens; for a feature: its activation is set to the one it has on the corrupted
  run, through its decoder direction, ``(a_corr − a) · W_dec[i]`` added at its output hook), ``add`` (steering:
  ``value · W_dec[i]`` added at the feature's output hook, whether or not it is active — "Golden Gate" style).
- Logits in the steering check are *centred* (``logit − mean logit``), the quantity feature graphs attribute.
- Hooks are only active inside ``model.hooks(...)`` scopes; torch is imported by this module (it is not part of
  ``import circuitdb``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError, one_of
from circuitdb.lens import logit_lens, logit_lens_metric, parse_node_key  # noqa: F401 - the lens lives in lens.py

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.dictionaries.base import Dictionary
    from circuitdb.graph import AttributionGraph

log = logging.getLogger(__name__)

OPS = ("zero", "scale", "patch", "add")


@dataclass(frozen=True)
class Intervention:
    """One intervention on one node (see module doc for keys and operations)."""

    key: str
    op: str = "zero"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(one_of(self.op, OPS, "intervention"))
        kind, *_ = parse_key(self.key)
        if self.op == "add" and kind != "feature":
            raise ConfigError(f"intervention 'add' steers along a feature's decoder direction; {self.key!r} is a {kind}")


def parse_key(key: str) -> tuple[str, int, int, int | None]:
    """``(kind, layer, head-or-feature index (-1 for MLPs), pos or None)`` of a node key."""
    parsed = parse_node_key(key) if ">" not in str(key) else None
    if parsed is None or parsed[0] == "error":
        raise ConfigError(f"cannot intervene on node {key!r}; keys look like A1.2, A1.2@5, M0, M0@5 or F1:37@5")
    if parsed[0] == "feature" and parsed[3] is None:
        raise ConfigError(f"feature key {key!r} needs a position (F{{layer}}:{{index}}@{{pos}})")
    return parsed


def _dictionary_at(dicts: Sequence["Dictionary"], layer: int, key: str) -> "Dictionary":
    from circuitdb.dictionaries.base import parse_hook

    for d in dicts:
        if parse_hook(d.hook_in)[0] == layer:
            return d
    have = sorted(parse_hook(d.hook_in)[0] for d in dicts)
    raise ConfigError(f"no dictionary at layer {layer} for {key!r}; dictionaries are at layers {have}")


def _feature_dictionary(dicts: Sequence["Dictionary"], layer: int, index: int, key: str) -> "Dictionary":
    d = _dictionary_at(dicts, layer, key)
    if not 0 <= index < d.width:
        raise ConfigError(f"{key!r}: feature {index} outside dictionary {d.id!r} of width {d.width}")
    return d


def _check(model: "HookedTransformer", kind: str, layer: int, index: int, key: str) -> None:
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ConfigError(f"{key!r}: layer {layer} outside [0, {cfg.n_layers})")
    if kind == "head" and not 0 <= index < cfg.n_heads:
        raise ConfigError(f"{key!r}: head {index} outside [0, {cfg.n_heads})")
    if kind == "mlp" and cfg.attn_only:
        raise ConfigError(f"{key!r}: the model is attention-only")


def intervention_hooks(model: "HookedTransformer", interventions: Iterable[Intervention],
                       dictionaries: Sequence["Dictionary"] = (), corrupted: Tensor | None = None) -> list:
    """Forward hooks ``[(hook name, fn)]`` that apply ``interventions`` (use inside ``model.hooks(...)``)."""
    ivs = list(interventions)
    patch_cache: dict[str, Tensor] = {}
    if any(iv.op == "patch" for iv in ivs):
        if corrupted is None:
            raise ConfigError("intervention 'patch' needs corrupted tokens (the run whose outputs are patched in)")
        names = {_hook_name(parse_key(iv.key)) for iv in ivs if iv.op == "patch" and not iv.key.startswith("F")}
        with torch.no_grad():
            _, cache = model.run_with_cache(corrupted.to(model.cfg.device), names_filter=lambda n: n in names)
        patch_cache = {n: cache[n] for n in names}
    feature_patch = _feature_activations(model, [iv for iv in ivs if iv.op == "patch"], dictionaries, corrupted)
    hooks = []
    for iv in ivs:
        kind, layer, index, pos = parse_key(iv.key)
        _check(model, kind, layer, index, iv.key)
        sel = slice(None) if pos is None else pos
        if kind in ("head", "mlp"):
            name = _hook_name((kind, layer, index, pos))
            hooks.append((name, _component_hook(iv, kind, index, sel, patch_cache.get(name))))
        else:
            d = _feature_dictionary(dictionaries, layer, index, iv.key)
            store: dict[str, Tensor] = {}

            def grab(t: Tensor, hook: Any, d=d, store=store, index=index) -> None:  # noqa: ANN001
                store["a"] = d.encode(t)[..., index]
            hooks.append((d.hook_in, grab))
            for j in range(1 + d.n_later):  # a cross-layer feature writes every MLP output it decodes into
                hooks.append((_decoder_hook(d, j), _feature_hook(iv, sel, d.decoder(j)[index], store,
                                                                 feature_patch.get(iv.key))))
    return hooks


def _decoder_hook(d: "Dictionary", j: int) -> str:
    """The hook ``d.decoder(j)`` writes: its output hook, ``j`` layers on (a cross-layer transcoder's later MLPs)."""
    from circuitdb.dictionaries.base import parse_hook

    return d.hook_out if j == 0 else f"blocks.{d.layer + j}.{parse_hook(d.hook_out)[1]}"


def _feature_hook(iv: Intervention, sel: Any, direction: Tensor, store: dict[str, Tensor],  # noqa: ANN401
                  target: Tensor | None):  # noqa: ANN202
    """The hook that moves one feature's contribution ``a · direction`` at one of the sites it writes."""
    def steer(t: Tensor, hook: Any) -> Tensor:  # noqa: ANN401
        t = t.clone()
        vec = direction.to(t.dtype)
        if iv.op == "add":
            t[:, sel] += iv.value * vec
        elif iv.op == "patch":
            if target.shape != store["a"].shape:
                raise ConfigError(f"patching {iv.key!r}: corrupted tokens give {tuple(target.shape)}, the "
                                  f"run {tuple(store['a'].shape)} (same batch and length needed)")
            t[:, sel] += (target - store["a"])[:, sel, None].to(t.dtype) * vec
        else:
            factor = 0.0 if iv.op == "zero" else iv.value
            t[:, sel] += (factor - 1.0) * store["a"][:, sel, None].to(t.dtype) * vec
        return t
    return steer


def _feature_activations(model: "HookedTransformer", ivs: list[Intervention], dictionaries: Sequence["Dictionary"],
                         corrupted: Tensor | None) -> dict[str, Tensor]:
    """``{feature key: its activation [batch, seq] on the run of tokens corrupted}`` for the features among ``ivs``."""
    feats = [iv for iv in ivs if parse_key(iv.key)[0] == "feature"]
    if not feats:
        return {}
    if corrupted is None:
        raise ConfigError("intervention 'patch' needs corrupted tokens (the run whose activations are patched in)")
    got: dict[str, Tensor] = {}
    hooks = []
    for iv in feats:
        _, layer, index, _ = parse_key(iv.key)
        d = _feature_dictionary(dictionaries, layer, index, iv.key)

        def grab(t: Tensor, hook: Any, d=d, key=iv.key, index=index) -> None:  # noqa: ANN001
            got[key] = d.encode(t)[..., index].detach()
        hooks.append((d.hook_in, grab))
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(corrupted.to(model.cfg.device), return_type=None)
    return got


def _hook_name(parsed: tuple) -> str:
    kind, layer = parsed[0], parsed[1]
    return f"blocks.{layer}.attn.hook_z" if kind == "head" else f"blocks.{layer}.hook_mlp_out"


def _component_hook(iv: Intervention, kind: str, head: int, sel: Any, patched: Tensor | None):  # noqa: ANN202
    def fn(t: Tensor, hook: Any) -> Tensor:  # noqa: ANN401
        t = t.clone()
        idx = (slice(None), sel, head) if kind == "head" else (slice(None), sel)
        if iv.op == "zero":
            t[idx] = 0
        elif iv.op == "scale":
            t[idx] = t[idx] * iv.value
        else:
            if patched.shape != t.shape:
                raise ConfigError(f"patching {iv.key!r}: corrupted tokens give {tuple(patched.shape)}, the run "
                                  f"{tuple(t.shape)} (same batch and length needed)")
            t[idx] = patched[idx].to(t.dtype)
        return t
    return fn


def run_with_interventions(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"],
                           interventions: Iterable[Intervention], *, dictionaries: Sequence["Dictionary"] = (),
                           corrupted: Tensor | None = None) -> Float[Tensor, "batch seq vocab"]:
    """The model's logits with ``interventions`` applied."""
    tokens = tokens if tokens.ndim == 2 else tokens[None]
    hooks = intervention_hooks(model, interventions, dictionaries, corrupted)
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return model(tokens.to(model.cfg.device))


def generate(model: "HookedTransformer", tokens: Int[Tensor, " seq"], interventions: Iterable[Intervention] = (),
             *, max_new_tokens: int = 10, dictionaries: Sequence["Dictionary"] = ()) -> list[int]:
    """Greedy continuation of ``tokens`` (one prompt) with ``interventions`` active at every step; returns the new
    token ids. Position-less interventions act on every position, the generated ones included."""
    ivs = list(interventions)
    if any(iv.op == "patch" for iv in ivs):
        raise ConfigError("intervention 'patch' has no corrupted run to patch from during generation")
    seq = tokens.reshape(-1).tolist()
    out = []
    for _ in range(max_new_tokens):
        if len(seq) >= model.cfg.n_ctx:
            break
        logits = run_with_interventions(model, torch.tensor([seq]), ivs, dictionaries=dictionaries)
        nxt = int(logits[0, -1].argmax())
        seq.append(nxt)
        out.append(nxt)
    return out


def _centred(logits: Tensor) -> Tensor:
    return logits - logits.mean(-1, keepdim=True)


def graph_prediction(graph: "AttributionGraph", key: str, factor: float) -> dict[str, dict[str, float]]:
    """Predicted change of every logit node's centred logit when feature ``key`` is scaled by ``factor``, from the
    graph's edges: ``direct`` (its own edges into the logits: exact in the frozen replacement model, where every other
    feature is held at its clean activation) and ``propagated`` (through the graph's feature-to-feature edges too,
    with active features responding linearly — gates, attention and LayerNorm frozen)."""
    if (graph.nodes["kind"].to_numpy() == "head").any():  # head nodes split edges by path: sum them back first
        from circuitdb.attribution.feature_heads import collapse_heads

        graph = collapse_heads(graph)
    keys = graph.keys
    where = {k: i for i, k in enumerate(keys.tolist())}
    if key not in where:
        raise ConfigError(f"node {key!r} is not in graph {graph.id!r}")
    s, n = where[key], graph.n_nodes
    kinds = graph.nodes["kind"].to_numpy()
    act = graph.nodes["activation"].to_numpy().astype(float)
    resp = (kinds == "feature") & np.isfinite(act) & (act != 0)
    resp[s] = False
    from scipy.sparse import csr_matrix, identity
    from scipy.sparse.linalg import spsolve

    rows = resp[graph.dst]
    M = csr_matrix((graph.weight[rows] / act[graph.dst[rows]], (graph.dst[rows], graph.src[rows])), shape=(n, n))
    e = np.zeros(n)
    e[s] = factor - 1.0
    rel = np.asarray(spsolve((identity(n, format="csc") - M).tocsc(), e)).reshape(-1)  # relative changes
    W = csr_matrix((graph.weight, (graph.dst, graph.src)), shape=(n, n))
    direct, prop = W @ e, W @ rel
    return {keys[i]: {"direct": float(direct[i]), "propagated": float(prop[i])} for i in np.flatnonzero(kinds == "logit")}


def steering_check(model: "HookedTransformer", graph: "AttributionGraph", key: str, factor: float = 0.0, *,
                   tokens: Tensor | None = None, dictionaries: Any = None) -> dict[str, Any]:
    """Predicted (from ``graph``) vs actual change of each logit node's centred logit when feature ``key`` is
    scaled by ``factor`` (0 = ablate): ``frozen`` applies the intervention to the frozen replacement model (equal to
    the ``direct`` prediction up to float error), ``real`` to the real model; ``gap`` = real − propagated prediction, the part the
    graph's linearisation cannot see (attention patterns, LayerNorm scales and feature gates re-computed)."""
    tokens, dicts = _check_inputs(model, graph, key, tokens, dictionaries)
    return _feature_check(model, graph, key, factor, tokens, dicts, Intervention(key, "scale", factor))


def patch_check(model: "HookedTransformer", graph: "AttributionGraph", key: str, corrupted: Tensor, *,
                tokens: Tensor | None = None, dictionaries: Any = None) -> dict[str, Any]:
    """As :func:`steering_check`, for patching feature ``key`` from the ``corrupted`` prompt: its activation is set
    to the one it has on the corrupted run (same length as the graph's prompt). In the graph and the frozen model
    that is the scaling factor ``a_corrupted / a_clean`` of the node; in the real model the ``patch`` intervention
    (whose downstream features, attention and LayerNorm scales respond). The result also names both activations."""
    tokens, dicts = _check_inputs(model, graph, key, tokens, dictionaries)
    corrupted = torch.as_tensor(corrupted, dtype=torch.long).reshape(1, -1)
    if corrupted.shape[1] != tokens.numel():
        raise ConfigError(f"patch_check: the corrupted prompt has {corrupted.shape[1]} tokens, the graph's "
                          f"{tokens.numel()} (equal lengths needed)")
    _, layer, index, pos = parse_key(key)
    iv = Intervention(key, "patch")
    a_corr = float(_feature_activations(model, [iv], dicts, corrupted)[key][0, pos])
    a_clean = float(_feature_activations(model, [iv], dicts, tokens.reshape(1, -1))[key][0, pos])
    if a_clean == 0.0:
        raise ConfigError(f"feature {key!r} is not active on this prompt")
    res = _feature_check(model, graph, key, a_corr / a_clean, tokens, dicts, iv, corrupted)
    return {**res, "op": "patch", "clean_activation": a_clean, "corrupted_activation": a_corr,
            "corrupted_tokens": corrupted.reshape(-1).tolist()}


def _check_inputs(model: "HookedTransformer", graph: "AttributionGraph", key: str, tokens: Tensor | None,
                  dictionaries: Any) -> tuple[Tensor, list]:
    from circuitdb.dictionaries.load import load_dictionaries

    kind = parse_key(key)[0]
    if kind != "feature":
        raise ConfigError(f"steering and patch checks act on a feature node; {key!r} is a {kind}")
    if tokens is None:
        tokens = torch.as_tensor(graph.meta.get("tokens") or [], dtype=torch.long).reshape(-1)
        if tokens.numel() == 0:
            raise ConfigError(f"graph {graph.id!r} records no tokens; pass tokens=")
    dicts = load_dictionaries(dictionaries, model, dtype=model.cfg.dtype)  # None: the model's zoo dictionaries
    want = set(graph.meta.get("dictionaries") or [])
    if want and not want <= {d.id for d in dicts}:
        raise ConfigError(f"graph {graph.id!r} was built with dictionaries {sorted(want)}; got "
                          f"{sorted(d.id for d in dicts)} (pass dictionaries=)")
    return tokens.reshape(-1), dicts


def _feature_check(model: "HookedTransformer", graph: "AttributionGraph", key: str, factor: float, tokens: Tensor,
                   dicts: list, real_iv: Intervention, corrupted: Tensor | None = None) -> dict[str, Any]:
    """The graph's prediction, the frozen replacement model and the real model (``real_iv``) for one feature whose
    contribution is multiplied by ``factor``."""
    from circuitdb.attribution.replacement import ReplacementModel

    _, layer, index, pos = parse_key(key)
    pred = graph_prediction(graph, key, factor)
    rm = ReplacementModel.build(model, tokens, dicts)
    d = _dictionary_at(dicts, layer, key)
    di = next(i for i, x in enumerate(rm.dicts) if x.id == d.id)
    src = rm.sources
    j = np.flatnonzero((src.kind == "feature") & (src.dictionary == di) & (src.pos == pos) & (src.feature == index))
    if j.size != 1:
        raise ConfigError(f"feature {key!r} is not active on this prompt")
    clean = _centred(rm.frozen_forward()["logits"])  # the intervention itself, in the frozen replacement model
    frozen = _centred(rm.frozen_forward(extra_hooks=intervention_hooks(model, [real_iv], dicts, corrupted))["logits"])
    frozen = frozen - clean
    real_clean = _centred(run_with_interventions(model, tokens.reshape(1, -1), [])[0])
    real = _centred(run_with_interventions(model, tokens.reshape(1, -1), [real_iv], dictionaries=dicts,
                                           corrupted=corrupted)[0]) - real_clean
    rows = {}
    nodes = graph.nodes.set_index("key")
    for lk, p in pred.items():
        tp, tok = int(nodes.at[lk, "pos"]), int(nodes.at[lk, "token"])
        f, r = float(frozen[tp, tok]), float(real[tp, tok])
        rows[lk] = {**p, "frozen": f, "real": r, "gap": r - p["propagated"]}
    worst = max(abs(v["frozen"] - v["direct"]) for v in rows.values()) if rows else 0.0
    log.info("%s %s x%g: frozen vs graph max |diff| %.3g", real_iv.op, key, factor, worst)
    return {"key": key, "op": real_iv.op, "factor": factor, "logits": rows, "frozen_vs_graph": worst,
            "gap_cause": "the real model re-computes attention patterns, LayerNorm scales and every downstream "
                         "feature's activation (gate), which the graph holds at their clean values"}


def record_check(circuit: Any, check: dict[str, Any]) -> Any:
    """``circuit`` with ``check`` (from :func:`steering_check` / :func:`patch_check`) appended to ``scores["steering_checks"]``."""
    return circuit.with_scores(steering_checks=[*circuit.scores.get("steering_checks", []), check])
