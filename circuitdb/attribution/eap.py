"""Edge attribution patching (EAP) and EAP-IG (inputs) for every edge of a component graph.

Conventions: node order, sources, receivers and ``scores[t, s]`` (row = receiver/target, column = source) are those of
:mod:`circuitdb.attribution.components`. Scores are means over the dataset's examples, in float64.

- **EAP** (Syed et al. 2023): ``score(u → v) = (z_u(base) − z_u(clean)) · ∂M/∂in_v |clean``, summed over positions
  (per-position mode keeps them apart). One baseline forward (no grad), one clean forward + backward per batch: the
  clean forward records every source output; one ``autograd.grad`` gives the metric's gradient at all receivers
  (see :func:`grad_pass`); a single einsum scores all edges.
- **EAP-IG, inputs** (Hanna et al. 2024): the gradient is averaged over ``m`` points on the line between the baseline
  and the clean input embedding (``blocks.0.hook_resid_pre``): ``e_k = e_base + (k/m)(e_clean − e_base)``,
  ``k = 1..m`` (the right Riemann sum of the EAP-IG library, so ``m = 1`` is EAP and the ``k = m`` pass doubles as the
  clean pass). Cost: one baseline forward + ``m`` forward/backward passes per batch.
- **Ablation baselines** ``z_u(base)``: ``"patch"`` — the source's output on the corrupted prompt (and the corrupted
  embedding as the IG start); ``"zero"`` — 0 (IG starts from a zero embedding); ``"mean"`` — the source's output
  averaged over the dataset's *clean* prompts, per position (one extra no-grad pass over the dataset first).
- The metric is ``metric(logits, batch) -> [batch]`` (see :mod:`circuitdb.tasks.base`); metrics with
  ``needs_clean`` (KL) get ``prepare(clean_logits, batch)`` per batch from one extra no-grad clean forward.
- Memory per batch is O(batch · pos · (n_src + n_rcv) · d_model); only the ``[n_rcv, n_src]`` (``[pos, …]``) score
  accumulator outlives a batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from circuitdb.attribution.components import (
    EMBED_HOOK, ComponentGraph, engine_mode, source_hooks, source_slots, split_qkv,
)
from circuitdb.errors import AttributionError, ConfigError, one_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

METHODS = ("eap", "eap-ig")
ABLATIONS = ("patch", "zero", "mean")


@dataclass(frozen=True)
class EAPConfig:
    """Parameters of one EAP / EAP-IG run (validated on construction, no I/O)."""

    method: str = "eap-ig"
    ig_steps: int = 5
    ablation: str = "patch"
    batch_size: int = 32
    per_position: bool = False
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
    """Dense edge scores (0 where no edge exists) and the dataset's mean metric on clean / baseline inputs."""

    scores: Float[Tensor, "*pos n_rcv n_src"]
    clean_metric: float
    baseline_metric: float | None  # metric of the corrupted run ("patch" only)
    n: int


def check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise ConfigError(one_of(ablation, ABLATIONS, "ablation"))


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def check_dataset(model: "HookedTransformer", dataset: "PromptPairs") -> None:
    """ConfigError if ``dataset`` does not fit the model (vocabulary, context, answer positions)."""
    dataset.check_model(model.cfg.d_vocab, model.cfg.n_ctx)
    pos = dataset.answer_pos
    if int(pos.min()) < 0 or int(pos.max()) >= dataset.seq_len:
        raise ConfigError(f"dataset {dataset.name!r}: answer_pos {int(pos.max())} outside the prompt length "
                          f"{dataset.seq_len}")


def batches(dataset: "PromptPairs", batch_size: int, progress: bool, desc: str):  # noqa: ANN201
    """Yield sub-datasets of ``batch_size`` examples, with a tqdm progress bar unless ``progress`` is False."""
    n = len(dataset)
    starts = range(0, n, batch_size)
    for s in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2, leave=False):
        yield dataset.batch(slice(s, min(n, s + batch_size)))


