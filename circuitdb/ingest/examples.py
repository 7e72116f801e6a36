"""Jobs built in code for the demo and the benchmark (the same jobs as ``ingest/*.toml``, with package paths)."""

from __future__ import annotations

from typing import Any

from circuitdb.ingest.spec import JobSpec, parse_job


def toy_checkpoint_job(name: str = "toy-induction-checkpoints") -> JobSpec:
    """``ingest/toy-induction-checkpoints.toml``: one EAP graph (32 induction prompts) per shipped checkpoint."""
    from circuitdb.models.zoo import ZOO_DIR

    return parse_job({
        "name": name, "description": "toy-induction-2l training checkpoints, one EAP graph per checkpoint",
        "model": {"checkpoints": [str(ZOO_DIR / "toy-induction-2l" / "checkpoints" / "step-*")]},
        "data": {"task": "induction", "n": 32, "seed": 0},
        "attribution": {"granularity": "component", "method": "eap", "metric": "logprob", "prompts_per_graph": 32,
                        "batch_size": 32},
    }, name)


def toy_induction_job(n: int = 1000, name: str = "toy-induction", **attribution: Any) -> JobSpec:
    """``ingest/toy-induction.toml``: one EAP graph per induction prompt."""
    return parse_job({
        "name": name, "model": {"name": "toy-induction-2l"},
        "data": {"task": "induction", "n": n, "seed": 0, "options": {"half_len": 16}},
        "attribution": {"granularity": "component", "method": "eap", "metric": "logprob", "batch_size": 64,
                        **attribution},
        "write": {"graphs_per_transaction": 250},
    }, name)


def toy_ioi_feature_job(n: int = 100, name: str = "toy-ioi-feature", **params: Any) -> JobSpec:
    """``ingest/toy-ioi-feature.toml``: one influence-pruned feature graph per IOI prompt."""
    return parse_job({
        "name": name, "model": {"name": "toy-ioi"}, "data": {"task": "ioi", "n": n, "seed": 0},
        "attribution": {"granularity": "feature", "method": "replacement", "batch_size": 64,
                        "params": {"max_feature_nodes": 64, "heads": False, "logit_prob": 0.95, "max_logits": 5,
                                   **params}},
        "prune": {"method": "influence", "params": {"node_threshold": 0.8, "edge_threshold": 0.98}},
        "write": {"graphs_per_transaction": 25},
    }, name)
