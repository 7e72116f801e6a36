"""``circuitdb attribute`` and ``circuitdb models``: compute an attribution graph and write it to a store; list the
models circuitdb can load by name.

Component graphs (heads/MLPs, EAP / EAP-IG / exact patching) run on a task or a JSONL file of prompt pairs, both
given with ``--task``; feature graphs (``--granularity feature``) run on one prompt given as ``--prompt TEXT``,
``--tokens 3,17,5`` or ``--task NAME --index I``. The store is opened (and its URI checked) before any compute.
Heavy imports (torch, the engine) happen inside the commands.
"""

from __future__ import annotations

import typer

from circuitdb.cli.common import STORE_OPTION


def register(app: typer.Typer) -> None:
    app.command("attribute")(attribute_cmd)
    app.command("models")(models_cmd)


def attribute_cmd(
    model: str = typer.Option(..., "--model", "-m",
                              help="Zoo name (see `circuitdb models`), pretrained name, or a model folder."),
    task: str = typer.Option(None, "--task", "-t",
                             help="Task name (induction, ioi, greater-than) or a .jsonl file of prompt pairs."),
    method: str = typer.Option("eap-ig", "--method", help="eap, eap-ig, patching or eap-ig+patching (component graphs)."),
    metric: str = typer.Option(None, "--metric", show_default="the task's",
                               help="logit_diff, logprob, kl, l2, mse, or module:function."),
    ablation: str = typer.Option("patch", "--ablation", help="patch (corrupted prompts), zero or mean."),
    n: int = typer.Option(64, "--n", help="Number of prompt pairs drawn from the task (a .jsonl: its first n)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the task's prompt generator."),
    ig_steps: int = typer.Option(5, "--ig-steps", help="EAP-IG interpolation points."),
    batch_size: int = typer.Option(32, "--batch-size", help="Prompt pairs per forward pass."),
    per_position: bool = typer.Option(False, "--per-position", help="One node per component and token position."),
    dtype: str = typer.Option(None, "--dtype", show_default="the model's", help="float32 or float64."),
    truncate: bool = typer.Option(False, "--truncate",
                                  help="Keep the last n_ctx tokens of longer prompts (otherwise they are an error)."),
    head_stats: bool = typer.Option(True, "--head-stats/--no-head-stats",
                                    help="Attention scores and DLA on the task's own prompts, on every head node."),
    store: str = STORE_OPTION,
    graph_id: str = typer.Option(None, "--graph-id", show_default="a content hash", help="Id of the stored graph."),
    granularity: str = typer.Option("component", "--granularity", help="component or feature."),
    prompt: str = typer.Option(None, "--prompt", help="Feature graphs: the prompt text."),
    tokens: str = typer.Option(None, "--tokens", help="Feature graphs: comma-separated token ids, e.g. 3,17,5."),
    index: int = typer.Option(0, "--index", help="Feature graphs with --task: which prompt of the task."),
    dictionaries: str = typer.Option(None, "--dictionaries", help="Feature graphs: dictionary spec (transcoders/SAEs)."),
    max_feature_nodes: int = typer.Option(None, "--max-feature-nodes", show_default="all",
                                          help="Feature graphs: visit at most this many features (most influential first)."),
    heads: bool = typer.Option(True, "--heads/--no-heads",
                               help="Feature graphs: decompose edges by the attention head they pass through."),
    min_head_share: float = typer.Option(0.1, "--min-head-share", min=0.0, max=1.0,
                                         help="Feature graphs with heads: a head part gets its own node where it "
                                              "carries at least this share of its edge's |mass|; smaller parts stay "
                                              "in the plain edge (0: every part)."),
    prune: str = typer.Option("influence", "--prune",
                              help="Feature graphs: influence (node 0.8 / edge 0.98) or none (every non-zero entry)."),
    adjacency: str = typer.Option(None, "--adjacency",
                                  help="Feature graphs: also write the unpruned adjacency to this .npz side file."),
    device: str = typer.Option(None, "--device", show_default="cpu", help="cuda, cpu or mps (any torch device)."),
    top: int = typer.Option(10, "--top", min=0, help="Strongest edges to print."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Compute an attribution graph of MODEL and store it; print the prompt, the graph's scores and its strongest
    edges."""
    from circuitdb.cli.common import open_cli_store
    from circuitdb.errors import ConfigError, one_of

    if granularity not in ("component", "feature"):
        raise ConfigError(one_of(granularity, ("component", "feature"), "granularity"))
    if prune not in ("influence", "none"):
        raise ConfigError(one_of(prune, ("influence", "none"), "--prune"))
    if granularity == "component":
        if task is None:
            raise ConfigError("component graphs need --task NAME or --task FILE.jsonl (prompt pairs)")
        if prompt is not None or tokens is not None:
            raise ConfigError("--prompt/--tokens select one prompt for --granularity feature; component graphs use "
                              "--task")
    st = open_cli_store(store)  # a bad URI or an unopenable store fails here, before any compute
    try:
        lm, graph = _compute(model, task, method, metric, ablation, n, seed, ig_steps, batch_size, per_position, dtype,
                         truncate, head_stats, graph_id, granularity, prompt, tokens, index, dictionaries,
                         max_feature_nodes, heads, progress, prune, adjacency, device, min_head_share)
        gid = st.write_graph(graph, graph_id=graph_id or graph.id)
        uri = st.uri
    finally:
        st.close()
    _report(graph, lm, gid, uri, top)


def _compute(model, task, method, metric, ablation, n, seed, ig_steps, batch_size, per_position, dtype,  # noqa: ANN001, ANN202, PLR0913
             truncate, head_stats, graph_id, granularity, prompt, tokens, index, dictionaries, max_feature_nodes,
             heads, progress, prune, adjacency, device, min_head_share):
    import circuitdb

    lm = circuitdb.load_model(model, **({"dtype": dtype} if dtype else {}), **({"device": device} if device else {}))
    if granularity == "component":
        source = task
        if str(task).endswith(".jsonl"):
            source = circuitdb.load_task(task, lm, n=n, truncate=truncate)
        return lm, circuitdb.attribute(lm, source, method=method, metric=metric, ablation=ablation,
                                       ig_steps=ig_steps, batch_size=batch_size, per_position=per_position,
                                       progress=progress, graph_id=graph_id, n=n, seed=seed, head_stats=head_stats)
    ids = _one_prompt(lm, task, prompt, tokens, index, seed, truncate)
    return lm, circuitdb.attribute_features(lm, ids, dictionaries=dictionaries, progress=progress, heads=heads,
                                            min_head_share=min_head_share, max_feature_nodes=max_feature_nodes,
                                            prune=None if prune == "none" else prune, adjacency=adjacency,
                                            **({"graph_id": graph_id} if graph_id else {}))


def _report(graph, lm, gid: str, uri: str, top: int) -> None:  # noqa: ANN001
    import json

    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from circuitdb.plain import plain_value

    con = Console()
    meta = graph.meta
    con.print(Text.assemble("stored graph ", (gid, "bold"), f" ({graph.n_nodes} nodes, {graph.n_edges} edges; "
                            f"{meta.get('method')}, metric {meta.get('metric')}) in {uri}"))
    prompts = meta.get("prompt")
    tokens = plain_value(meta.get("tokens"))
    if not prompts and tokens:  # token ids only: show them as the model's tokens where it has a tokenizer
        rows = tokens if isinstance(tokens[0], list) else [tokens]
        if getattr(lm, "tokenizer", None) is not None:
            from circuitdb.models import detokenize

            prompts = ["".join(t if t.startswith(" ") else " " + t for t in detokenize(lm, r)).strip() for r in rows]
        else:
            prompts = [json.dumps(r) for r in rows]
    shown = prompts if isinstance(prompts, list) else [prompts] if prompts else []
    for i, p in enumerate(shown[:3]):
        con.print(Text(f"prompt {i}: {_elide(str(p))}"))
    scores = meta.get("scores")
    if scores:
        con.print(Text("scores: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                                              else f"{k} {_elide(str(v), 40)}" for k, v in scores.items())))
    if graph.n_edges and top:
        order = np.argsort(-graph.abs_weight, kind="stable")[:top]
        keys = graph.keys
        t = Table(title=f"top {len(order)} edges by |weight|")
        for c in ("source", "target", "channel", "weight"):
            t.add_column(c, justify="right" if c == "weight" else "left")
        for i in order:
            t.add_row(Text(keys[graph.src[i]]), Text(keys[graph.dst[i]]), "-qkv"[graph.channel[i]].strip("-"),
                      f"{graph.weight[i]:+.4g}")
        con.print(t)


def _elide(s: str, limit: int = 160) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _one_prompt(lm, task, prompt, tokens, index, seed, truncate):  # noqa: ANN001, ANN202
    """The single prompt of a feature graph as a 1-D LongTensor (longer than n_ctx: an error unless --truncate)."""
    import torch

    from circuitdb.errors import ConfigError

    given = [x is not None for x in (prompt, tokens, task)]
    if sum(given) != 1:
        raise ConfigError("feature graphs need exactly one of --prompt TEXT, --tokens IDS or --task with --index")
    if prompt is not None:
        from circuitdb.models import tokenize

        ids = tokenize(lm, prompt)
    elif tokens is not None:
        try:
            vals = [int(x) for x in tokens.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--tokens {tokens!r} must be comma-separated integers, e.g. 3,17,5") from None
        if not vals or min(vals) < 0 or max(vals) >= lm.cfg.d_vocab:
            raise ConfigError(f"--tokens {tokens!r}: need at least one id, each in [0, {lm.cfg.d_vocab})")
        ids = torch.tensor(vals, dtype=torch.long)
    else:
        if index < 0:
            raise ConfigError(f"--index must be >= 0, got {index}")
        from circuitdb.tasks import load_task

        kw = {"truncate": truncate} if str(task).endswith(".jsonl") else {"seed": seed}
        ds = load_task(task, lm, n=index + 1, **kw)
        if index >= len(ds):
            raise ConfigError(f"--index {index} outside the {len(ds)} prompts of {task!r}")
        ids = ds.clean[index].long()
    n_ctx = int(lm.cfg.n_ctx)
    if len(ids) > n_ctx:
        if not truncate:
            raise ConfigError(f"the prompt has {len(ids)} tokens, the model's n_ctx is {n_ctx}; shorten it or pass "
                              "--truncate (keeps the last n_ctx tokens)")
        ids = ids[-n_ctx:]
    return ids


def models_cmd() -> None:
    """List the models circuitdb loads by name (the zoo); pretrained TransformerLens names and model folders (a
    config.json and weights) load too."""
    from rich.console import Console
    from rich.table import Table

    from circuitdb.models import list_models

    t = Table(title="circuitdb models (also: pretrained TransformerLens names, model folders)")
    t.add_column("name", style="bold", no_wrap=True)
    t.add_column("description")
    for name, desc in list_models().items():
        t.add_row(name, desc)
    Console().print(t)