def metric_values(metric: Callable, logits: Tensor, batch: "PromptPairs") -> Float[Tensor, " batch"]:
    """Call the metric and check it returned one value per example (ConfigError naming the shape otherwise)."""
    out = metric(logits, batch)
    if not isinstance(out, Tensor) or tuple(out.shape) != (len(batch),):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(f"metric {getattr(metric, '__name__', metric)!r} returned {shape}; expected one value per "
                          f"example, shape ({len(batch)},)")
    return out


def prepared(metric: Callable, model: "HookedTransformer", batch: "PromptPairs") -> Callable:
    """The metric ready for this batch: metrics with ``needs_clean`` are prepared on a clean no-grad forward."""
    if not getattr(metric, "needs_clean", False):
        return metric
    with torch.no_grad():
        logits = model(batch.clean.to(model.cfg.device))
    return metric.prepare(logits, batch)


# ------------------------------------------------------------------------------------------------ forward passes
def run_sources(
    model: "HookedTransformer", comp: ComponentGraph, tokens: Tensor, metric: Callable | None = None,
    batch: "PromptPairs | None" = None,
) -> tuple[Float[Tensor, "batch pos n_src d_model"], Tensor | None]:
    """No-grad forward on ``tokens`` (inside :func:`engine_mode`): every source output, and the metric if given."""
    outs: dict[int, Tensor] = {}

    def grab(start: int, layer: int):
        def hook(act: Tensor, hook) -> None:  # noqa: ANN001
            outs[start] = source_slots(model, act, layer)
        return hook

    hooks = [(name, grab(start, layer)) for name, start, layer in source_hooks(comp)]
    with torch.no_grad(), split_qkv(model, False), model.hooks(fwd_hooks=hooks):
        logits = model(tokens.to(model.cfg.device), return_type="logits" if metric is not None else None)
    srcs = torch.cat([outs[k] for k in sorted(outs)], dim=2)
    values = metric_values(metric, logits, batch) if metric is not None else None
    return srcs, values


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
    mean: Tensor | None, metric: Callable | None = None,
) -> tuple[Float[Tensor, "batch pos n_src d_model"], Tensor | None]:
    """``z_u(base)`` for every source: corrupted run ("patch", with its metric), zeros, or the dataset mean."""
    if ablation == "patch":
        return run_sources(model, comp, batch.corrupted, metric, batch)
    shape = (len(batch), batch.seq_len, comp.n_src, model.cfg.d_model)
    if ablation == "zero":
        return torch.zeros(shape, device=model.cfg.device, dtype=model.cfg.dtype), None
    if mean is None:
        raise AttributionError("mean ablation needs the dataset mean (dataset_mean) computed first")
    return mean[None].expand(shape), None


