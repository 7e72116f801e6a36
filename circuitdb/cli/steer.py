"""``circuitdb steer``: intervene on heads, MLPs and features by node key; see the logits and generated text move,
and check a stored feature graph's prediction against the real model. ``circuitdb lens``: logit-lens node labels."""

from __future__ import annotations

import typer

from circuitdb.cli.common import STORE_OPTION


def register(app: typer.Typer) -> None:
    app.command("steer")(steer_cmd)
    app.command("lens")(lens_cmd)


def lens_cmd(
    graph_id: str = typer.Argument(..., metavar="GRAPH_ID", help="The stored graph whose nodes get lens labels."),
    model: str = typer.Option(..., "--model", "-m", help="Zoo or pretrained model name (the graph's model)."),
    k: int = typer.Option(3, "--k", help="Tokens per label."),
    store: str = STORE_OPTION,
) -> None:
    """Label every head / MLP / feature / error node of a stored graph with its logit lens (the tokens it promotes
    most: its direct effect on each logit at its position); shown as the nodes' label and Browser caption."""
    from rich.console import Console

    import circuitdb
    from circuitdb.cli.common import open_cli_store
    from circuitdb.lens import label_stored_graph

    lm = circuitdb.load_model(model)
    with open_cli_store(store) as st:
        n = label_stored_graph(st, graph_id, lm, k=k)
    Console(highlight=False).print(f"lens labels on {n:,} node(s) of {graph_id}", markup=False)


def _pairs(items: list[str] | None, op: str) -> list:
    from circuitdb.errors import ConfigError
    from circuitdb.intervene import Intervention

    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--{op} {item!r} is not of the form KEY=VALUE (e.g. A1.2=0.5, F1:37@5=4)")
        k, v = item.rsplit("=", 1)
        try:
            out.append(Intervention(k.strip(), op, float(v)))
        except ValueError as e:
            raise ConfigError(f"--{op} {item!r}: {v!r} is not a number") from e
    return out


