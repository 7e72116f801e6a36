"""Per-head statistics read from attention patterns, and direct logit attribution.

Conventions (stated once):
- ``tokens`` is a batch ``[batch, seq]`` of token ids; attention patterns come from the model's own forward pass
  (``blocks.{l}.attn.hook_pattern``, shape ``[batch, head, query, key]``).
- Every attention score is "mean attention to the expected key position": for each (example, query position) that
  has an expected key ``k(q)``, read ``pattern[b, h, q, k(q)]``; the score is the mean over all such pairs. A score of
  1.0 means the head always puts all its attention on the expected key; a uniform causal head scores about
  ``mean(1 / (q + 1))``.
- Scores are returned as ``Float[Tensor, "layer head"]`` on the CPU (float32).

Scores:
- previous-token score: expected key ``q - 1`` for query positions ``q >= 2`` (``q = 1`` is skipped because its
  previous token is BOS, where many heads rest by default).
- induction score: on a repeated sequence ``[BOS?] r_1..r_L r_1..r_L``, the query at position ``i`` of the second
  copy attends to ``i - L + 1`` (the token after the previous occurrence of the current token).
- duplicate-token score: expected key = the most recent earlier position holding the same token id (queries whose
  token has not occurred before are skipped). On repeated random tokens this is ``i - L`` for the second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs


def repeated_random_tokens(
    d_vocab: int, n: int, half_len: int, seed: int = 0, bos: int | None = 0, low: int | None = None
) -> Int[Tensor, "n seq"]:
    """``n`` sequences ``[bos] r_1..r_L r_1..r_L`` with ``L = half_len`` random tokens from ``[low, d_vocab)``.

    ``low`` defaults to ``bos + 1`` when ``bos`` is 0, else 0. Each half is drawn *without replacement* when the
    range is large enough, so every token of the second copy has exactly one previous occurrence. Seeded: the same
    arguments give the same tokens. ``seq = 2 * half_len + (bos is not None)``.
    """
    if low is None:
        low = 1 if bos == 0 else 0
    if n <= 0 or half_len <= 0 or low >= d_vocab:
        raise ConfigError(f"repeated_random_tokens needs n > 0, half_len > 0 and low < d_vocab; got n={n}, "
                          f"half_len={half_len}, low={low}, d_vocab={d_vocab}")
    g = torch.Generator().manual_seed(seed)
    span = d_vocab - low
    if span >= half_len:
        half = torch.stack([torch.randperm(span, generator=g)[:half_len] for _ in range(n)]) + low
    else:
        half = torch.randint(low, d_vocab, (n, half_len), generator=g)
    seqs = torch.cat([half, half], dim=1)
    if bos is not None:
        seqs = torch.cat([torch.full((n, 1), bos, dtype=torch.long), seqs], dim=1)
    return seqs.long()


def _patterns(model: "HookedTransformer", tokens: Tensor) -> Float[Tensor, "layer batch head query key"]:
    """All attention patterns of one forward pass (hooks only inside ``model.hooks``)."""
    store: dict[int, Tensor] = {}

    def grab(pattern: Tensor, hook) -> None:  # noqa: ANN001
        store[hook.layer()] = pattern.detach().float().cpu()

    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad(), model.hooks(fwd_hooks=[(nm, grab) for nm in names]):
        model(tokens.to(model.cfg.device), return_type=None)
    return torch.stack([store[layer] for layer in range(model.cfg.n_layers)])


def _score(patterns: Tensor, mask: Tensor, keys: Tensor) -> Float[Tensor, "layer head"]:
    """Mean of ``patterns[l, b, h, q, keys[b, q]]`` over the (b, q) where ``mask`` is set."""
    if not bool(mask.any()):
        raise ConfigError("no query position has an expected key in these tokens (sequence too short?)")
    n_l, b, n_h, s, _ = patterns.shape
    idx = keys.clamp(min=0)[None, :, None, :, None].expand(n_l, b, n_h, s, 1)
    picked = patterns.gather(-1, idx).squeeze(-1)  # layer batch head query
    m = mask[None, :, None, :].to(picked.dtype)
    return (picked * m).sum(dim=(1, 3)) / m.sum(dim=(1, 3))


def prev_token_scores(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "layer head"]:
    """Mean attention from query ``q`` to key ``q - 1`` over all examples and query positions ``q >= 2``."""
    tokens = _check_tokens(tokens, min_len=3)
    b, s = tokens.shape
    q = torch.arange(s)
    mask = (q >= 2)[None, :].expand(b, s)
    return _score(_patterns(model, tokens), mask, (q - 1)[None, :].expand(b, s))


def induction_scores(
    model: "HookedTransformer", tokens: Int[Tensor, "batch seq"], half_len: int | None = None
) -> Float[Tensor, "layer head"]:
    """Mean attention from each position ``i`` of the second copy to ``i - L + 1`` on repeated sequences.

    ``tokens`` must be ``[BOS] r r`` or ``r r`` (e.g. from :func:`repeated_random_tokens`); ``half_len`` defaults to
    ``seq // 2`` and the prefix length to ``seq - 2 * half_len`` (0 or 1). Raises ConfigError if the two halves differ.
    """
    tokens = _check_tokens(tokens, min_len=2)
    b, s = tokens.shape
    L = s // 2 if half_len is None else half_len
    off = s - 2 * L
    if L < 1 or off < 0 or not torch.equal(tokens[:, off:off + L], tokens[:, off + L:]):
        raise ConfigError(f"induction_scores needs repeated sequences [BOS] r r of half length {L}; got shape "
                          f"{tuple(tokens.shape)} whose halves differ")
    q = torch.arange(s)
    mask = (q >= off + L)[None, :].expand(b, s)
    return _score(_patterns(model, tokens), mask, (q - L + 1)[None, :].expand(b, s))


def duplicate_token_scores(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "layer head"]:
    """Mean attention from each query to the most recent earlier position holding the same token id."""
    tokens = _check_tokens(tokens, min_len=2)
    b, s = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # batch query key
    earlier = torch.tril(torch.ones(s, s, dtype=torch.bool), diagonal=-1)[None]
    cand = same & earlier
    pos = torch.arange(s)[None, None, :].expand(b, s, s)
    keys = torch.where(cand, pos, torch.full_like(pos, -1)).max(dim=-1).values
    return _score(_patterns(model, tokens), keys >= 0, keys)


def _check_tokens(tokens: Tensor, min_len: int) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < min_len:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ConfigError(f"expected token ids [batch, seq] with seq >= {min_len}; got {shape}")
    return tokens.long().cpu()


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
    cfg = model.cfg
    dataset.check_model(cfg.d_vocab, cfg.n_ctx)
    tokens = dataset.clean.to(cfg.device)
    rows = torch.arange(len(dataset), device=cfg.device)
    pos = dataset.answer_pos.to(cfg.device)
    W_U = model.W_U
    direction = W_U[:, dataset.answer.to(cfg.device)].T  # batch d_model
    if dataset.wrong is not None:
        direction = direction - W_U[:, dataset.wrong.to(cfg.device)].T
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
        heads.append(project(out).mean(0))
    mlps = None
    if not cfg.attn_only:
        mlps = torch.stack([project(cache[f"blocks.{layer}.hook_mlp_out"]).mean(0) for layer in range(cfg.n_layers)])
    embed = sum(project(cache[nm]).mean(0) for nm in ("hook_embed", "hook_pos_embed") if nm in cache)
    a = logits.gather(1, dataset.answer.to(cfg.device)[:, None]).squeeze(1)
    if dataset.wrong is not None:
        total = a - logits.gather(1, dataset.wrong.to(cfg.device)[:, None]).squeeze(1)
    else:
        total = a - logits.mean(dim=1)
    b = len(dataset)
    bias = sum(project(model.blocks[layer].attn.b_O[None].expand(b, -1)).mean(0) for layer in range(cfg.n_layers))
    if norm == "LN" and hasattr(model.ln_final, "b"):
        bias = bias + (direction @ model.ln_final.b).mean()
    b_U = model.b_U
    ub = b_U[dataset.answer.to(cfg.device)]
    ub = ub - (b_U[dataset.wrong.to(cfg.device)] if dataset.wrong is not None else b_U.mean())
    bias = bias + ub.mean()
    return DirectLogitAttribution(torch.stack(heads).float().cpu(), None if mlps is None else mlps.float().cpu(),
                                  float(embed), float(bias), float(total.mean()))
