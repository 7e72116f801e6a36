"""``circuitdb attribute``: compute an attribution graph and write it to a store.

Component graphs (heads/MLPs, EAP / EAP-IG / exact patching) run on a task (``--task``) or a JSONL file of prompt
pairs (``--data``); feature graphs (``--granularity feature``) run on one prompt given as ``--prompt TEXT``,
``--tokens 3,17,5`` or ``--task NAME --index I``. Heavy imports (torch, the engine) happen inside the command.
"""

from __future__ import annotations

import typer

from circuitdb.cli.common import STORE_OPTION


def register(app: typer.Typer) -> None:
    app.command("attribute")(attribute_cmd)


def attribute_cmd(
    model: str = typer.Option(..., "--model", "-m",
                              help="Zoo name (toy-induction-2l, random-2l, …), pretrained name or model folder."),
    task: str = typer.Option(None, "--task", "-t", help="Task: induction, ioi, greater-than (or a .jsonl path)."),
    data: str = typer.Option(None, "--data", help="JSONL file of prompt pairs (clean, corrupted, answer, wrong)."),
    method: str = typer.Option("eap-ig", "--method", help="eap, eap-ig or patching (component graphs)."),
    metric: str = typer.Option(None, "--metric", help="logit_diff, logprob or kl [default: the task's]."),
    ablation: str = typer.Option("patch", "--ablation", help="patch (corrupted prompts), zero or mean."),
    n: int = typer.Option(64, "--n", help="Number of prompt pairs drawn from the task."),
    seed: int = typer.Option(0, "--seed", help="Seed of the task's prompt generator."),
    ig_steps: int = typer.Option(5, "--ig-steps", help="EAP-IG interpolation points."),
    batch_size: int = typer.Option(32, "--batch-size", help="Prompt pairs per forward pass."),
    per_position: bool = typer.Option(False, "--per-position", help="One node per component and token position."),
    dtype: str = typer.Option(None, "--dtype", help="float32 or float64 [default: the model's]."),
    store: str = STORE_OPTION,
    graph_id: str = typer.Option(None, "--graph-id", help="Id of the stored graph [default: a content hash]."),
    granularity: str = typer.Option("component", "--granularity", help="component or feature."),
    prompt: str = typer.Option(None, "--prompt", help="Feature graphs: the prompt text."),
    tokens: str = typer.Option(None, "--tokens", help="Feature graphs: comma-separated token ids, e.g. 3,17,5."),
    index: int = typer.Option(0, "--index", help="Feature graphs with --task: which prompt of the task."),
    dictionaries: str = typer.Option(None, "--dictionaries", help="Feature graphs: dictionary spec (transcoders/SAEs)."),
    max_feature_nodes: int = typer.Option(None, "--max-feature-nodes",
                                          help="Feature graphs: visit at most this many features (most influential first)."),
    heads: bool = typer.Option(True, "--heads/--no-heads",
                               help="Feature graphs: decompose edges by the attention head they pass through."),
    prune: str = typer.Option("influence", "--prune",
                              help="Feature graphs: influence (node 0.8 / edge 0.98) or none (every non-zero entry)."),
    adjacency: str = typer.Option(None, "--adjacency",
                                  help="Feature graphs: also write the unpruned adjacency to this .npz side file."),
    device: str = typer.Option(None, "--device", help="cuda, cpu or mps (any torch device) [default: cpu]."),
    top: int = typer.Option(10, "--top", help="Strongest edges to print."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Compute an attribution graph of MODEL and store it; print its strongest edges."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import circuitdb
    from circuitdb.cli.common import open_cli_store
    from circuitdb.errors import ConfigError, one_of

    if granularity not in ("component", "feature"):
        raise ConfigError(one_of(granularity, ("component", "feature"), "granularity"))
    con = Console()
    if prune not in ("influence", "none"):
        raise ConfigError(one_of(prune, ("influence", "none"), "--prune"))
    lm = circuitdb.load_model(model, **({"dtype": dtype} if dtype else {}), **({"device": device} if device else {}))
    if granularity == "component":
        if (task is None) == (data is None):
            raise ConfigError("component graphs need exactly one of --task NAME or --data FILE.jsonl "
                              f"(got task={task!r}, data={data!r})")
        if prompt is not None or tokens is not None:
            raise ConfigError("--prompt/--tokens select one prompt for --granularity feature; component graphs use "
                              "--task or --data")
        source = data if data is not None else task
        if data is not None and not str(data).endswith(".jsonl"):
            raise ConfigError(f"--data {data!r} must be a .jsonl file")
        graph = circuitdb.attribute(lm, source, method=method, metric=metric, ablation=ablation, ig_steps=ig_steps,
                                    batch_size=batch_size, per_position=per_position, progress=progress,
                                    graph_id=graph_id, n=n, seed=seed)
    else:
        ids = _one_prompt(lm, task, data, prompt, tokens, index, seed)
        graph = circuitdb.attribute_features(lm, ids, dictionaries=dictionaries, progress=progress, heads=heads,
                                             max_feature_nodes=max_feature_nodes,
                                             prune=None if prune == "none" else prune, adjacency=adjacency,
                                             **({"graph_id": graph_id} if graph_id else {}))
    st = open_cli_store(store)
    try:
        gid = st.write_graph(graph, graph_id=graph_id or graph.id)
    finally:
        st.close()
    con.print(f"stored graph [bold]{gid}[/bold] ({graph.n_nodes} nodes, {graph.n_edges} edges; "
              f"{graph.meta.get('method')}, metric {graph.meta.get('metric')}) in {st.uri}")
    if graph.n_edges:
        order = np.argsort(-graph.abs_weight, kind="stable")[:top]
        keys = graph.keys
        t = Table(title=f"top {len(order)} edges by |weight|")
        for c in ("source", "target", "channel", "weight"):
            t.add_column(c, justify="right" if c == "weight" else "left")
        for i in order:
            t.add_row(keys[graph.src[i]], keys[graph.dst[i]], "-qkv"[graph.channel[i]].strip("-"),
                      f"{graph.weight[i]:+.4g}")
        con.print(t)


def _one_prompt(lm, task, data, prompt, tokens, index, seed):  # noqa: ANN001, ANN202
    """The single prompt of a feature graph as a 1-D LongTensor."""
    import torch

    from circuitdb.errors import ConfigError

    given = [x is not None for x in (prompt, tokens, task or data)]
    if sum(given) != 1:
        raise ConfigError("feature graphs need exactly one of --prompt TEXT, --tokens IDS or --task/--data with --index")
    if prompt is not None:
        from circuitdb.models import tokenize

        return tokenize(lm, prompt)
    if tokens is not None:
        try:
            ids = [int(x) for x in tokens.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--tokens {tokens!r} must be comma-separated integers, e.g. 3,17,5") from None
        if not ids or min(ids) < 0 or max(ids) >= lm.cfg.d_vocab:
            raise ConfigError(f"--tokens {tokens!r}: need at least one id, each in [0, {lm.cfg.d_vocab})")
        return torch.tensor(ids, dtype=torch.long)
    if index < 0:
        raise ConfigError(f"--index must be >= 0, got {index}")
    from circuitdb.tasks import load_task

    ds = load_task(data or task, lm, n=index + 1, seed=seed)
    if index >= len(ds):
        raise ConfigError(f"--index {index} outside the {len(ds)} prompts of {data or task!r}")
    return ds.clean[index].long()