def steer_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Zoo or pretrained model name."),
    prompt: str = typer.Option(None, "--prompt", "-p", help="Prompt text (or give --graph: its prompt)."),
    ablate: list[str] = typer.Option(None, "--ablate", help="Node key to zero (A1.2, M0@5, F1:37@5); repeatable."),
    scale: list[str] = typer.Option(None, "--scale", help="KEY=FACTOR: multiply a node's output; repeatable."),
    add: list[str] = typer.Option(None, "--add", help="FEATURE=SCALE: add SCALE x the feature's decoder direction."),
    patch: list[str] = typer.Option(None, "--patch", help="Node key to patch from --corrupted (a feature: its "
                                    "activation there, through its decoder direction); repeatable."),
    corrupted: str = typer.Option(None, "--corrupted", help="Corrupted prompt text (same token length) for --patch "
                                  "and --check FEATURE=patch."),
    generate_n: int = typer.Option(0, "--generate", help="Also generate this many tokens (greedy), with and without."),
    top: int = typer.Option(8, "--top", help="Top next tokens to show."),
    graph: str = typer.Option(None, "--graph", "-g", help="Stored feature graph: with --check, its prediction."),
    check: str = typer.Option(None, "--check", help="FEATURE[=FACTOR] or FEATURE=patch (from --corrupted): "
                              "graph-predicted vs real logit change."),
    save_check: str = typer.Option(None, "--save-check", help="Store the check on this saved circuit of --graph."),
    store: str = STORE_OPTION,
) -> None:
    """Run MODEL on a prompt with interventions; print the top next-token logits before and after."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    import circuitdb
    from circuitdb.errors import ConfigError
    from circuitdb.intervene import Intervention, generate, patch_check, run_with_interventions, steering_check

    con = Console(highlight=False)
    lm = circuitdb.load_model(model)
    ivs = [Intervention(k, "zero") for k in ablate or []] + _pairs(scale, "scale") + _pairs(add, "add")
    ivs += [Intervention(k, "patch") for k in patch or []]
    g, st = None, None
    if graph:
        from circuitdb.cli.common import open_cli_store

        st = open_cli_store(store)
        g = st.read_graph(graph)
    try:
        if prompt is not None:
            tokens = circuitdb.tokenize(lm, prompt)
        elif g is not None and g.meta.get("tokens"):
            import torch

            tokens = torch.as_tensor(g.meta["tokens"]).reshape(-1)
        else:
            raise ConfigError("give --prompt TEXT, or --graph ID of a stored graph with tokens")
        bad = circuitdb.tokenize(lm, corrupted) if corrupted is not None else None
        if patch and bad is None:
            raise ConfigError("--patch needs --corrupted TEXT (the prompt whose outputs are patched in)")
        if generate_n and patch:
            raise ConfigError("--generate cannot be combined with --patch (no corrupted run to patch from)")
        if bad is not None and bad.shape != tokens.shape:
            raise ConfigError(f"--corrupted has {bad.numel()} tokens, the prompt {tokens.numel()} (equal needed)")
        dicts = ()
        if any(iv.key.startswith("F") for iv in ivs):
            from circuitdb.dictionaries.load import load_dictionaries

            dicts = load_dictionaries(None, lm)
        clean = run_with_interventions(lm, tokens[None], [])[0, -1]
        after = run_with_interventions(lm, tokens[None], ivs, dictionaries=dicts,
                                       corrupted=None if bad is None else bad[None])[0, -1]
        words = circuitdb.detokenize(lm, list(range(lm.cfg.d_vocab_out)))
        tab = Table(title=Text(f"next token after {len(tokens)} tokens; interventions: "
                          f"{', '.join(f'{iv.op} {iv.key}' + ('' if iv.op == 'zero' else f' {iv.value:g}') for iv in ivs) or 'none'}"))
        for c in ("token", "clean logit", "intervened", "change"):
            tab.add_column(c, justify="right" if c != "token" else "left")
        ids = sorted(set(clean.topk(min(top, len(clean))).indices.tolist()) | set(after.topk(min(top, len(after))).indices.tolist()),
                     key=lambda i: -float(after[i]))
        for i in ids:
            tab.add_row(Text(words[i]), f"{float(clean[i]):.3f}", f"{float(after[i]):.3f}", f"{float(after[i] - clean[i]):+.3f}")
        con.print(tab)
        if generate_n:
            base = generate(lm, tokens, [], max_new_tokens=generate_n)
            new = generate(lm, tokens, ivs, max_new_tokens=generate_n, dictionaries=dicts)
            con.print(Text("clean:      " + " ".join(circuitdb.detokenize(lm, base))))
            con.print(Text("intervened: " + " ".join(circuitdb.detokenize(lm, new))))
        if check:
            if g is None:
                raise ConfigError("--check needs --graph ID (a stored feature graph)")
            key, _, fac = check.partition("=")
            if fac == "patch":
                if bad is None:
                    raise ConfigError("--check FEATURE=patch needs --corrupted TEXT")
                res = patch_check(lm, g, key, bad, tokens=tokens)
                what = (f"patching {key} from the corrupted prompt (activation {res['clean_activation']:.4g} → "
                        f"{res['corrupted_activation']:.4g}, factor {res['factor']:.4g})")
            else:
                try:
                    factor = float(fac) if fac else 0.0
                except ValueError as e:
                    raise ConfigError(f"--check {check!r}: {fac!r} is neither a number nor 'patch'") from e
                res = steering_check(lm, g, key, factor, tokens=tokens)
                what = f"scaling {key} by {res['factor']:g}"
            t2 = Table(title=Text(f"{what}: predicted vs actual change of centred logits"))
            for c in ("logit", "graph (direct)", "frozen model", "graph (propagated)", "real model", "gap"):
                t2.add_column(c)
            for lk, v in res["logits"].items():
                t2.add_row(Text(lk), *(f"{v[c]:+.4f}" for c in ("direct", "frozen", "propagated", "real", "gap")))
            con.print(t2)
            con.print(Text(f"frozen vs graph: max |diff| {res['frozen_vs_graph']:.2e}; gap: {res['gap_cause']}"))
            if save_check:
                from circuitdb.circuits.circuit import Circuit
                from circuitdb.intervene import record_check

                c = record_check(Circuit.load(st, save_check, graph), res)
                c.save(st, save_check)
                con.print(Text(f"stored the check on circuit {save_check}"))
    finally:
        if st is not None:
            st.close()
