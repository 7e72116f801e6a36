"""Attention-pattern scores of a model's heads: previous-token, induction and duplicate-token scores.

These measure the model alone (one forward pass, no attribution), so they live with the models and training
scripts can use them; :mod:`circuitdb.attribution.head_stats` puts them on graph nodes.

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

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer


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
    keys = _last_occurrence(tokens)
    return _score(_patterns(model, tokens), keys >= 0, keys)


def _last_occurrence(tokens: Tensor) -> Int[Tensor, "batch seq"]:
    """For each position, the most recent earlier position holding the same token id (-1 where none)."""
    b, s = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # batch query key
    earlier = torch.tril(torch.ones(s, s, dtype=torch.bool), diagonal=-1)[None]
    pos = torch.arange(s)[None, None, :].expand(b, s, s)
    return torch.where(same & earlier, pos, torch.full_like(pos, -1)).max(dim=-1).values


def text_pattern_scores(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"]) -> dict[str, tuple]:
    """Previous-token, duplicate-token and induction scores on arbitrary prompts, from one forward pass.

    Induction here is the general form: the query at ``q`` whose token last occurred at ``j`` (with ``j + 1 < q``)
    is expected to attend to ``j + 1``; on repeated sequences this is :func:`induction_scores`. Returns
    ``{name: (scores [layer, head] or None when no query position qualifies, number of (example, query) pairs)}``.
    """
    tokens = _check_tokens(tokens, min_len=1)
    return _case_scores(_patterns(model, tokens), _text_cases(tokens))


def text_pattern_scores_per_example(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"]) -> list[dict]:
    """:func:`text_pattern_scores` of each prompt on its own (entry ``i`` equals ``text_pattern_scores(model,
    tokens[i:i+1])``), from one batched forward pass."""
    tokens = _check_tokens(tokens, min_len=1)
    pats, cases = _patterns(model, tokens), _text_cases(tokens)
    return [_case_scores(pats[:, i:i + 1], {k: (m[i:i + 1], q[i:i + 1]) for k, (m, q) in cases.items()})
            for i in range(tokens.shape[0])]


def _text_cases(tokens: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """``{score name: (mask [batch, seq] of query positions that have an expected key, expected keys)}``."""
    b, s = tokens.shape
    q = torch.arange(s)[None, :].expand(b, s)
    last = _last_occurrence(tokens)
    return {"prev_token_score": (q >= 2, q - 1), "duplicate_token_score": (last >= 0, last),
            "induction_score": ((last >= 0) & (last + 1 < q), last + 1)}


def _case_scores(pats: Tensor, cases: dict[str, tuple[Tensor, Tensor]]) -> dict[str, tuple]:
    out = {}
    for name, (mask, keys) in cases.items():
        n = int(mask.sum())
        out[name] = (_score(pats, mask, keys) if n else None, n)
    return out


def _check_tokens(tokens: Tensor, min_len: int) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < min_len:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ConfigError(f"expected token ids [batch, seq] with seq >= {min_len}; got {shape}")
    return tokens.long().cpu()


def ioi_attention(model: "HookedTransformer", ds) -> dict[str, Float[Tensor, "layer head"]]:  # noqa: ANN001
    """Mean attention per head on the clean prompts of an IOI dataset ``ds`` (:func:`circuitdb.tasks.ioi.ioi_task`):
    ``s2_s1`` (duplicate-token heads), ``end_s2`` (S-inhibition), ``end_io`` (name movers) and ``end_s1``. S1 / S2
    are S's first and last mention, IO the answer's one mention, END the answer position."""
    from circuitdb.models.train_ioi import role_positions

    c = ds.clean
    pos = role_positions(c, ds.answer.view(-1).to(c.device), ds.wrong.view(-1).to(c.device))
    end, r = ds.answer_pos.view(-1).cpu(), torch.arange(len(c))
    p = _patterns(model, c).permute(1, 3, 4, 0, 2)  # batch, query, key, layer, head
    at = lambda q, k: p[r, q.cpu(), k.cpu()].mean(0)  # noqa: E731
    return {"s2_s1": at(pos["s2"], pos["s1"]), "end_io": at(end, pos["io"]), "end_s1": at(end, pos["s1"]),
            "end_s2": at(end, pos["s2"])}
