"""Edge attribution patching (EAP) and EAP-IG (inputs) for every edge of a component graph.

Conventions: node order, sources, receivers and ``scores[t, s]`` (row = receiver/target, column = source) are those of
:mod:`circuitdb.attribution.components`. Scores are means over the dataset's examples, in float64.

- **EAP** (Syed et al. 2023): ``score(u → v) = (z_u(base) − z_u(clean)) · ∂M/∂in_v |clean``, summed over positions
  (per-position mode keeps them apart). One baseline forward (no grad), one clean forward + backward per batch: the
  baseline forward writes every source output into a source-major buffer, the clean forward subtracts its own from it
  in place; one ``autograd.grad`` gives the metric's gradient at all receivers, mapped to the per-head inputs and
  contracted with the differences by one matmul per layer's heads / MLP (see :func:`grad_pass`).
- **EAP-IG, inputs** (Hanna et al. 2024): the gradient is averaged over ``m`` points on the line between the baseline
  and the clean input embedding (``blocks.0.hook_resid_pre``): ``e_k = e_base + (k/m)(e_clean − e_base)``,
  ``k = 1..m`` (the right Riemann sum of the EAP-IG library, so ``m = 1`` is EAP and the ``k = m`` pass doubles as the
  clean pass; it runs first, to complete the differences, and each pass is scored as it ends). Cost: one baseline
  forward + ``m`` forward/backward passes per batch.
- **Ablation baselines** ``z_u(base)``: ``"patch"`` — the source's output on the corrupted prompt (and the corrupted
  embedding as the IG start); ``"zero"`` — 0 (IG starts from a zero embedding); ``"mean"`` — the source's output
  averaged over the dataset's *clean* prompts, per position (one extra no-grad pass over the dataset first).
- The metric is ``metric(logits, batch) -> [batch]`` (see :mod:`circuitdb.tasks.base`); metrics with
  ``needs_clean`` (KL) get ``prepare(clean_logits, batch)`` per batch from one extra no-grad clean forward.
- Memory per batch is O(batch · pos · (n_src + receivers per layer) · d_model) besides the model's activations; only
  the ``[n_rcv, n_src]`` (``[pos, …]``) score accumulator outlives a batch.
- **Per-example scores** (``per_example=True``): ``scores[i]`` is example ``i``'s own score, from the same batched
  passes — the contraction keeps the batch axis instead of summing it. This is exact, not an approximation: the
  examples of a batch do not interact in the model (attention and normalisation act within one sequence), so the
  gradient of ``Σ_j M_j`` with respect to example ``i``'s activations is ``∂M_i/∂act_i``. It needs a metric whose
  value for an example depends on that example's logits only (every built-in metric); the first batch checks this
  against the first example run alone (AttributionError otherwise). All prompts of a dataset have one length, so no
  padding enters; ``answer_pos`` may differ per example. ``"mean"`` ablation uses the mean over ``mean_over`` (default
  the whole ``dataset``), never over a batch, so per-example scores do not depend on the batching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from circuitdb.attribution.components import (
    EMBED_HOOK, ComponentGraph, engine_mode, source_hooks, split_qkv,
)
from circuitdb.attribution.eap_inputs import (
    batches, check_ablation, check_batch_size, check_dataset, check_separable, metric_values, prepared,
)
from circuitdb.errors import AttributionError, ConfigError, one_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

METHODS = ("eap", "eap-ig")


@dataclass(frozen=True)
class EAPConfig:
    """Parameters of one EAP / EAP-IG run (validated on construction, no I/O)."""

    method: str = "eap-ig"
    ig_steps: int = 5
    ablation: str = "patch"
    batch_size: int = 32
    per_position: bool = False
    per_example: bool = False  # scores [n, *pos, n_rcv, n_src]: each example's own (see module doc)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(one_of(self.method, METHODS, "EAP method"))
        check_ablation(self.ablation)
        if not isinstance(self.ig_steps, int) or self.ig_steps < 1:
            raise ConfigError(f"ig_steps must be an integer >= 1, got {self.ig_steps!r}")
        check_batch_size(self.batch_size)

    @property
    def steps(self) -> int:
        return self.ig_steps if self.method == "eap-ig" else 1


@dataclass(frozen=True)
class EAPResult:
    """Dense edge scores (0 where no edge exists) and the dataset's mean metric on clean / baseline inputs.

    With ``per_example``: ``scores`` is ``[n, *pos, n_rcv, n_src]`` and ``clean_values`` / ``baseline_values`` hold
    every example's metric (the means are still the dataset's)."""

    scores: Float[Tensor, "*n *pos n_rcv n_src"]
    clean_metric: float
    baseline_metric: float | None  # metric of the corrupted run ("patch" only)
    n: int
    clean_values: Float[Tensor, " n"] | None = None
    baseline_values: Float[Tensor, " n"] | None = None


def run_sources(
    model: "HookedTransformer", comp: ComponentGraph, tokens: Tensor, metric: Callable | None = None,
    batch: "PromptPairs | None" = None, major: bool = False,
) -> tuple[Float[Tensor, "batch pos n_src d_model"] | Float[Tensor, "n_src batch pos d_model"], Tensor | None]:
    """No-grad forward on ``tokens`` (inside :func:`engine_mode`): every source output, and the metric if given.
    ``major``: source-major layout ``[n_src, batch, pos, d_model]`` (what EAP contracts), else a ``[b, p, n_src, d]``
    copy of it."""
    if not major:
        srcs, values = run_sources(model, comp, tokens, metric, batch, major=True)
        return srcs.permute(1, 2, 0, 3).contiguous(), values
    b, p = tokens.shape
    srcs = torch.empty((comp.n_src, b, p, model.cfg.d_model), device=model.cfg.device, dtype=model.cfg.dtype)
    hooks = [(name, _grab(model, srcs, start, layer)) for name, start, layer in source_hooks(comp)]
    with torch.no_grad(), split_qkv(model, False), model.hooks(fwd_hooks=hooks):
        logits = model(tokens.to(model.cfg.device), return_type="logits" if metric is not None else None)
    values = metric_values(metric, logits, batch) if metric is not None else None
    return srcs, values


def _grab(model: "HookedTransformer", srcs: Tensor, start: int, layer: int, sub: bool = False) -> Callable:
    """Hook writing a source hook's outputs into ``srcs[start:…]`` (source-major; heads: ``z_h W_O[h]`` by one bmm),
    or subtracting them from it in place if ``sub``."""
    def hook(act: Tensor, hook) -> None:  # noqa: ANN001
        act = act.detach()
        if layer < 0:
            (srcs[start].sub_ if sub else srcs[start].copy_)(act)
            return
        H, e = act.shape[2], act.shape[3]
        z = act.permute(2, 0, 1, 3).reshape(H, -1, e)  # h bp e
        W, o = model.blocks[layer].attn.W_O.detach(), srcs[start:start + H].view(H, -1, srcs.shape[-1])
        if sub:
            o.baddbmm_(z, W, alpha=-1.0)
        else:
            torch.bmm(z, W, out=o)
    return hook


def dataset_mean(
    model: "HookedTransformer", comp: ComponentGraph, dataset: "PromptPairs", batch_size: int = 32,
    progress: bool = False,
) -> Float[Tensor, "pos n_src d_model"]:
    """Mean of every source output over the dataset's clean prompts, per position (the "mean" ablation)."""
    total = None
    for b in batches(dataset, batch_size, progress, "mean ablation"):
        srcs, _ = run_sources(model, comp, b.clean)
        s = srcs.sum(0)
        total = s if total is None else total + s
    return total / len(dataset)


