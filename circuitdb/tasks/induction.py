"""Induction task: repeated random token sequences.

Clean prompt ``i``: ``[BOS] r_1 .. r_L r_1 .. r_{L-1}`` (length ``2L``); the answer is ``r_L`` (the next token of the
repeat) at the last position. Corrupted prompt: ``[BOS] c_1 .. c_L r_1 .. r_{L-1}``: the first occurrence is
replaced by other random tokens (disjoint from ``r`` when the token range allows, else ``c_j != r_j``), so the second
half cannot be predicted by copying. ``wrong = c_L``, the corrupted continuation token. Default metric: ``logprob``.

Token range: ids in ``[low, high)`` other than BOS; by default ``low = 1`` when BOS is 0 (toy models) and
``high = d_vocab``. Toy vocabularies also exclude their special words (``<unk>``, topic markers ``<t0>``...). For HF
tokenizers BOS is the tokenizer's ``bos_token_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from circuitdb.errors import ConfigError
from circuitdb.tasks.base import PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer


def induction_task(
    model: "HookedTransformer | None" = None, *, n: int = 64, seed: int = 0, half_len: int = 16,
    d_vocab: int | None = None, low: int | None = None, high: int | None = None, bos: int | None = None,
) -> PromptPairs:
    """``n`` induction prompt pairs of length ``2 * half_len`` (see module doc)."""
    tok = getattr(model, "tokenizer", None) if model is not None else None
    if d_vocab is None:
        if model is None:
            raise ConfigError("task 'induction' needs a model or d_vocab= to know the token range")
        d_vocab = int(model.cfg.d_vocab)
    if bos is None:
        bos = int(tok.bos_token_id) if tok is not None and tok.bos_token_id is not None else 0
    if low is None:
        low = 1 if bos == 0 else 0
    if high is None:
        high = d_vocab
    specials: set[int] = {bos}
    if getattr(tok, "circuitdb_toy_vocab", False):
        from circuitdb.models.vocab import special_ids

        vocab = tok.get_vocab()
        specials |= set(special_ids(sorted(vocab, key=vocab.get)))
    if n <= 0:
        raise ConfigError(f"task 'induction': n must be positive, got {n}")
    if half_len < 2:
        raise ConfigError(f"task 'induction': half_len must be >= 2, got {half_len}")
    pool = torch.tensor([t for t in range(low, high) if t not in specials], dtype=torch.long)
    span = len(pool)
    if span < half_len + 1:
        raise ConfigError(f"task 'induction': token range [{low}, {high}) has {span} ids, need more than "
                          f"half_len={half_len}")
    if model is not None and 2 * half_len > model.cfg.n_ctx:
        raise ConfigError(f"task 'induction': prompts of {2 * half_len} tokens exceed the model's n_ctx "
                          f"{model.cfg.n_ctx}; use half_len <= {model.cfg.n_ctx // 2}")
    g = torch.Generator().manual_seed(seed)
    L = half_len
    clean = torch.empty(n, 2 * L, dtype=torch.long)
    corrupted = torch.empty_like(clean)
    cand = pool
    for i in range(n):
        perm = cand[torch.randperm(len(cand), generator=g)]
        r = perm[:L]
        if len(cand) >= 2 * L:  # disjoint corruption
            c = perm[L:2 * L]
        else:
            c = cand[torch.randint(0, len(cand), (L,), generator=g)]
            clash = c == r
            while bool(clash.any()):
                c[clash] = cand[torch.randint(0, len(cand), (int(clash.sum()),), generator=g)]
                clash = c == r
        clean[i] = torch.cat([torch.tensor([bos]), r, r[:-1]])
        corrupted[i] = torch.cat([torch.tensor([bos]), c, r[:-1]])
    answer = clean[:, L]  # r_L
    wrong = corrupted[:, L]  # c_L
    meta = {"task": "induction", "n": n, "seed": seed, "half_len": L, "low": low, "high": high, "bos": bos,
            "excluded": sorted(specials),
            "metric": "logprob", "corruption": "first occurrence replaced by other random tokens"}
    ds = PromptPairs(clean, corrupted, answer, wrong, None, name="induction", meta=meta)
    if model is not None:
        ds.check_fits(model)
    return ds
