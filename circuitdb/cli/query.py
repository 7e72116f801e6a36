"""``circuitdb query | prune | eval``: run library queries, prune stored graphs into saved circuits, evaluate them.

Heavy imports (pandas, torch, the engine) happen inside the command functions.
"""

from __future__ import annotations

import typer

from circuitdb.cli.common import STORE_OPTION

PARAM_OPTION = typer.Option(None, "--param", "-p", help="Query/pruning parameter key=value (repeatable; JSON values).")


def register(app: typer.Typer) -> None:
    app.command("query")(query_cmd)
    app.command("prune")(prune_cmd)
    app.command("eval")(eval_cmd)


def _table(df, title: str | None = None, max_rows: int = 50):  # noqa: ANN001, ANN202
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in df.columns:
        t.add_column(str(c), justify="right" if df[c].dtype.kind in "fiu" else "left")
    for row in df.head(max_rows).itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return t


def query_cmd(
    name: str = typer.Argument(None, help="A library query name (see --list), a .cypher file, or Cypher text."),
    graph: str = typer.Option(None, "--graph", "-g", help="Graph id (sets the graph_id parameter)."),
    param: list[str] = PARAM_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON records."),
    list_: bool = typer.Option(False, "--list", help="List the library queries and their parameters."),
    store: str = STORE_OPTION,
) -> None:
    """Run a named query from queries/ (or a .cypher file, or Cypher text) and print the rows."""
    import json

    from rich.console import Console

    from circuitdb.circuits.query import get_query, list_queries, query
    from circuitdb.cli.common import open_cli_store, parse_params
    from circuitdb.errors import ConfigError, QueryError

    con = Console()
    if list_:
        for qn in list_queries():
            q = get_query(qn)
            ps = ", ".join(p.name + ("" if p.required else f"={json.dumps(p.default)}") for p in q.params)
            con.print(f"[bold]{qn}[/bold]({ps})\n    {q.purpose}")
        return
    if not name:
        raise ConfigError("give a query name, a .cypher file or Cypher text (or --list)")
    params = parse_params(param)
    if graph is not None:
        params["graph_id"] = graph
    name = _query_text(name)
    st = open_cli_store(store)
    try:
        for key in ("graph_id", "graph_a", "graph_b"):
            gid = params.get(key)
            if isinstance(gid, str) and not st.has_graph(gid):
                from circuitdb.errors import GraphNotFoundError

                raise GraphNotFoundError(f"no graph {gid!r} in {st.uri} (see `circuitdb graphs list`)")
        try:
            df = query(st, name, **params)
        except QueryError as e:  # the store's hint names a Python argument; say what the CLI offers instead
            if "pass write=True" not in str(e):
                raise
            raise QueryError(str(e).split("; pass write=True")[0] + "; `circuitdb query` runs read-only Cypher "
                             "(graphs are written by circuitdb's own commands: attribute, import, prune --save, "
                             "graphs delete)") from None
    finally:
        st.close()
    if as_json:
        typer.echo(df.to_json(orient="records", default_handler=str))
    else:
        con.print(_table(df, title=f"{name} — {len(df)} rows"))


def _query_text(name: str) -> str:
    """A ``.cypher`` file's text (UTF-8 checked here: a clear error, not a traceback), else ``name`` unchanged."""
    from pathlib import Path

    from circuitdb.errors import ConfigError

    if not name.endswith(".cypher") or "\n" in name:
        return name
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"query file {name!r} does not exist")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"query file {name!r} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def prune_cmd(
    graph_id: str = typer.Argument(..., help="Id of the stored graph."),
    method: str = typer.Option("auto", "--method", help="auto (feature graphs: influence; component graphs: greedy "
                               "to 5% of the edges), influence, topn, threshold, greedy or dead_ends."),
    node_threshold: float = typer.Option(None, "--node-threshold", show_default="0.8",
                                         help="influence: node influence fraction."),
    edge_threshold: float = typer.Option(None, "--edge-threshold", show_default="0.98",
                                         help="influence: edge score fraction."),
    n: int = typer.Option(None, "--n", help="topn / greedy: number of edges (required for topn)."),
    threshold: float = typer.Option(None, "--threshold", show_default="0", help="threshold: minimum |weight|."),
    param: list[str] = PARAM_OPTION,
    save: str = typer.Option(None, "--save", help="Save the circuit under this name."),
    top: int = typer.Option(15, "--top", help="Strongest circuit edges to print."),
    store: str = STORE_OPTION,
) -> None:
    """Prune a stored graph into a circuit; print its size and strongest edges; optionally save it."""
    from rich.console import Console

    from circuitdb.circuits.circuit import circuit_from_store
    from circuitdb.cli.common import open_cli_store, parse_params

    params = parse_params(param)
    for k, v in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold), ("n", n),
                 ("threshold", threshold)):
        if v is not None:
            params[k] = v
    con = Console()
    st = open_cli_store(store)
    try:
        c = circuit_from_store(st, graph_id, method, **params)
        uid = c.save(st, save) if save else None
    finally:
        st.close()
    con.print(f"circuit of [bold]{graph_id}[/bold] by {c.method} {c.params}: {c.n_nodes} nodes, {c.n_edges} edges "
              f"({100 * c.scores.get('edge_fraction', 0):.2f}% of edges)" + (f"; saved as {uid}" if uid else ""))
    e = c.edges.sort_values("abs_weight", ascending=False)
    con.print(_table(e, title="strongest edges", max_rows=top))