def baseline_sources(
    model: "HookedTransformer", comp: ComponentGraph, batch: "PromptPairs", ablation: str,
    mean: Tensor | None, metric: Callable | None = None, major: bool = False,
) -> tuple[Float[Tensor, "batch pos n_src d_model"] | Float[Tensor, "n_src batch pos d_model"], Tensor | None]:
    """``z_u(base)`` for every source: corrupted run ("patch", with its metric), zeros, or the dataset mean (layout
    as :func:`run_sources`)."""
    if ablation == "patch":
        return run_sources(model, comp, batch.corrupted, metric, batch, major)
    shape = (comp.n_src, len(batch), batch.seq_len, model.cfg.d_model)
    if ablation == "zero":
        out = torch.zeros(shape, device=model.cfg.device, dtype=model.cfg.dtype)
    elif mean is None:
        raise AttributionError("mean ablation needs the dataset mean (dataset_mean) computed first")
    else:
        out = mean.transpose(0, 1)[:, None].expand(shape)
    return (out if major else out.permute(1, 2, 0, 3)), None


def grad_pass(
    model: "HookedTransformer", comp: ComponentGraph, batch: "PromptPairs", metric: Callable, embed: Tensor,
    diff: Float[Tensor, "n_src batch pos d_model"], buf: Float[Tensor, "heads3 batch pos d_model"],
    clean: bool, per_position: bool, per_example: bool = False,
) -> tuple[Float[Tensor, "*batch *pos n_rcv n_src"], Tensor]:
    """Forward with ``embed`` as the input embedding, the metric's gradient at every receiver input, and its
    contraction with ``diff`` (:func:`score_layer`); returns (float64 scores ``[*pos, n_rcv, n_src]``, metric values).

    The model runs unsplit (one residual copy per layer, not per head): one ``autograd.grad`` reaches ``hook_q/k/v``
    (``[batch, pos, head, d_head]``), every MLP input and the final residual. A head's q/k/v-input gradient is then
    ``J_ln1(resid_pre)ᵀ W_{Q/K/V}[h] ∂M/∂q_h`` (see :func:`_head_input_grads`) — the same numbers TransformerLens'
    ``use_split_qkv_input`` path gives, without running every head's attention on its own residual copy. One layer's
    head-input gradients at a time live in ``buf``. If ``clean`` (the clean pass), ``diff`` holds ``z(base)`` on entry
    and the forward subtracts the source outputs from it in place, so it holds ``z(base) − z(clean)`` when scored.
    ``per_example``: scores ``[batch, *pos, n_rcv, n_src]``, each example's own (module doc).
    """
    acts: dict[str, Tensor] = {}
    leaf = embed.detach().requires_grad_(True)
    L = comp.n_layers

    def keep(act: Tensor, hook) -> None:  # noqa: ANN001
        acts[hook.name] = act

    wanted = [f"blocks.{layer}.attn.hook_{c}" for layer in range(L) for c in "qkv"]
    wanted += [] if comp.attn_only else [f"blocks.{layer}.hook_mlp_in" for layer in range(L)]
    wanted.append(f"blocks.{L - 1}.hook_resid_post")
    hooks = [(EMBED_HOOK, lambda act, hook: leaf)]
    if clean:
        hooks += [(name, _grab(model, diff, start, layer, sub=True)) for name, start, layer in source_hooks(comp)]
    hooks += [(f"blocks.{layer}.hook_resid_pre", keep) for layer in range(1, L)] + [(nm, keep) for nm in wanted]
    with torch.enable_grad(), split_qkv(model, False), model.hooks(fwd_hooks=hooks):
        logits = model(batch.clean.to(model.cfg.device))
        values = metric_values(metric, logits, batch)
        grads = dict(zip(wanted, torch.autograd.grad(values.sum(), [acts[nm] for nm in wanted], allow_unused=True,
                                                     materialize_grads=True)))
    acts[EMBED_HOOK] = leaf
    lead = ((diff.shape[1],) if per_example else ()) + ((diff.shape[2],) if per_position else ())
    out = torch.zeros(lead + (comp.n_rcv, comp.n_src), dtype=torch.float64, device=diff.device)
    mode = (per_example, per_position)
    H3 = 3 * comp.n_heads
    with torch.no_grad():
        for layer in range(L):
            t0 = comp.rcv_index(layer, "q", 0)
            _head_input_grads(model.blocks[layer], acts[f"blocks.{layer}.hook_resid_pre"].detach(),
                              [grads[f"blocks.{layer}.attn.hook_{c}"] for c in "qkv"], buf)
            score_layer(out[..., t0:t0 + H3, :], buf, diff, comp.rcv_n_upstream(t0), mode)
            if not comp.attn_only:
                t = comp.rcv_index(layer, "")
                score_layer(out[..., t:t + 1, :], grads[f"blocks.{layer}.hook_mlp_in"][None], diff,
                            comp.rcv_n_upstream(t), mode)
        score_layer(out[..., -1:, :], grads[wanted[-1]][None], diff, comp.n_src, mode)
    return out, values.detach()


