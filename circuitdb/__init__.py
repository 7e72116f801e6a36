"""circuitdb: compute, store and query attribution graphs of transformer language models.

The public API is imported lazily so that ``import circuitdb`` (and ``circuitdb --help``) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "AttributionGraph": "circuitdb.graph",
    "GraphStore": "circuitdb.store.base",
    "open_store": "circuitdb.store.base",
    "load_model": "circuitdb.models",
    "list_models": "circuitdb.models",
    "tokenize": "circuitdb.models",
    "detokenize": "circuitdb.models",
    "load_task": "circuitdb.tasks",
    "PromptPairs": "circuitdb.tasks.base",
    "attribute": "circuitdb.attribution.api",
    "attribute_prompts": "circuitdb.attribution.api",
    "attribute_features": "circuitdb.attribution.features",
    "query": "circuitdb.circuits.query",
    "Circuit": "circuitdb.circuits.circuit",
    "prune": "circuitdb.circuits.prune",
    "CircuitDBError": "circuitdb.errors",
    "ConfigError": "circuitdb.errors",
    "AttributionError": "circuitdb.errors",
    "StoreError": "circuitdb.errors",
    "QueryError": "circuitdb.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'circuitdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    if mod == "circuitdb.store.base":  # stores from the public API get store.circuit(...) (registered by circuits/)
        importlib.import_module("circuitdb.circuits.circuit")
    if mod != "circuitdb.errors":  # graphs and circuits show themselves in notebooks (views registered by render/)
        importlib.import_module("circuitdb.render")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.attribution.api import attribute, attribute_prompts
    from circuitdb.attribution.features import attribute_features
    from circuitdb.circuits.circuit import Circuit
    from circuitdb.circuits.query import query
    from circuitdb.graph import AttributionGraph
    from circuitdb.models import detokenize, list_models, load_model, tokenize
    from circuitdb.store.base import GraphStore, open_store
    from circuitdb.tasks import load_task
    from circuitdb.tasks.base import PromptPairs
