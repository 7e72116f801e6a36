"""The one table of dtype names: ``float32``, ``float64``, ``float16``, ``bfloat16`` (or a ``torch.dtype``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from circuitdb.errors import ConfigError, one_of

if TYPE_CHECKING:  # pragma: no cover
    import torch

DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16")


def torch_dtype(dtype: Any, allowed: Iterable[str] = DTYPE_NAMES) -> "torch.dtype | None":
    """``None`` → None (the caller's default, usually the model's dtype); a name in ``allowed`` or a
    ``torch.dtype`` of that name → the ``torch.dtype``; anything else → ConfigError listing ``allowed``."""
    if dtype is None:
        return None
    import torch

    allowed = tuple(allowed)
    name = str(dtype).replace("torch.", "") if isinstance(dtype, torch.dtype) else dtype
    if not isinstance(name, str) or name not in allowed:
        raise ConfigError(one_of(dtype, allowed, "dtype"))
    return getattr(torch, name)
