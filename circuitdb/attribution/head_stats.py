"""Per-head statistics on graph nodes: attention-pattern scores (:mod:`circuitdb.models.attention_scores`) and
direct logit attribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.models.attention_scores import (  # noqa: F401 - re-exported
    duplicate_token_scores, induction_scores, prev_token_scores, repeated_random_tokens,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs


@dataclass(frozen=True)
class DirectLogitAttribution:
    """Direct effect of each component on the metric direction, mean over a dataset.

    ``heads[l, h]``, ``mlps[l]``, ``embed`` (token + positional embedding) and ``bias`` (attention output biases,
    final LayerNorm bias, unembedding bias) are computed separately; they sum to ``total``, the mean
    answer-minus-wrong logit difference of the clean prompts (exactly, since the final LN scale is frozen).
    """

    heads: Float[Tensor, "layer head"]
    mlps: Float[Tensor, " layer"] | None
    embed: float
    bias: float
    total: float


@torch.no_grad()
def direct_logit_attribution(model: "HookedTransformer", dataset: "PromptPairs") -> DirectLogitAttribution:
    """Per head / MLP direct effect on the ``W_U[:, answer] - W_U[:, wrong]`` direction at ``answer_pos``.

    Each component's output (a head's ``z @ W_O``, an MLP's ``hook_mlp_out``) at the answer position is passed through
    the final LayerNorm *with its scale frozen at the clean value* (centering included) and dotted with the direction.
    Without ``wrong`` the direction is the answer's unembedding minus the mean unembedding. Mean over the dataset.
    """
    heads, mlps, embed, bias, total = _dla_terms(model, dataset)
    return DirectLogitAttribution(heads.mean(0).float().cpu(), None if mlps is None else mlps.mean(0).float().cpu(),
                                  float(embed.mean()), float(bias.mean()), float(total.mean()))


@torch.no_grad()
def direct_logit_attribution_per_example(model: "HookedTransformer", dataset: "PromptPairs"
                                         ) -> list[DirectLogitAttribution]:
    """:func:`direct_logit_attribution` of each example on its own, from one batched forward pass."""
    heads, mlps, embed, bias, total = (t if t is None else t.cpu() for t in _dla_terms(model, dataset))
    return [DirectLogitAttribution(heads[i].float(), None if mlps is None else mlps[i].float(), float(embed[i]),
                                   float(bias[i]), float(total[i])) for i in range(len(dataset))]


def _dla_terms(model: "HookedTransformer", dataset: "PromptPairs") -> tuple:
    """Per-example terms of :func:`direct_logit_attribution`: heads ``[b, layer, head]``, mlps ``[b, layer]`` or
    None, embed, bias and total ``[b]``."""
    cfg = model.cfg
    dataset.check_fits(model)
    tokens = dataset.clean.to(cfg.device)
    rows = torch.arange(len(dataset), device=cfg.device)
    pos = dataset.answer_pos.to(cfg.device)
    W_U = model.W_U
    ans = dataset.answers("answer").to(cfg.device)  # batch k (several answers: their mean direction)
    wrong = dataset.answers("wrong").to(cfg.device) if dataset.wrong is not None else None
    direction = W_U[:, ans].mean(-1).T  # batch d_model
    if wrong is not None:
        direction = direction - W_U[:, wrong].mean(-1).T
    else:
        direction = direction - W_U.mean(dim=1)[None]
    cache: dict[str, Tensor] = {}

    def grab(act: Tensor, hook) -> None:  # noqa: ANN001
        cache[hook.name] = act.detach()[rows, pos]

    names = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale"}
    for layer in range(cfg.n_layers):
        names.add(f"blocks.{layer}.attn.hook_z")
        if not cfg.attn_only:
            names.add(f"blocks.{layer}.hook_mlp_out")
    hooks = [(nm, grab) for nm in names if nm in model.hook_dict]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens)[rows, pos]
    norm = cfg.normalization_type

    def project(x: Tensor) -> Tensor:  # [batch, ..., d_model] -> [batch, ...] mean later
        if norm in ("LN", "LNPre"):
            x = x - x.mean(dim=-1, keepdim=True)
        if "ln_final.hook_scale" in cache:
            scale = cache["ln_final.hook_scale"]
            x = x / scale.view(scale.shape[0], *([1] * (x.ndim - 1)))
        if norm in ("LN", "RMS") and hasattr(model, "ln_final") and hasattr(model.ln_final, "w"):
            x = x * model.ln_final.w
        return torch.einsum("b...d,bd->b...", x, direction)

    heads = []
    for layer in range(cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]  # batch head d_head
        out = torch.einsum("bhe,hed->bhd", z, model.blocks[layer].attn.W_O)
        heads.append(project(out))
    mlps = None
    if not cfg.attn_only:
        mlps = torch.stack([project(cache[f"blocks.{layer}.hook_mlp_out"]) for layer in range(cfg.n_layers)], 1)
    embed = sum((project(cache[nm]) for nm in ("hook_embed", "hook_pos_embed") if nm in cache),
                torch.zeros(len(dataset), dtype=logits.dtype, device=logits.device))
    a = logits.gather(1, ans).mean(1)
    if wrong is not None:
        total = a - logits.gather(1, wrong).mean(1)
    else:
        total = a - logits.mean(dim=1)
    b = len(dataset)
    bias = sum(project(model.blocks[layer].attn.b_O[None].expand(b, -1)) for layer in range(cfg.n_layers))
    if norm == "LN" and hasattr(model.ln_final, "b"):
        bias = bias + direction @ model.ln_final.b
    b_U = model.b_U
    ub = b_U[ans].mean(-1)
    ub = ub - (b_U[wrong].mean(-1) if wrong is not None else b_U.mean())
    bias = bias + ub
    return torch.stack(heads, 1), mlps, embed, bias, total
