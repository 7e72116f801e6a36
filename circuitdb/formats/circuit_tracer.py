"""circuit-tracer's saved ``Graph`` (``graph.to_pt(path)``) read into an :class:`AttributionGraph`.

circuit-tracer orders its nodes ``[selected features, errors (layer-major: layer·n_pos + pos), tokens, logits]``;
``adjacency_matrix[target, source]`` holds the direct effects; ``active_features[i] = (layer, pos, index)`` with
``selected_features`` picking the graph's features and ``activation_values`` indexed by active feature. The file is a
pickle (it holds a ``HookedTransformerConfig``): it is loaded with ``weights_only=True`` and only that config class
allowed, so a file carrying anything else is refused rather than executed. Keys follow
:mod:`circuitdb.attribution.features` (``F{l}:{i}@{p}``, ``ERR{l}@{p}``, ``E@{p}``, ``L:{token}@{p}``);
``influence`` is circuit-tracer's node influence computed from the adjacency matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.formats._common import graph_influence
from circuitdb.graph import AttributionGraph

REQUIRED = ("input_string", "input_tokens", "logit_tokens", "active_features", "adjacency_matrix",
            "selected_features", "activation_values", "logit_probabilities", "cfg")


def load_pt(path: str | Path) -> dict[str, Any]:
    """The dict circuit-tracer's ``Graph.to_pt`` saved (tensors on the CPU), loaded without running foreign code."""
    import torch
    from transformer_lens import HookedTransformerConfig

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"circuit-tracer graph file {str(path)!r} does not exist")
    import numpy as _np

    scalar = getattr(getattr(_np, "_core", _np.core), "multiarray").scalar  # numpy scalars inside the config
    allowed = [HookedTransformerConfig, torch.dtype, torch.device, scalar, _np.dtype,
               *{type(_np.dtype(t)) for t in (_np.float64, _np.float32, _np.int64, _np.int32, _np.bool_)}]
    try:
        with torch.serialization.safe_globals(allowed):
            d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError / EOFError
        raise GraphValidationError(f"{path} is not a circuit-tracer graph file torch can load safely: {e}") from e
    if not isinstance(d, dict):
        raise GraphValidationError(f"{path} holds a {type(d).__name__}, not circuit-tracer's graph dict")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise GraphValidationError(f"{path} lacks circuit-tracer graph field(s) {missing}")
    return d


def read_circuit_tracer(path_or_dict: Any, *, token_labels: list[str] | None = None) -> AttributionGraph:
    """An AttributionGraph from a circuit-tracer ``.pt`` file (or its loaded dict). ``token_labels`` (optional)
    names the vocabulary ids for the embedding and logit labels."""
    d = path_or_dict if isinstance(path_or_dict, dict) else load_pt(path_or_dict)
    adj = _array(d, "adjacency_matrix", np.float64)
    tokens = _array(d, "input_tokens", np.int64).reshape(-1)
    logit_tokens = _array(d, "logit_tokens", np.int64).reshape(-1)
    probs = _array(d, "logit_probabilities", np.float64).reshape(-1)
    active = _array(d, "active_features", np.int64).reshape(-1, 3)
    selected = _array(d, "selected_features", np.int64).reshape(-1)
    acts = _array(d, "activation_values", np.float64).reshape(-1)
    cfg = d["cfg"]
    n_layers = int(cfg["n_layers"] if isinstance(cfg, dict) else cfg.n_layers)
    P, F, K = len(tokens), len(selected), len(logit_tokens)
    n = F + n_layers * P + P + K
    if adj.shape != (n, n):
        raise GraphValidationError(f"adjacency_matrix has shape {adj.shape}; {F} features + {n_layers}×{P} errors + "
                                   f"{P} tokens + {K} logits need ({n}, {n})")
    if len(probs) != K:
        raise GraphValidationError(f"logit_probabilities has {len(probs)} entries for {K} logit_tokens")
    if len(selected) and (selected.min() < 0 or selected.max() >= len(active) or len(acts) < len(active)):
        raise GraphValidationError("selected_features index outside active_features / activation_values")
    if not np.isfinite(adj).all():
        t, s = np.argwhere(~np.isfinite(adj))[0]
        raise GraphValidationError(f"adjacency_matrix[{t}, {s}] is {adj[t, s]!r} (not finite)")
    lab = (lambda t: token_labels[t] if token_labels and 0 <= t < len(token_labels) else "")
    feat = active[selected]
    rows: list[dict[str, Any]] = [
        {"key": f"F{l}:{i}@{p}", "kind": "feature", "layer": l, "pos": p, "feature": i, "activation": acts[a],
         "dictionary": _dictionary(d.get("scan"), l)}
        for (l, p, i), a in zip(feat.tolist(), selected.tolist())]
    rows += [{"key": f"ERR{l}@{p}", "kind": "error", "layer": l, "pos": p} for l in range(n_layers) for p in range(P)]
    rows += [{"key": f"E@{p}", "kind": "embed", "layer": -1, "pos": p, "token": int(t), "label": lab(int(t))}
             for p, t in enumerate(tokens.tolist())]
    rows += [{"key": f"L:{t}@{P - 1}", "kind": "logit", "layer": n_layers, "pos": P - 1, "token": int(t),
              "probability": pr, "label": lab(int(t))} for t, pr in zip(logit_tokens.tolist(), probs.tolist())]
    nodes = pd.DataFrame(rows)
    dst, src = np.nonzero(adj)
    w = adj[dst, src]
    scan = d.get("scan")
    meta = {"model": str(getattr(cfg, "model_name", None) or (scan if isinstance(scan, str) else "unknown")),
            "granularity": "feature", "method": "circuit-tracer", "metric": "logit", "prompt": str(d["input_string"]),
            "tokens": tokens.tolist(), "params": {"scan": scan, "n_active_features": int(len(active))},
            "dictionaries": list(scan) if isinstance(scan, list) else ([scan] if scan else [])}
    graph = AttributionGraph(nodes, src, dst, w, None, meta)
    infl = graph_influence(graph)
    infl[n - K:] = np.nan
    graph.nodes["influence"] = infl
    return graph


def _array(d: dict[str, Any], name: str, dtype: Any) -> np.ndarray:
    v = d[name]
    try:
        if hasattr(v, "detach"):
            v = v.detach().cpu().double().numpy() if dtype is np.float64 else v.detach().cpu().numpy()
        return np.asarray(v, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise GraphValidationError(f"circuit-tracer field {name!r} is not a numeric array: {e}") from e


def _dictionary(scan: Any, layer: int) -> str:
    if isinstance(scan, list):
        return str(scan[layer]) if layer < len(scan) else f"layer-{layer}"
    return f"{scan or 'circuit-tracer'}/L{layer}"