def grad_pass(
    model: "HookedTransformer", comp: ComponentGraph, batch: "PromptPairs", metric: Callable, embed: Tensor,
    keep_sources: bool,
) -> tuple[Float[Tensor, "batch pos n_rcv d_model"], Tensor | None, Tensor]:
    """Forward with ``embed`` as the input embedding, then the metric's gradient at every receiver input.

    The model runs unsplit (one residual copy per layer, not per head): one ``autograd.grad`` reaches ``hook_q/k/v``
    (``[batch, pos, head, d_head]``), every MLP input and the final residual. A head's q/k/v-input gradient is then
    ``J_ln1(resid_pre)ᵀ W_{Q/K/V}[h] ∂M/∂q_h``: the projection by einsum, the LayerNorm vector-Jacobian product by
    one autograd call of the model's own ``ln1`` on the per-head copies — the same numbers TransformerLens'
    ``use_split_qkv_input`` path gives, without running every head's attention on its own residual copy.
    Returns (gradients in receiver order, source outputs if ``keep_sources`` else None, metric values).
    """
    acts: dict[str, Tensor] = {}
    srcs: dict[int, Tensor] = {}
    leaf = embed.detach().clone().requires_grad_(True)
    L = comp.n_layers

    def set_embed(act: Tensor, hook) -> Tensor:  # noqa: ANN001
        return leaf

    def grab_src(start: int, layer: int):
        def hook(act: Tensor, hook) -> None:  # noqa: ANN001
            srcs[start] = source_slots(model, act.detach(), layer).detach()
        return hook

    def keep(act: Tensor, hook) -> None:  # noqa: ANN001
        acts[hook.name] = act

    wanted = [f"blocks.{layer}.attn.hook_{c}" for layer in range(L) for c in "qkv"]
    wanted += [] if comp.attn_only else [f"blocks.{layer}.hook_mlp_in" for layer in range(L)]
    wanted.append(f"blocks.{L - 1}.hook_resid_post")
    hooks = [(EMBED_HOOK, set_embed)]
    if keep_sources:
        hooks += [(name, grab_src(start, layer)) for name, start, layer in source_hooks(comp)]
    hooks += [(f"blocks.{layer}.hook_resid_pre", keep) for layer in range(L)] + [(nm, keep) for nm in wanted]
    with torch.enable_grad(), split_qkv(model, False), model.hooks(fwd_hooks=hooks):
        logits = model(batch.clean.to(model.cfg.device))
        values = metric_values(metric, logits, batch)
        grads = dict(zip(wanted, torch.autograd.grad(values.sum(), [acts[nm] for nm in wanted], allow_unused=True,
                                                     materialize_grads=True)))
    b, p, d = leaf.shape
    out = leaf.new_empty((b, p, comp.n_rcv, d), requires_grad=False)
    H = comp.n_heads
    with torch.no_grad():
        for layer in range(L):
            blk = model.blocks[layer]
            g = torch.cat([einsum(grads[f"blocks.{layer}.attn.hook_{c}"], w, "b p h e, h d e -> b p h d")
                           for c, w in zip("qkv", (blk.attn.W_Q, blk.attn.W_K, blk.attn.W_V))], dim=2)
            t0 = comp.rcv_index(layer, "q", 0)
            out[:, :, t0:t0 + 3 * H] = _ln_vjp(blk.ln1, acts[f"blocks.{layer}.hook_resid_pre"], g)
            if not comp.attn_only:
                out[:, :, comp.rcv_index(layer, "")] = grads[f"blocks.{layer}.hook_mlp_in"]
        out[:, :, -1] = grads[wanted[-1]]
    s = torch.cat([srcs[k] for k in sorted(srcs)], dim=2) if keep_sources else None
    return out, s, values.detach()


