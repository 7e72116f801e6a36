"""Building a ``HookedTransformer`` from config fields: the one place that applies the dtype, the device, a seeded
init and the hook-flag policy (flags that only slow a forward pass are off unless asked for)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

# Fields left False in saved configs: the attribution engine switches on what it needs.
OFF_FLAGS = {"use_attn_result": False, "use_split_qkv_input": False, "use_hook_mlp_in": False}
# Flags that add hook points (and memory traffic) to every forward pass without changing its result.
SLOW_HOOK_FLAGS = ("use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "use_attn_in", "use_hook_tokens")


def torch_dtype_or_float32(dtype: "torch.dtype | str") -> "torch.dtype":
    from circuitdb.models.dtypes import torch_dtype

    return torch_dtype(dtype) or torch_dtype("float32")


def build_model(cfg_dict: dict, name: str, device: str, dtype: "torch.dtype", seed: int = 0, tokenizer=None,  # noqa: ANN001
           keep_hook_flags: bool = False):
    import dataclasses

    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    known = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    unknown = sorted(set(cfg_dict) - known)
    if unknown:
        raise ConfigError(f"model {name!r}: config.json has unknown HookedTransformerConfig fields {unknown}")
    cfg = {**OFF_FLAGS, **cfg_dict, "seed": None, "device": device, "dtype": dtype}
    on = [f for f in SLOW_HOOK_FLAGS if cfg.get(f) and f in known]
    if on and not keep_hook_flags:
        log.info("model %r: switching off hook flags %s (they only slow a forward pass; keep_hook_flags=True keeps "
                 "them)", name, ", ".join(on))
        cfg.update({f: False for f in on})
    cfg.setdefault("model_name", name)
    try:
        config = HookedTransformerConfig(**cfg)
    except (TypeError, ValueError, AssertionError) as e:
        raise ConfigError(f"model {name!r}: invalid config: {e}") from e
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HookedTransformer(config, tokenizer=tokenizer, move_to_device=False)
        if dtype != torch.float32:  # the same weights whatever the dtype: draw them in float32, then cast
            ref = HookedTransformer(dataclasses.replace(config, dtype=torch.float32), move_to_device=False)
            torch.manual_seed(seed)
            ref.init_weights()
            model.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    model.to(device, print_details=False)
    model.eval()
    return model
