"""Deterministic identity: of a model, of a dictionary, and of a graph from what produced it.

- :func:`model_id` ``"<name>-<12 hex>"``: a hash of the TransformerLens config fields that change what the model
  computes (not device, dtype, hook switches or init settings), of a fingerprint of its weights (a fixed strided
  sample of every parameter, in float32: the same for a float64 copy and on any device), and of its checkpoint when
  the config names one. Two unrelated models both called ``custom`` get different ids; one model loaded twice, or
  in another dtype, gets the same id.
- :func:`dictionary_id` ``"<dictionary id>-<8 hex>"``: the dictionary's id plus a hash of its kind, hooks,
  activation and a fingerprint of its weights.
- :func:`graph_id_for` ``"<prefix>-<16 hex>"``: a hash of the provenance of a graph (job, model id, checkpoint,
  dictionary ids, every input token, method, metric and the parameters that change the result) — never of its edge
  weights, so whether a graph is already stored is known before computing it.
- :func:`stamp` is what the attribution functions call: it records ``model_id`` / ``checkpoint`` /
  ``dictionary_ids`` in the graph's metadata and makes the provenance id the default graph id.

This module imports neither torch nor numpy at import time (tensors are read through their own methods).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import weakref
from typing import Any, Iterable

#: HookedTransformerConfig fields that do not change what the model computes (or are covered elsewhere).
IGNORED_CONFIG_FIELDS = frozenset({
    "model_name", "device", "n_devices", "dtype", "seed", "init_weights", "init_mode", "initializer_range",
    "use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "use_attn_in", "use_hook_tokens",
    "ungroup_grouped_query_attention", "from_checkpoint", "checkpoint_index", "checkpoint_label_type",
    "checkpoint_value", "n_params", "default_prepend_bos", "tokenizer_prepends_bos", "load_in_4bit",
})
#: attribution parameters that change how fast a graph is computed, not what it holds
EXECUTION_PARAMS = frozenset({"batch_size", "progress", "device"})
FINGERPRINT_SAMPLES = 4096
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def _digest(payload: Any, n: int) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=32).hexdigest()[:n]


def slug(text: Any, default: str = "model") -> str:
    """A short id-safe rendering of a name (letters, digits, ``_.-``; no ``/``)."""
    s = _SLUG.sub("-", str(text or "")).strip("-.")[:48]
    return s or default


def tensor_fingerprint(t: Any, samples: int = FINGERPRINT_SAMPLES) -> str:
    """Hash of a tensor's shape and a fixed strided sample of its values (cast to float32, read on the CPU)."""
    import torch

    with torch.no_grad():
        flat = t.detach().reshape(-1)
        n = int(flat.numel())
        if n > samples:
            # float64: in float32 the last index of a tensor above 2^24 elements rounds past its end
            idx = torch.linspace(0, n - 1, samples, dtype=torch.float64).round().long().clamp(max=n - 1)
            flat = flat[idx.to(flat.device)]
        vals = flat.to(torch.float32).cpu().contiguous().numpy().tobytes() if flat.is_floating_point() \
            else flat.cpu().long().numpy().tobytes()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(tuple(t.shape)).encode())
    h.update(vals)
    return h.hexdigest()


def _config_fields(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg):
        items = {f.name: getattr(cfg, f.name, None) for f in dataclasses.fields(cfg)}
    else:
        items = dict(vars(cfg))
    return {k: v for k, v in items.items() if k not in IGNORED_CONFIG_FIELDS and not k.startswith("_")}


def checkpoint_of(model: Any) -> dict[str, Any] | None:
    """The checkpoint a model's config names (TransformerLens ``checkpoint_*`` fields), or None."""
    cfg = getattr(model, "cfg", None)
    value = getattr(cfg, "checkpoint_value", None)
    index = getattr(cfg, "checkpoint_index", None)
    if value is None and index is None:
        return None
    out: dict[str, Any] = {"label": str(getattr(cfg, "checkpoint_label_type", None) or "step")}
    if value is not None:
        out["value"] = int(value)
    if index is not None:
        out["index"] = int(index)
    return out