def _ln_vjp(ln: torch.nn.Module, x: Float[Tensor, "b p d"], g: Float[Tensor, "b p c d"]) -> Float[Tensor, "b p c d"]:
    """``J_ln(x)ᵀ g`` for each of the ``c`` cotangents (the normalisation acts on the last axis only).

    Closed form for TransformerLens' LayerNorm / LayerNormPre / RMSNorm / RMSNormPre (with ``x̂ = x_c / σ``,
    ``σ = sqrt(mean(x_c²) + eps)``, ``x_c`` centred for LayerNorm): ``(g' − mean(g') − x̂ · mean(g' ⊙ x̂)) / σ`` with
    ``g' = w ⊙ g`` (RMS: no ``mean(g')`` term); any other module goes through autograd.
    """
    name = type(ln).__name__
    if isinstance(ln, torch.nn.Identity):
        return g
    if name in ("LayerNorm", "LayerNormPre", "RMSNorm", "RMSNormPre") and x.dtype in (torch.float32, torch.float64):
        center = name.startswith("LayerNorm")
        x = x.detach()
        xc = x - x.mean(-1, keepdim=True) if center else x
        sigma = (xc.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()  # b p 1
        xh = xc / sigma
        if getattr(ln, "w", None) is not None:
            g = g * ln.w.detach()
        d = g.shape[-1]
        proj = torch.matmul(g, xh.unsqueeze(-1)) / d  # b p c 1: mean(g' ⊙ x̂) by one batched matmul
        gx = torch.addcmul(g - g.mean(-1, keepdim=True) if center else g, proj, xh.unsqueeze(2), value=-1.0)
        return gx / sigma.unsqueeze(2)
    xe = x.detach().unsqueeze(2).expand_as(g).clone().requires_grad_(True)
    with torch.enable_grad():
        (gx,) = torch.autograd.grad(ln(xe), xe, g)
    return gx


def clean_embedding(model: "HookedTransformer", tokens: Tensor) -> Float[Tensor, "batch pos d_model"]:
    """The input embedding ``blocks.0.hook_resid_pre`` of ``tokens`` (token + positional embedding)."""
    with torch.no_grad():
        return model(tokens.to(model.cfg.device), stop_at_layer=0)


# ------------------------------------------------------------------------------------------------ EAP / EAP-IG
def eap_scores(
    model: "HookedTransformer", dataset: "PromptPairs", metric: Callable, config: EAPConfig = EAPConfig(),
) -> EAPResult:
    """EAP or EAP-IG scores of every edge of ``model``'s component graph, mean over ``dataset`` (see module doc)."""
    check_dataset(model, dataset)
    with engine_mode(model) as comp:
        mean = None
        if config.ablation == "mean":
            mean = dataset_mean(model, comp, dataset, config.batch_size, config.progress)
        acc: Tensor | None = None
        clean_sum, base_sum = 0.0, 0.0
        desc = f"{config.method} ({config.steps} step{'s' if config.steps > 1 else ''})"
        for batch in batches(dataset, config.batch_size, config.progress, desc):
            m = prepared(metric, model, batch)
            base, base_vals = baseline_sources(model, comp, batch, config.ablation, mean, m)
            if base_vals is not None:
                base_sum += float(base_vals.sum())
            e_clean = clean_embedding(model, batch.clean)
            e_base = base[:, :, 0]
            g_sum, clean = None, None
            for k in range(1, config.steps + 1):
                alpha = k / config.steps
                last = k == config.steps
                embed = e_clean if last else e_base + alpha * (e_clean - e_base)
                g, s, vals = grad_pass(model, comp, batch, m, embed, keep_sources=last)
                g_sum = g if g_sum is None else g_sum + g
                if last:
                    clean, clean_sum = s, clean_sum + float(vals.sum())
            sc = score_block(comp, g_sum / config.steps, base - clean, config.per_position)
            if not torch.isfinite(sc).all():
                raise AttributionError(f"non-finite EAP scores in a batch of dataset {dataset.name!r} "
                                       "(NaN/inf activations or gradients)")
            acc = sc if acc is None else acc + sc
            del g_sum, clean, base
    allowed = torch.as_tensor(comp.allowed, device=acc.device)
    scores = (acc / len(dataset)) * allowed
    n = len(dataset)
    return EAPResult(scores.cpu(), clean_sum / n, base_sum / n if config.ablation == "patch" else None, n)


def score_block(
    comp: ComponentGraph, grads: Float[Tensor, "b p n_rcv d"], diff: Float[Tensor, "b p n_src d"], per_position: bool,
) -> Float[Tensor, "*pos n_rcv n_src"]:
    """Sum over the batch (and positions unless ``per_position``) of ``grads · diff`` for every allowed edge (float64;
    0 elsewhere). Contracted per receiver layer against its upstream sources only (a prefix of the sources)."""
    pattern = "b p t d, b p s d -> p t s" if per_position else "b p t d, b p s d -> t s"
    lead = (diff.shape[1],) if per_position else ()
    out = torch.zeros(lead + (comp.n_rcv, comp.n_src), dtype=torch.float64, device=diff.device)
    t0 = 0
    for layer in range(comp.n_layers + 1):
        t1 = comp.n_rcv if layer == comp.n_layers else t0 + comp.rcv_per_layer
        S = comp.rcv_n_upstream(t1 - 1)  # the layer's last receiver (its MLP, or LOGITS) sees the most sources
        out[..., t0:t1, :S] = einsum(grads[:, :, t0:t1], diff[:, :, :S], pattern).double()
        t0 = t1
    return out


def scores_to_edges(comp: ComponentGraph, scores: Tensor) -> Float[Tensor, "*pos n_edges"]:
    """Dense ``[..., n_rcv, n_src]`` scores → per-edge vector(s) in the component graph's edge order."""
    return scores[..., torch.as_tensor(comp.edge_rcv), torch.as_tensor(comp.edge_src)]

