"""Adapter from SAELens objects (``SAE``, ``Transcoder``, ``JumpReLU*``, ``TopK*``) to the :class:`Dictionary` protocol.

- :func:`from_saelens` converts a loaded SAELens object (its weights are copied, detached).
- :func:`load_saelens_dir` reads a local SAELens directory (``cfg.json`` + ``sae_weights.safetensors``) offline.
- :func:`from_pretrained` calls ``SAE.from_pretrained(release, sae_id)`` (needs the Hugging Face hub).
Architectures with a linear skip path (skip transcoders) or run-time input normalisation are refused: the frozen
replacement model would not be exact with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuitdb.dictionaries.base import Dictionary
from circuitdb.errors import ConfigError

SUPPORTED = ("standard", "jumprelu", "topk", "transcoder", "jumprelu_transcoder")


def is_saelens_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "cfg.json").is_file() and (p / "sae_weights.safetensors").is_file()


def _meta(sae: Any, key: str) -> Any:
    md = getattr(sae.cfg, "metadata", None)
    val = getattr(md, key, None) if md is not None else None
    return val if val is not None else getattr(sae.cfg, key, None)


def from_saelens(sae: Any, *, id: str | None = None) -> Dictionary:
    """A :class:`Dictionary` holding a copy of a SAELens SAE's / transcoder's weights."""
    arch = sae.cfg.architecture()
    if arch not in SUPPORTED:
        raise ConfigError(f"SAELens architecture {arch!r} is not supported; valid options: {', '.join(SUPPORTED)}")
    norm = getattr(sae.cfg, "normalize_activations", "none")
    if norm not in (None, "none"):
        raise ConfigError(f"SAELens SAE with normalize_activations={norm!r} is not supported; fold the scaling into the "
                          "weights first (valid: 'none')")
    hook_in = _meta(sae, "hook_name")
    if not hook_in:
        raise ConfigError(f"SAELens object of architecture {arch!r} has no cfg.metadata.hook_name")
    transcoder = "transcoder" in arch
    hook_out = _meta(sae, "hook_name_out") if transcoder else hook_in
    if transcoder and not hook_out:
        raise ConfigError(f"SAELens transcoder at {hook_in!r} has no hook_name_out in its config")
    activation = "jumprelu" if "jumprelu" in arch else "topk" if arch == "topk" else "relu"
    t = {n: getattr(sae, n).detach().clone() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    input_bias = t["b_dec"].clone() if (not transcoder and getattr(sae.cfg, "apply_b_dec_to_input", False)) else None
    name = id or _meta(sae, "sae_id") or f"{_meta(sae, 'model_name') or 'saelens'}/{hook_in}"
    return Dictionary(
        id=str(name), kind="transcoder" if transcoder else "sae", hook_in=str(hook_in), hook_out=str(hook_out),
        activation=activation, input_bias=input_bias,
        threshold=sae.threshold.detach().clone() if activation == "jumprelu" else None,
        k=int(sae.cfg.k) if activation == "topk" else None, **t,
    )


def load_saelens_dir(path: str | Path) -> Dictionary:
    """Load a local SAELens directory (written by ``SAE.save_model``) without the network."""
    from sae_lens import SAE

    p = Path(path)
    if not is_saelens_dir(p):
        raise ConfigError(f"{p} is not a SAELens directory (needs cfg.json and sae_weights.safetensors)")
    try:
        sae = SAE.load_from_disk(str(p))
    except Exception as e:  # SAELens raises many kinds
        raise ConfigError(f"SAELens could not load {p}: {e}") from e
    return from_saelens(sae, id=p.name)


def from_pretrained(release: str, sae_id: str) -> Dictionary:
    """``SAE.from_pretrained(release, sae_id)`` (downloads from the Hugging Face hub) as a :class:`Dictionary`."""
    from sae_lens import SAE

    try:
        sae = SAE.from_pretrained(release, sae_id, device="cpu")
    except Exception as e:
        raise ConfigError(f"SAELens could not load release {release!r} id {sae_id!r}: {e}") from e
    return from_saelens(sae, id=f"{release}/{sae_id}")
