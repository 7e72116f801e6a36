"""The dictionary protocol: one SAE or transcoder, as plain tensors.

Conventions (stated once):
- ``W_enc`` is ``[d_in, width]``, ``W_dec`` is ``[width, d_out]``, ``b_enc`` is ``[width]``, ``b_dec`` is ``[d_out]``
  (SAELens' layout). ``input_bias`` (``[d_in]`` or None) is subtracted from the input before encoding (SAELens'
  ``apply_b_dec_to_input``).
- ``pre_acts(x) = (x - input_bias) @ W_enc + b_enc``; ``encode`` applies the activation (``relu``, ``jumprelu`` with a
  per-feature ``threshold``, or ``topk`` with ``k``); ``decode(a) = a @ W_dec + b_dec``.
- ``kind`` is ``"transcoder"`` (reads ``hook_in``, writes ``hook_out``, e.g. ``blocks.1.ln2.hook_normalized`` →
  ``blocks.1.hook_mlp_out``) or ``"sae"`` (reads and reconstructs the same hook, ``hook_in == hook_out``).
- ``layer`` is the block index parsed from ``hook_in``.
- A cross-layer transcoder (CLT) is one transcoder per layer whose features also write the MLP outputs of the
  ``n_later`` following layers: ``W_dec_later [width, n_later, d_out]`` (``W_dec_later[:, j - 1]`` decodes into layer
  ``layer + j``; ``W_dec`` stays the decoder into its own layer). The replacement MLP output at layer ``l'`` is then
  the sum over the set's transcoders at ``l <= l'`` of their decoders into ``l'``, plus ``b_dec`` of the transcoder at
  ``l'`` (circuit-tracer's CrossLayerTranscoder keeps one output bias per target layer, the same thing).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.errors import ConfigError, one_of

KINDS = ("transcoder", "sae")
ACTIVATIONS = ("relu", "jumprelu", "topk")
# hooks the replacement model knows how to splice (suffix after ``blocks.{layer}.``)
TRANSCODER_IN_HOOKS = ("ln2.hook_normalized", "hook_mlp_in", "hook_resid_mid")
TRANSCODER_OUT_HOOKS = ("hook_mlp_out",)
SAE_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
# what ``ln2.hook_normalized`` meant when the dictionary was trained: "tl3" = the normalised residual without the
# LayerNorm weight and bias (TransformerLens 3.x, what this engine reads), "tl2" = with them (TransformerLens 2.x,
# circuit-tracer); None = unknown (refused where it matters, see load.fold_ln_convention)
LN_CONVENTIONS = ("tl3", "tl2", None)
_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def parse_hook(name: str) -> tuple[int, str]:
    """``blocks.3.ln2.hook_normalized`` → ``(3, "ln2.hook_normalized")``; anything else raises ConfigError."""
    m = _HOOK.match(name or "")
    if not m:
        raise ConfigError(f"hook name {name!r} is not of the form 'blocks.<layer>.<hook>'")
    return int(m.group(1)), m.group(2)


@dataclass(frozen=True, eq=False)
class Dictionary:
    """One SAE or transcoder (weights as tensors); see the module docstring for the layout."""

    id: str
    kind: str
    hook_in: str
    hook_out: str
    W_enc: Float[Tensor, "d_in width"]
    b_enc: Float[Tensor, " width"]
    W_dec: Float[Tensor, "width d_out"]
    b_dec: Float[Tensor, " d_out"]
    activation: str = "relu"
    threshold: Float[Tensor, " width"] | None = None
    k: int | None = None
    input_bias: Float[Tensor, " d_in"] | None = None
    W_skip: Float[Tensor, "d_in d_out"] | None = None
    ln_convention: str | None = None
    W_dec_later: Float[Tensor, "width n_later d_out"] | None = None

    def __post_init__(self) -> None:
        self._check_tensors()
        if self.kind not in KINDS:
            raise ConfigError(f"dictionary {self.id!r}: " + one_of(self.kind, KINDS, "dictionary kind"))
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"dictionary {self.id!r}: " + one_of(self.activation, ACTIVATIONS, "activation"))
        d_in, width = self.W_enc.shape
        if self.W_dec.shape[0] != width or self.b_enc.shape != (width,) or self.b_dec.shape != (self.W_dec.shape[1],):
            raise ConfigError(
                f"dictionary {self.id!r}: inconsistent shapes W_enc {tuple(self.W_enc.shape)}, b_enc "
                f"{tuple(self.b_enc.shape)}, W_dec {tuple(self.W_dec.shape)}, b_dec {tuple(self.b_dec.shape)}"
            )
        if self.activation == "jumprelu" and (self.threshold is None or self.threshold.shape != (width,)):
            raise ConfigError(f"dictionary {self.id!r}: a jumprelu dictionary needs a threshold of shape ({width},)")
        if self.activation == "topk" and not (isinstance(self.k, int) and not isinstance(self.k, bool)
                                              and 0 < self.k <= width):
            raise ConfigError(f"dictionary {self.id!r}: a topk dictionary needs 0 < k <= {width}; got k={self.k!r}")
        if self.kind == "sae" and self.W_skip is not None:
            raise ConfigError(f"dictionary {self.id!r}: an SAE has no skip path (W_skip is for transcoders)")
        if self.kind == "sae" and self.W_dec_later is not None:
            raise ConfigError(f"dictionary {self.id!r}: an SAE writes only its own hook (W_dec_later is for "
                              "cross-layer transcoders)")
        if self.kind == "sae" and self.hook_in != self.hook_out:
            raise ConfigError(f"dictionary {self.id!r}: an SAE reads and writes one hook; got {self.hook_in!r} → "
                              f"{self.hook_out!r} (use kind='transcoder')")
        for role, h in (("hook_in", self.hook_in), ("hook_out", self.hook_out)):
            try:
                parse_hook(h)
            except ConfigError as e:
                raise ConfigError(f"dictionary {self.id!r}: {role}: {e}") from None

    def _check_tensors(self) -> None:
        """Every weight a real floating-point tensor of the right rank, and finite (else ConfigError naming it)."""
        ranks = {"W_enc": 2, "b_enc": 1, "W_dec": 2, "b_dec": 1, "threshold": 1, "input_bias": 1, "W_skip": 2,
                 "W_dec_later": 3}
        for name, rank in ranks.items():
            v = getattr(self, name)
            if v is None and name in ("threshold", "input_bias", "W_skip", "W_dec_later"):
                continue
            if not isinstance(v, Tensor):
                raise ConfigError(f"dictionary {self.id!r}: {name} must be a torch.Tensor; got {type(v).__name__}")
            if not v.dtype.is_floating_point or v.dtype.is_complex:
                raise ConfigError(f"dictionary {self.id!r}: {name} has dtype {v.dtype}; weights must be real floating "
                                  "point (float16/bfloat16/float32/float64)")
            if v.dim() != rank:
                raise ConfigError(f"dictionary {self.id!r}: {name} must have {rank} dimension(s); got shape "
                                  f"{tuple(v.shape)}")
            if v.device.type != "meta":
                bad = ~torch.isfinite(v)
                if bool(bad.any()):
                    first = tuple(int(i) for i in bad.nonzero()[0].tolist())
                    raise ConfigError(f"dictionary {self.id!r}: {name} holds {int(bad.sum())} NaN/inf value(s) (first "
                                      f"at index {first}); the dictionary's weights are broken")
        if self.input_bias is not None and self.input_bias.shape != (self.W_enc.shape[0],):
            raise ConfigError(f"dictionary {self.id!r}: input_bias has shape {tuple(self.input_bias.shape)}; expected "
                              f"({self.W_enc.shape[0]},) = d_in")
        if self.W_skip is not None and self.W_skip.shape != (self.W_enc.shape[0], self.W_dec.shape[1]):
            raise ConfigError(f"dictionary {self.id!r}: W_skip has shape {tuple(self.W_skip.shape)}; expected "
                              f"(d_in, d_out) = ({self.W_enc.shape[0]}, {self.W_dec.shape[1]})")
        later = self.W_dec_later
        if later is not None and (later.shape[0] != self.W_dec.shape[0] or later.shape[2] != self.W_dec.shape[1]):
            raise ConfigError(f"dictionary {self.id!r}: W_dec_later has shape {tuple(later.shape)}; expected (width, "
                              f"n_later, d_out) = ({self.W_dec.shape[0]}, n_later, {self.W_dec.shape[1]})")
        if self.ln_convention not in LN_CONVENTIONS:
            raise ConfigError(f"dictionary {self.id!r}: " + one_of(self.ln_convention, [str(c) for c in LN_CONVENTIONS],
                                                                  "ln_convention"))

    # ------------------------------------------------------------------ shape
    @property
    def width(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_out(self) -> int:
        return int(self.W_dec.shape[1])

    @property
    def layer(self) -> int:
        return parse_hook(self.hook_in)[0]

    @property
    def n_later(self) -> int:
        """How many following layers' MLP outputs this (cross-layer) transcoder also writes."""
        return 0 if self.W_dec_later is None else int(self.W_dec_later.shape[1])

    def decoder(self, j: int = 0) -> Float[Tensor, "width d_out"]:
        """The decoder into layer ``layer + j`` (``j = 0``: ``W_dec``; ``j >= 1``: ``W_dec_later[:, j - 1]``)."""
        return self.W_dec if j == 0 else self.W_dec_later[:, j - 1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    # ------------------------------------------------------------------ maps
    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... width"]:
        if self.input_bias is not None:
            x = x - self.input_bias
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... width"]:
        pre = self.pre_acts(x)
        if self.activation == "relu":
            return torch.relu(pre)
        if self.activation == "jumprelu":
            return pre * (pre > self.threshold).to(pre.dtype)
        vals, idx = torch.relu(pre).topk(int(self.k), dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, vals)

    def decode(self, acts: Float[Tensor, "... width"]) -> Float[Tensor, "... d_out"]:
        return acts @ self.W_dec + self.b_dec

    def skip(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        """The linear skip path of a skip transcoder (zero without ``W_skip``)."""
        if self.W_skip is None:
            return torch.zeros(*x.shape[:-1], self.d_out, dtype=x.dtype, device=x.device)
        return x @ self.W_skip

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        out = self.decode(self.encode(x))
        return out if self.W_skip is None else out + x @ self.W_skip

    __call__ = forward

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "Dictionary":
        """A copy with every tensor moved / cast (``self`` when nothing changes)."""
        changes = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                moved = v.to(device=device, dtype=dtype)
                if moved is not v:
                    changes[f.name] = moved
        return dataclasses.replace(self, **changes) if changes else self

    def config(self) -> dict:
        """The JSON-serialisable part (everything but the tensors)."""
        return {"id": self.id, "kind": self.kind, "hook_in": self.hook_in, "hook_out": self.hook_out,
                "activation": self.activation, "k": self.k, "d_in": self.d_in, "d_out": self.d_out,
                "width": self.width, "ln_convention": self.ln_convention, "skip": self.W_skip is not None,
                "n_later": self.n_later}


def fraction_variance_explained(target: Float[Tensor, "n d"], recon: Float[Tensor, "n d"]) -> float:
    """FVE = 1 - sum |target - recon|^2 / sum |target - mean(target)|^2 (over rows and dimensions)."""
    resid = (target - recon).pow(2).sum()
    total = (target - target.mean(0, keepdim=True)).pow(2).sum()
    return float(1 - resid / total.clamp_min(1e-30))
