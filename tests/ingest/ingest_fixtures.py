"""Small ingest jobs for the tests (toy models, a handful of prompts)."""

from __future__ import annotations

from typing import Any

from circuitdb.ingest.spec import JobSpec, parse_job


def induction_job(n: int = 6, name: str = "t-ind", **attribution: Any) -> JobSpec:
    return parse_job({
        "name": name, "model": {"name": "toy-induction-2l"},
        "data": {"task": "induction", "n": n, "seed": 0, "options": {"half_len": 8}},
        "attribution": {"granularity": "component", "method": "eap", "metric": "logprob", "batch_size": 4,
                        "head_stats": False, **attribution},
        "write": {"graphs_per_transaction": 4},
    })


def graphs_by_id(store: Any) -> dict[str, Any]:
    return {gid: store.read_graph(gid) for gid in store.list_graphs()["id"].tolist()}


def same_graphs(a: dict, b: dict) -> list[str]:
    """Differences between two {id: graph} maps (ids, then nodes/edges/weights; metadata but its timestamps)."""
    if set(a) != set(b):
        return [f"ids differ: only in a {sorted(set(a) - set(b))[:3]}, only in b {sorted(set(b) - set(a))[:3]}"]
    out = []
    for gid in a:
        out += [f"{gid}: {d}" for d in a[gid].diff(b[gid], meta=False)]
        ma = {k: v for k, v in a[gid].meta.items() if k != "created_at"}
        mb = {k: v for k, v in b[gid].meta.items() if k != "created_at"}
        if ma != mb:
            out.append(f"{gid}: meta differs")
    return out
