"""Pruning a graph into a :class:`~circuitdb.circuits.circuit.Circuit`.

The algorithms are pure functions of the graph in :mod:`circuitdb.pruning` (one layer below attribution, so a
feature graph can be pruned before it is stored); this module only wraps their result in a Circuit and re-exports
them under their historical names.
"""

from __future__ import annotations

from typing import Any

from circuitdb.circuits.circuit import Circuit
from circuitdb.graph import AttributionGraph
from circuitdb.pruning import (  # noqa: F401 - re-exported
    PRUNERS, PruneResult, dead_end_prune, find_threshold, greedy_prune, influence_prune, logit_weights, prune_result,
    remove_dead_ends_masks, threshold_prune, topn_prune,
)


def prune(graph: AttributionGraph, method: str = "auto", **params: Any) -> Circuit:
    """Prune ``graph`` with ``method`` (auto | influence | topn | threshold | greedy | dead_ends; auto: by granularity) into a Circuit."""
    return Circuit.from_prune(prune_result(graph, method, **params))