def _head_input_grads(
    blk: torch.nn.Module, x: Float[Tensor, "b p d"], g: list[Float[Tensor, "b p h e"]], out: Float[Tensor, "c b p d"],
) -> None:
    """Write ``J_ln1(x)ᵀ W_c ∂M/∂(q,k,v)_c`` for the ``c = 3H`` head inputs (q heads, k heads, v heads) into ``out``.

    Closed form for TransformerLens' LayerNorm / LayerNormPre / RMSNorm / RMSNormPre (``x̂ = x_c / σ``,
    ``σ = sqrt(mean(x_c²) + eps)``, ``x_c`` centred for LayerNorm): ``J ᵀ g = (P g' − x̂ · mean(g' ⊙ x̂)) / σ`` with
    ``g' = w ⊙ g`` and ``P`` the centring (RMS: identity). As ``g = W ∂M/∂q`` is linear, ``w``, ``P`` and ``1/σ`` are
    folded into the stacked ``[3H, d, e]`` weights / the small ``[3H, bp, e]`` cotangents, and the result costs one
    bmm, one row-wise dot product and one in-place rank-one update. Any other module (or a half-precision one) goes
    through autograd on the materialised ``W ∂M/∂q``; no normalisation (``nn.Identity``): the bmm alone."""
    attn, ln = blk.attn, blk.ln1
    W = torch.cat([attn.W_Q, attn.W_K, attn.W_V]).detach()  # c d e
    c, d, e = W.shape
    G = torch.cat([t.permute(2, 0, 1, 3) for t in g]).reshape(c, -1, e)  # c bp e
    o = out.view(c, -1, d)
    name = type(ln).__name__
    if isinstance(ln, torch.nn.Identity):
        torch.bmm(G, W.transpose(1, 2), out=o)
        return
    if name not in ("LayerNorm", "LayerNormPre", "RMSNorm", "RMSNormPre") or x.dtype not in (torch.float32,
                                                                                             torch.float64):
        torch.bmm(G, W.transpose(1, 2), out=o)
        xe = x.reshape(1, -1, d).expand_as(o).clone().requires_grad_(True)
        with torch.enable_grad():
            (gx,) = torch.autograd.grad(ln(xe), xe, o.clone())
        o.copy_(gx)
        return
    center = name.startswith("LayerNorm")
    x = x.reshape(-1, d)
    xc = x - x.mean(-1, keepdim=True) if center else x
    r = (xc.pow(2).mean(-1, keepdim=True) + ln.eps).rsqrt()  # bp 1: 1/σ
    xh = xc * r
    if getattr(ln, "w", None) is not None:
        W = W * ln.w.detach()[:, None]
    Wc = W - W.mean(1, keepdim=True) if center else W
    torch.bmm(G.mul_(r), Wc.transpose(1, 2), out=o)  # P g' / σ
    o.addcmul_(xh, torch.linalg.vecdot(o, xh).unsqueeze(-1), value=-1.0 / d)  # ⟨P g', x̂⟩ = ⟨g', x̂⟩: x̂ is centred