def eval_cmd(
    circuit: str = typer.Argument(None, help="Name of a saved circuit (omit with --curve to evaluate the graph)."),
    graph: str = typer.Option(None, "--graph", "-g", help="Graph id (needed when the name exists in several graphs, "
                                                          "and for --curve)."),
    model: str = typer.Option(..., "--model", "-m", help="Model the graph was computed on (zoo or pretrained name)."),
    task: str = typer.Option(..., "--task", "-t", help="Task to evaluate on: induction, ioi, greater-than, or .jsonl."),
    n: int = typer.Option(64, "--n", help="Prompt pairs."),
    seed: int = typer.Option(1, "--seed", help="Seed of the evaluation prompts."),
    metric: str = typer.Option(None, "--metric", show_default="the task's",
                               help="logit_diff, logprob, kl, l2, mse, or module:function."),
    ablation: str = typer.Option("patch", "--ablation", help="patch, zero or mean."),
    curve: bool = typer.Option(False, "--curve", help="Also the CPR/CMD curve of the graph over MIB circuit sizes."),
    split: str = typer.Option(None, "--split", help="in_sample (the attribution prompts) or held_out (prompts of the "
                                                    "graph's task the attribution did not use); the score says which."),
    store: str = STORE_OPTION,
) -> None:
    """Faithfulness (MIB) of a saved circuit on MODEL + TASK, stored back on the circuit; optionally CPR/CMD."""
    from rich.console import Console

    import circuitdb
    from circuitdb.attribution.api import resolve_dataset
    from circuitdb.circuits import evaluate as ev
    from circuitdb.circuits.circuit import Circuit
    from circuitdb.cli.common import open_cli_store
    from circuitdb.errors import ConfigError

    if circuit is None and not (curve and graph):
        raise ConfigError("give a saved circuit name, or --curve --graph ID")
    con = Console()
    st = open_cli_store(store)  # checked before any compute
    try:
        if graph is not None and not st.has_graph(graph):
            from circuitdb.errors import GraphNotFoundError

            raise GraphNotFoundError(f"no graph {graph!r} in {st.uri} (see `circuitdb graphs list`)")
        lm = circuitdb.load_model(model)
        if split is not None:
            from circuitdb.circuits.splits import dataset_for_split

            meta = (Circuit.load(st, circuit, graph).graph if circuit is not None else st.read_graph(graph)).meta
            ds = dataset_for_split(lm, meta, split, task, n=n)
        else:
            ds = resolve_dataset(task, lm, n=n, seed=seed)
        base = ev.baselines(lm, ds, metric=metric, ablation=ablation)
        if circuit is not None:
            c = Circuit.load(st, circuit, graph)
            c = ev.evaluate_circuit(lm, ds, c, metric=metric, ablation=ablation, base=base, split=split)
            c.save(st, circuit)
            con.print(f"circuit [bold]{circuit}[/bold] ({c.n_edges} edges, split {c.scores['split']}, "
                      f"{len(ds)} prompts): faithfulness "
                      f"[bold]{c.scores['faithfulness']:.3f}[/bold] (m(C) {c.scores['m_circuit']:.4g}, "
                      f"m(N) {base.full:.4g}, m(∅) {base.empty:.4g})")
        if curve:
            gid = graph or c.source_graph_id
            fc = ev.faithfulness_curve(lm, ds, st.read_graph(gid), metric=metric, ablation=ablation, base=base)
            con.print(_table(fc.to_frame(), title=f"faithfulness curve of {gid}"))
            con.print(f"CPR [bold]{fc.cpr:.3f}[/bold]  CMD [bold]{fc.cmd:.3f}[/bold] (split {split or 'unspecified'})")
    finally:
        st.close()