_MODEL_IDS: "weakref.WeakKeyDictionary[Any, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def model_id(model: Any) -> str:
    """``"<model name>-<12 hex>"`` from the config fields that matter, a weight fingerprint and the checkpoint.
    Memoised per model object until a parameter changes (its storage or its in-place version counter)."""
    try:
        stamp_ = tuple((p.data_ptr(), p._version) for p in model.parameters())
        stamp_ += (checkpoint_of(model) and tuple(sorted(checkpoint_of(model).items())),
                   getattr(model.cfg, "model_name", None))
        hit = _MODEL_IDS.get(model)
    except TypeError:  # not weak-referenceable
        stamp_, hit = None, None
    if hit is not None and hit[0] == stamp_:
        return hit[1]
    mid = _model_id(model)
    if stamp_ is not None:
        _MODEL_IDS[model] = (stamp_, mid)
    return mid


def _model_id(model: Any) -> str:
    cfg = model.cfg
    weights = {name: tensor_fingerprint(p) for name, p in sorted(model.named_parameters())}
    payload = {"config": _config_fields(cfg), "weights": weights, "checkpoint": checkpoint_of(model)}
    return f"{slug(getattr(cfg, 'model_name', None))}-{_digest(payload, 12)}"


def dictionary_id(d: Any) -> str:
    """``"<dictionary id>-<8 hex>"``: content hash of a :class:`~circuitdb.dictionaries.base.Dictionary`."""
    tensors = {}
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "input_bias"):
        t = getattr(d, name, None)
        if t is not None:
            tensors[name] = tensor_fingerprint(t)
    payload = {"kind": getattr(d, "kind", None), "hook_in": getattr(d, "hook_in", None),
               "hook_out": getattr(d, "hook_out", None), "activation": getattr(d, "activation", None),
               "k": getattr(d, "k", None), "tensors": tensors}
    return f"{slug(getattr(d, 'id', None), 'dict')}-{_digest(payload, 8)}"


def tokens_digest(*arrays: Any) -> str:
    """Hash of integer arrays (tensors, numpy arrays, nested lists; None allowed), in order."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        arr = np.asarray(a, dtype=np.int64)
        h.update(repr(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def result_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters that change a graph's content (drops :data:`EXECUTION_PARAMS`)."""
    return {k: v for k, v in (params or {}).items() if k not in EXECUTION_PARAMS}


def graph_id_for(*, model_id: str, tokens: str, method: str, params: dict[str, Any] | None = None,
                 metric: str | None = None, checkpoint: Any = None, dictionaries: Iterable[str] = (),
                 job: str | None = None, prefix: str | None = None) -> str:
    """``"<prefix>-<16 hex>"`` from a graph's provenance (see the module doc). ``tokens``: a :func:`tokens_digest`.
    ``prefix`` defaults to the job name, else the model id's name part."""
    payload = {"job": job, "model_id": model_id, "checkpoint": checkpoint, "dictionaries": list(dictionaries),
               "tokens": tokens, "method": method, "metric": metric, "params": result_params(params)}
    head = slug(prefix or job or model_id.rsplit("-", 1)[0], "g")
    return f"{head}-{_digest(payload, 16)}"


def stamp(meta: dict[str, Any], model: Any, graph_id: str | None = None, *, inputs: Iterable[Any] = (),
          dictionaries: Iterable[Any] = ()) -> dict[str, Any]:
    """Record ``model_id``, ``checkpoint`` and ``dictionary_ids`` in ``meta`` and set ``meta["id"]`` to
    ``graph_id`` or, when none is given, the provenance id of ``meta``'s method / metric / params and ``inputs``
    (the token arrays the graph was computed from). Returns ``meta`` (changed in place)."""
    mid = model_id(model)
    ck = checkpoint_of(model)
    meta["model_id"] = mid
    if ck is not None:
        meta["checkpoint"] = ck
    dict_ids = [dictionary_id(d) for d in dictionaries]
    if dict_ids:
        meta["dictionary_ids"] = dict_ids
    if not graph_id:
        graph_id = graph_id_for(model_id=mid, checkpoint=ck, dictionaries=dict_ids, tokens=tokens_digest(*inputs),
                                method=str(meta.get("method")), metric=meta.get("metric"), params=meta.get("params"))
    meta["id"] = graph_id
    return meta


_CACHE: dict[tuple, Any] = {}
_CACHE_MAX = 64


def cached_for_model(model: Any, name: str, compute: Any) -> Any:
    """``compute()`` memoised per (model identity, dtype, ``name``): model-level statistics (attention-pattern
    scores) computed once per model instead of once per graph. The key includes the weight fingerprint, so a model
    whose weights change (training) is recomputed."""
    key = (model_id(model), str(getattr(model.cfg, "dtype", "")), name)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compute()
    return _CACHE[key]