def clean_embedding(model: "HookedTransformer", tokens: Tensor) -> Float[Tensor, "batch pos d_model"]:
    """The input embedding ``blocks.0.hook_resid_pre`` of ``tokens`` (token + positional embedding)."""
    with torch.no_grad():
        return model(tokens.to(model.cfg.device), stop_at_layer=0)


# ------------------------------------------------------------------------------------------------ EAP / EAP-IG
def eap_scores(
    model: "HookedTransformer", dataset: "PromptPairs", metric: Callable, config: EAPConfig = EAPConfig(),
    mean_over: "PromptPairs | Tensor | None" = None,
) -> EAPResult:
    """EAP or EAP-IG scores of every edge of ``model``'s component graph, mean over ``dataset`` (or per example with
    ``config.per_example``; see module doc). ``mean_over``: the prompts whose mean the ``"mean"`` ablation uses
    (default ``dataset``), or that mean itself (``[pos, n_src, d_model]``, from :func:`dataset_mean`)."""
    check_dataset(model, dataset)
    per_ex = config.per_example
    with engine_mode(model) as comp:
        mean = None
        if config.ablation == "mean":
            mean = mean_over if isinstance(mean_over, Tensor) else dataset_mean(
                model, comp, dataset if mean_over is None else mean_over, config.batch_size, config.progress)
        acc: Tensor | None = None
        parts: list[Tensor] = []
        clean_vals: list[Tensor] = []
        base_vals_all: list[Tensor] = []
        desc = f"{config.method} ({config.steps} step{'s' if config.steps > 1 else ''})"
        for bi, batch in enumerate(batches(dataset, config.batch_size, config.progress, desc)):
            m = prepared(metric, model, batch)
            diff, base_vals = baseline_sources(model, comp, batch, config.ablation, mean, m, major=True)
            diff = diff if config.ablation == "patch" else diff.contiguous()  # own it: z(base) − z(clean) below
            if base_vals is not None:
                base_vals_all.append(base_vals.detach().double().cpu())
            e_clean = clean_embedding(model, batch.clean)
            buf = e_clean.new_empty((3 * comp.n_heads, *e_clean.shape))
            sc = None
            for k in [config.steps, *range(1, config.steps)]:  # the clean pass (k = m) first: it completes diff
                embed = e_clean if k == config.steps else e_clean + (1 - k / config.steps) * diff[0]
                s, vals = grad_pass(model, comp, batch, m, embed, diff, buf, k == config.steps, config.per_position,
                                    per_ex)
                sc = s if sc is None else sc + s
                if k == config.steps:
                    clean_vals.append(vals.double().cpu())
                    if per_ex and bi == 0 and len(batch) > 1:
                        check_separable(model, batch, metric, vals)
            sc = sc / config.steps
            if not torch.isfinite(sc).all():
                raise AttributionError(f"non-finite EAP scores in a batch of dataset {dataset.name!r} "
                                       "(NaN/inf activations or gradients)")
            if per_ex:
                parts.append(sc)
            else:
                acc = sc if acc is None else acc + sc
            del diff, buf
    n = len(dataset)
    total = torch.cat(parts) if per_ex else acc / n
    scores = total * torch.as_tensor(comp.allowed, device=total.device)
    cv = torch.cat(clean_vals)
    bv = torch.cat(base_vals_all) if base_vals_all else None
    return EAPResult(scores.cpu(), float(cv.sum()) / n, float(bv.sum()) / n if bv is not None else None, n,
                     cv if per_ex else None, bv if per_ex else None)


