"""Tiny seeded models and dictionaries for the feature-attribution tests (float64 unless asked)."""

from __future__ import annotations

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
