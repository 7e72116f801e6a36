"""``circuitdb ingest JOB.toml``: run an ingest job with a progress bar (graphs/s, edges/s, ETA) and a summary."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from circuitdb.cli.common import STORE_OPTION


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("export-neo4j-import")(export_neo4j_import)


def export_neo4j_import(
    folder: Path = typer.Argument(..., help="Folder for the CSV files (created)."),
    store: str = STORE_OPTION,
    force: bool = typer.Option(False, "--force", help="Replace files in a non-empty folder."),
) -> None:
    """Write every current graph as CSV files for `neo4j-admin database import` (bulk backfills; docs/scale.md)."""
    from rich.console import Console

    from circuitdb.cli.common import open_cli_store
    from circuitdb.ingest.neo4j_import import export_neo4j_import as export

    st = open_cli_store(store)
    try:
        counts = export(st, folder, overwrite=force)
    finally:
        st.close()
    Console(highlight=False).print(f"wrote {folder}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
                                   + " (see docs/scale.md for the neo4j-admin command)", markup=False)


def ingest(
    job: Path = typer.Argument(..., help="Job spec (TOML), e.g. ingest/toy-induction.toml."),
    store: str = STORE_OPTION,
    shard: str = typer.Option(None, "--shard", help="Take share i of n (i/n, 0-based): n workers fill one store."),
    force: bool = typer.Option(False, "--force", help="Recompute and rewrite graphs that are already stored."),
    check: bool = typer.Option(False, "--check", help="Only validate the job spec and print it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Compute and store every graph of a job; a re-run skips graphs already stored complete."""
    import json

    from rich.console import Console

    from circuitdb.ingest.spec import load_job

    con = Console(highlight=False)
    spec = load_job(job)
    if check:
        con.print_json(json.dumps(spec.model_dump(mode="json")))
        return
    from circuitdb.ingest.runner import run_job

    bar = _Bar(con, enabled=not quiet)
    with bar:
        summary = run_job(spec, store=store, shard=shard, force=force, on_event=bar.event, base_dir=job.parent)
    s = summary
    rate = s.written / s.seconds if s.seconds else 0.0
    con.print(f"job {s.job} (shard {s.shard}) → {s.store}: {s.written} graph(s) written "
              f"({s.nodes} nodes, {s.edges} edges, {s.transactions} transaction(s)), {s.skipped} already stored, "
              f"in {s.seconds:.1f} s ({rate:.1f} graphs/s; attribution {s.attribution_seconds:.1f} s, "
              f"writing {s.write_seconds:.1f} s)", markup=False)


class _Bar:
    """A rich progress bar fed by the runner's events."""

    def __init__(self, con, enabled: bool) -> None:  # noqa: ANN001
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=con,
                                 disable=not enabled)
        self.task = None
        self.t0 = time.perf_counter()
        self.graphs = self.edges = 0

    def __enter__(self) -> "_Bar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.progress.__exit__(*exc)

    def event(self, name: str, info: dict) -> None:
        if name == "start":
            self.task = self.progress.add_task("ingest", total=info["total"], rate="")
            self.t0 = time.perf_counter()
        elif self.task is None:
            return
        elif name == "skipped":
            self.progress.update(self.task, advance=info["graphs"])
            self.progress.update(self.task, total=self.progress.tasks[0].total)
        elif name == "written":
            self.graphs += info["graphs"]
            self.edges += info["edges"]
            dt = max(time.perf_counter() - self.t0, 1e-9)
            self.progress.update(self.task, advance=info["graphs"],
                                 rate=f"{self.graphs / dt:.1f} graphs/s {self.edges / dt:,.0f} edges/s")
