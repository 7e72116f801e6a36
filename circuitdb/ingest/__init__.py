"""Ingest jobs: ``ingest/*.toml`` specs (:mod:`.spec`), their plan (:mod:`.plan`) and the runner (:mod:`.runner`).

``load_job(path) -> JobSpec``; ``run_job(spec, store=None, shard=None, force=False) -> IngestSummary``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_job", "parse_job", "run_job", "JobSpec", "IngestSummary"]


def __getattr__(name: str) -> Any:
    if name in ("load_job", "parse_job", "JobSpec"):
        from circuitdb.ingest import spec

        return getattr(spec, name)
    if name in ("run_job", "IngestSummary"):
        from circuitdb.ingest import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'circuitdb.ingest' has no attribute {name!r}")
