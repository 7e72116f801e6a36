"""Tiny seeded models and dictionaries for the feature-attribution tests (float64 unless asked)."""

from __future__ import annotations

import copy

import numpy as np
import torch


def tiny_model(*, n_layers: int = 3, attn_only: bool = False, norm: str | None = "LN", dtype=torch.float64,  # noqa: ANN001
               seed: int = 0, n_ctx: int = 12):  # noqa: ANN201
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, n_heads=2, d_model=16, d_head=8, d_mlp=None if attn_only else 32, n_ctx=n_ctx, d_vocab=20,
        act_fn="gelu", normalization_type=norm, attn_only=attn_only, dtype=dtype, model_name="tiny", seed=seed,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HookedTransformer(cfg)
        for p in model.parameters():  # larger weights than the default init: non-trivial attention patterns
            p.data.mul_(4.0 if p.dim() > 1 else 1.0)
    model.eval()
    return model


def prompt(n: int = 9, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 20, (n,), generator=g)


def source_keys(rm) -> np.ndarray:  # noqa: ANN001
    """Node keys of the replacement model's source columns (same format as the graph's)."""
    S = rm.sources
    fmt = {"feature": "F{l}:{f}@{p}", "error": "ERR{l}@{p}", "mlp": "M{l}@{p}", "embed": "E@{p}"}
    return np.array([fmt[k].format(l=l, f=f, p=p) for k, l, f, p in zip(S.kind, S.layer, S.feature, S.pos)])


def targets_of(rm, n_feat: int, rng) -> list:  # noqa: ANN001
    S = rm.sources
    feats = np.flatnonzero((S.kind == "feature") & (S.layer > S.layer.min()))
    pick = rng.choice(feats, size=min(n_feat, len(feats)), replace=False)
    lg = rm.logits[-1].argsort(descending=True)[:2]
    return [("logit", rm.P - 1, int(t), -1) for t in lg] + [
        ("feature", int(S.pos[i]), int(S.feature[i]), int(S.dictionary[i])) for i in pick]


def check_interventions(rm, targets, n_sources: int, rng) -> tuple[float, int]:  # noqa: ANN001
    """Max relative error of predicted edges vs. ablating the source in the real (hooked) frozen model."""
    rows = rm.rows(targets)
    clean = rm.frozen_forward()
    base = np.array([rm.target_value(clean, t) for t in targets])
    worst, n = 0.0, 0
    live = np.flatnonzero((rows != 0).any(0).numpy())  # mostly sources with an edge, plus a few without
    dead = np.setdiff1d(np.arange(len(rm.sources)), live)
    pick = np.concatenate([rng.choice(live, size=min(n_sources, len(live)), replace=False), dead[:3]])
    for j in pick:
        rec = rm.frozen_forward(source=int(j), factor=0.0)
        measured = base - np.array([rm.target_value(rec, t) for t in targets])
        pred = rows[:, j].numpy()
        # relative to the edge, except for edges below the float64 resolution of the target's own value
        scale = np.maximum(np.abs(measured), 1e-8 * np.maximum(1.0, np.abs(base)))
        worst = max(worst, float((np.abs(pred - measured) / scale).max()))
        n += int((np.abs(measured) > 1e-8 * np.maximum(1.0, np.abs(base))).sum())
    return worst, n


def rows_before_and_after_poisoning(rm):  # noqa: ANN001, ANN201
    """Rows of a few targets, then the same rows after every full-width weight (W_enc, W_dec, W_dec_later) of the
    built replacement model's dictionaries is replaced by NaN: equal iff a backward row never reads the full
    dictionary (validation is bypassed on purpose: a real dictionary with NaN weights is refused)."""
    S = rm.sources
    feats = np.flatnonzero((S.kind == "feature") & (S.layer > 0))[:6]
    targets = [("logit", rm.P - 1, 3, -1)] + [("feature", int(S.pos[i]), int(S.feature[i]), int(S.dictionary[i]))
                                              for i in feats]
    before = rm.rows(targets)
    poisoned = []
    for d in rm.dicts:
        p = copy.copy(d)
        for name in ("W_enc", "W_dec", "W_dec_later"):
            if getattr(d, name) is not None:
                object.__setattr__(p, name, torch.full_like(getattr(d, name), float("nan")))
        poisoned.append(p)
    rm.dicts = poisoned
    return before, rm.rows(targets)