_SCORE_PATTERNS = {  # (per_example, per_position) -> which of batch / position the contraction keeps
    (False, True): "t b p d, s b p d -> p t s",
    (True, False): "t b p d, s b p d -> b t s",
    (True, True): "t b p d, s b p d -> b p t s",
}


def score_layer(
    out: Float[Tensor, "*lead t n_src"], grads: Float[Tensor, "t b p d"], diff: Float[Tensor, "n_src b p d"], S: int,
    mode: "bool | tuple[bool, bool]",
) -> None:
    """``out[..., :S] = Σ grads · diff[:S]`` over the batch and positions, except the axes ``mode = (per_example,
    per_position)`` keeps (a bare bool is ``per_position``): one ``[t, b·p·d] @ [b·p·d, S]`` matmul (or a batched
    einsum) in the activations' dtype on the receiver-/source-major tensors, stored as float64. ``S``: the
    receivers' upstream sources, always a prefix of the sources."""
    g, x = grads, diff[:S]
    mode = (False, mode) if isinstance(mode, bool) else tuple(mode)
    if any(mode):
        out[..., :S] = einsum(g, x, _SCORE_PATTERNS[mode]).double()
    else:
        out[..., :S] = torch.mm(g.reshape(g.shape[0], -1), x.reshape(S, -1).T).double()


def scores_to_edges(comp: ComponentGraph, scores: Tensor) -> Float[Tensor, "*pos n_edges"]:
    """Dense ``[..., n_rcv, n_src]`` scores → per-edge vector(s) in the component graph's edge order."""
    return scores[..., torch.as_tensor(comp.edge_rcv), torch.as_tensor(comp.edge_src)]

