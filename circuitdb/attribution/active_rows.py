"""What the feature engine gathers per prompt before any backward pass: the sources' columnar description, the active
rows of each dictionary (so a backward row costs the same at any dictionary width), and the checks and dtype/device
rules of its inputs. Used by :mod:`circuitdb.attribution.replacement`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.dictionaries.base import Dictionary
from circuitdb.errors import AttributionError, ConfigError


@dataclass(frozen=True)
class Sources:
    """Columnar description of the attribution sources (see the module docstring for the order)."""

    kind: np.ndarray  # "feature" | "error" | "mlp" | "embed"
    layer: np.ndarray  # dictionary / MLP layer; -1 for embeddings
    pos: np.ndarray
    feature: np.ndarray  # feature index; -1 otherwise
    dictionary: np.ndarray  # dictionary index; -1 for mlp / embed
    activation: np.ndarray  # feature activation, or the source vector's norm

    def __len__(self) -> int:
        return len(self.kind)


HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the linear backward runs in: the model's, or float32 for half-precision models (sums need it)."""
    return torch.float32 if dtype in HALF else dtype


def model_device(model) -> torch.device:  # noqa: ANN001
    """The device of a model's parameters (its config's device when it has none)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device(model.cfg.device)


@dataclass(frozen=True)
class ActiveRows:
    """The active features of one dictionary on one prompt, gathered once (the cost of a backward row is then
    independent of the dictionary's width).

    ``dec`` is ``[P, m, d_out]``: at each position the activation-scaled decoder rows of that position's active
    features (zero-padded to ``m`` = the most active at any position); feature ``j`` (in ``(pos, feature)`` order) is
    ``dec[pos[j], slot[j]]``. ``later`` (cross-layer transcoders) is ``[n_later, P, m, d_out]``, the same for the
    decoders into the following layers. ``enc`` holds the encoder columns of the distinct active features as rows.
    """

    pos: Tensor
    slot: Tensor
    dec: Float[Tensor, "P m d_out"]
    enc: Float[Tensor, "u d_in"]
    enc_row: dict[int, int]
    later: Float[Tensor, "n_later P m d_out"] | None = None

    @classmethod
    def gather(cls, d: Dictionary, pos: Tensor, feat: Tensor, acts: Tensor, P: int, dtype: torch.dtype
               ) -> "ActiveRows":
        counts = torch.bincount(pos, minlength=P)
        m = int(counts.max()) if len(pos) else 0
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(pos), device=pos.device) - start[pos]
        dec = torch.zeros(1 + d.n_later, P, m, d.d_out, dtype=dtype, device=d.W_dec.device)
        for j in range(1 + d.n_later):
            dec[j, pos, slot] = d.decoder(j)[feat].to(dtype) * acts.to(dtype)[:, None]
        uniq = torch.unique(feat)
        enc = d.W_enc[:, uniq].T.to(dtype).contiguous()
        return cls(pos, slot, dec[0], enc, {f: i for i, f in enumerate(uniq.tolist())},
                   dec[1:] if d.n_later else None)

    def vector(self, k: int, j: int = 0) -> Float[Tensor, " d_out"]:
        """Feature ``k``'s activation-scaled decoder row into its own layer (``j = 0``) or layer ``+j``."""
        dec = self.dec if j == 0 else self.later[j - 1]
        return dec[int(self.pos[k]), int(self.slot[k])]

    def project(self, Gs: list[Float[Tensor, "B P d"]]) -> Float[Tensor, "B n"]:
        """``Σ_j G_j[b, pos_k] · a_k W_dec_j[f_k]`` for every active feature ``k`` (``Gs[j]``: the gradient at the site
        the ``j``-th decoder writes); one batched matmul over positions per decoder."""
        if not len(self.pos):
            return Gs[0].new_zeros(Gs[0].shape[0], 0)
        proj = None
        for j, G in enumerate(Gs):
            dec = self.dec if j == 0 else self.later[j - 1]
            p = torch.bmm(G.transpose(0, 1), dec.transpose(1, 2))  # [P, B, m]
            proj = p if proj is None else proj + p
        return proj[self.pos, :, self.slot].T

    def encoder(self, feature: int) -> Float[Tensor, " d_in"]:
        row = self.enc_row.get(int(feature))
        if row is None:
            raise AttributionError(f"feature {feature} is not active on this prompt; only active features are targets")
        return self.enc[row]


def check_tokens(model, tokens) -> Tensor:  # noqa: ANN001
    """A 1-D LongTensor of valid ids, or ConfigError saying what is wrong."""
    if not isinstance(tokens, Tensor):
        tokens = torch.as_tensor(tokens)
    if tokens.dim() == 2 and tokens.shape[0] == 1:
        tokens = tokens[0]
    if tokens.dim() != 1:
        raise ConfigError(f"tokens must be a 1-D sequence of ids; got shape {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ConfigError("empty prompt: give at least one token")
    if tokens.dtype.is_floating_point:
        raise ConfigError(f"tokens must be integer ids; got dtype {tokens.dtype}")
    n_ctx, vocab = model.cfg.n_ctx, model.cfg.d_vocab
    if tokens.numel() > n_ctx:
        raise ConfigError(f"prompt has {tokens.numel()} tokens, more than the model's n_ctx {n_ctx}")
    bad = tokens[(tokens < 0) | (tokens >= vocab)]
    if bad.numel():
        raise ConfigError(f"token ids {bad[:5].tolist()} are outside the vocabulary [0, {vocab})")
    return tokens.long().cpu()

__all__ = ["Sources", "ActiveRows", "HALF", "compute_dtype", "model_device", "check_tokens"]
