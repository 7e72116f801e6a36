"""Loading a model from a local folder: a TransformerLens config, weights, and an optional tokenizer.

A folder holds
- ``config.json``: ``HookedTransformerConfig`` fields, as written by ``json.dumps(cfg.to_dict(), default=str)`` under
  TransformerLens 2.x or 3.x (dtype/device written as ``"torch.float32"`` / ``"cpu"`` or as objects, derived fields
  such as ``n_params`` included) or by hand (just the architecture fields);
- weights: ``model.safetensors`` (or one ``*.safetensors``), else ``model.pt`` / ``pytorch_model.bin`` / one ``*.pt``
  / ``*.pth`` holding a state dict (read with ``torch.load(weights_only=True)``);
- optionally a tokenizer: a Hugging Face tokenizer (``tokenizer.json`` or ``tokenizer_config.json``, in the folder or
  in ``tokenizer/``), or circuitdb's word list (``vocab.json`` as ``{"words": [...]}``). Without one the model takes
  token ids only.

Hook flags that only slow a forward pass down (:data:`circuitdb.models.build.SLOW_HOOK_FLAGS`) are switched off after loading unless
``keep_hook_flags=True``; the attribution engine turns on what it needs inside its own scope.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)

# Keys of a saved ``cfg.to_dict()`` that are derived, runtime or version-specific: never passed to the constructor.
_RUNTIME_KEYS = {"dtype", "device", "seed", "n_devices", "n_params"}
_WEIGHT_NAMES = ("model.safetensors", "model.pt", "pytorch_model.bin", "model.pth", "state_dict.pt")


def config_fields(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` constructor arguments in a saved config (TransformerLens 2.x or 3.x).

    Runtime keys (dtype, device, seed, n_params, ...) are dropped; keys this TransformerLens does not know are dropped
    with one warning naming them (configs written by another version carry a few); a config without the
    architecture fields raises ConfigError naming the missing ones."""
    import dataclasses

    from transformer_lens import HookedTransformerConfig

    if not isinstance(raw, dict):
        raise ConfigError(f"model {name!r}: config.json must hold a JSON object, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(HookedTransformerConfig)}
    required = sorted(n for n, f in fields.items() if f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING)  # type: ignore[misc]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"model {name!r}: config.json lacks the HookedTransformerConfig field(s) {missing}")
    unknown = sorted(k for k in raw if k not in fields and k not in _RUNTIME_KEYS)
    if unknown:
        log.warning("model %r: ignoring config field(s) this TransformerLens does not know: %s", name,
                    ", ".join(unknown))
    return {k: v for k, v in raw.items() if k in fields and k not in _RUNTIME_KEYS}


def _weights_file(path: Path) -> Path:
    for nm in _WEIGHT_NAMES:
        if (path / nm).is_file():
            return path / nm
    for pattern in ("*.safetensors", "*.pt", "*.pth", "*.bin"):
        found = sorted(path.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigError(f"model folder {str(path)!r} has several weight files {[f.name for f in found]}; "
                              f"name the one to load {_WEIGHT_NAMES[0]!r}")
    raise ConfigError(f"model folder {str(path)!r} has no weights: expected one of {', '.join(_WEIGHT_NAMES)} "
                      "(or a single *.safetensors / *.pt file)")


def _state_dict(file: Path, name: str) -> dict:
    import torch

    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated / foreign files: one clear error
        raise ConfigError(f"model {name!r}: cannot read weights {str(file)!r}: {type(e).__name__}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"model {name!r}: {file.name} does not hold a state dict of tensors")
    return state


def folder_tokenizer(path: Path, d_vocab: int, name: str) -> Any:
    """The folder's tokenizer (Hugging Face folder, circuitdb word list) or None; raises if it cannot fit."""
    for cand in (path, path / "tokenizer"):
        if (cand / "tokenizer.json").is_file() or (cand / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(str(cand), local_files_only=True)
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"model {name!r}: cannot load the tokenizer in {str(cand)!r}: {e}") from e
            if len(tok) > d_vocab:
                raise ConfigError(f"model {name!r}: its tokenizer has {len(tok)} tokens but d_vocab is {d_vocab}")
            return tok
    vocab = path / "vocab.json"
    if vocab.is_file():
        from circuitdb.models.vocab import build_tokenizer, load_vocab

        words = load_vocab(vocab)
        if len(words) != d_vocab:
            raise ConfigError(f"model {name!r}: vocab.json has {len(words)} words but d_vocab is {d_vocab}")
        return build_tokenizer(words, name)
    return None


def load_dir(path: str | Path, *, device: str = "cpu", dtype: "torch.dtype | str" = "float32",
             name: str | None = None, keep_hook_flags: bool = False) -> "HookedTransformer":
    """The model in folder ``path`` (module docstring), in ``dtype`` on ``device``."""
    from circuitdb.models.build import build_model, torch_dtype_or_float32

    path = Path(path)
    name = name or path.name
    if not (path / "config.json").is_file():
        raise ConfigError(f"model folder {str(path)!r} lacks config.json (HookedTransformerConfig fields)")
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"model folder {str(path)!r}: config.json is not valid JSON: {e}") from e
    cfg = config_fields(raw, name)
    weights = _weights_file(path)
    tokenizer = folder_tokenizer(path, int(cfg["d_vocab"]), name)
    dt = torch_dtype_or_float32(dtype)
    model = build_model(cfg, name, device, dt, tokenizer=tokenizer, keep_hook_flags=keep_hook_flags)
    state = _state_dict(weights, name)
    try:
        model.load_state_dict({k: (v.to(dt) if v.is_floating_point() else v) for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"model {name!r}: weights do not match config.json: {e}") from e
    return model
