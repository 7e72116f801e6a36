"""``circuitdb demo``: the whole product on a toy model, offline, on any store.

model → component attribution graph (EAP-IG, induction) → store → Cypher query (induction pairs) → pruned,
evaluated, saved circuit → feature graph (toy-ioi, transcoders) → strongest token → logit path → pictures →
checkpoint sweep → the full IOI circuit of toy-ioi-circuit (its three roles, held-out faithfulness).
"""

from __future__ import annotations

import time

import typer

from circuitdb.cli.common import STORE_OPTION


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    store: str = STORE_OPTION,
    n: int = typer.Option(64, help="Induction prompt pairs to attribute."),
    seed: int = typer.Option(0, help="Seed of the induction dataset."),
) -> None:
    """Run the main job end to end on a toy model (offline, about a minute)."""
    import torch
    from rich.console import Console

    import circuitdb
    import numpy as np

    from circuitdb.attribution.head_stats import induction_scores, prev_token_scores, repeated_random_tokens

    con = Console()
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    st = circuitdb.open_store(store)  # the facade's store: store.circuit() registered
    con.rule("[bold]1. Component graph: toy-induction-2l, induction task, EAP-IG")
    model = circuitdb.load_model("toy-induction-2l")
    data = circuitdb.load_task("induction", model, n=n, seed=seed)
    graph = circuitdb.attribute(model, data, method="eap-ig", metric="logprob", graph_id="demo-induction")
    st.write_graph(graph)
    back = st.read_graph(graph.id)
    con.print(f"stored {back!r} in {st.uri}")
    top = circuitdb.query(st, "top_edges", graph_id=graph.id, limit=8)
    _table(con, "strongest edges (queries/top_edges.cypher)", top[["source", "target", "channel", "weight"]])

    con.rule("[bold]2. Ask the store: previous-token → induction head pairs (queries/induction_pairs.cypher)")
    pairs = circuitdb.query(st, "induction_pairs", graph_id=graph.id)
    _table(con, "induction pairs (K-composition)",
           pairs[["prev_token_head", "induction_head", "weight", "prev_token_score", "induction_score"]].head(5))
    ref = repeated_random_tokens(model.cfg.d_vocab - 1, n=n, half_len=20, seed=seed + 1)  # no <unk>
    ps, ins = prev_token_scores(model, ref), induction_scores(model, ref)
    con.print("ground truth from attention patterns on fresh repeated tokens — previous-token scores: "
              + _fmt(ps) + "; induction scores: " + _fmt(ins))

    con.rule("[bold]3. Prune, evaluate and save the circuit")
    keep = max(1, round(0.2 * graph.n_edges))
    circuit = st.circuit(graph.id, prune="topn", n=keep).evaluate(model, data, metric="logprob")
    circuit.save(st, "demo-induction-circuit")
    con.print(f"top-{keep} circuit: {circuit.n_nodes} nodes, {circuit.n_edges} of {graph.n_edges} edges, "
              f"MIB faithfulness {circuit.scores['faithfulness']:.3f} (1.0 = the whole model, 0 = all patched)")
    _table(con, "saved circuits", st.list_circuits(graph.id)[["name", "graph_id", "method", "n_nodes"]])

    con.rule("[bold]4. Feature graph: toy-ioi with its transcoders, heads inside the edges")
    ioi = circuitdb.load_model("toy-ioi")
    prompt = circuitdb.load_task("ioi", ioi, n=1, seed=seed)
    fgraph = circuitdb.attribute_features(ioi, prompt.clean[0], graph_id="demo-ioi-features")
    st.write_graph(fgraph)
    text = prompt.texts[0] if prompt.texts else str(prompt.clean[0].tolist())
    con.print(f"prompt: {text!r}; stored {fgraph!r}; scores: "
              + ", ".join(f"{k} {v:.3f}" for k, v in (fgraph.meta.get("scores") or {}).items()
                          if isinstance(v, float)))
    pr, hd = fgraph.meta.get("pruning") or {}, fgraph.meta.get("head_decomposition") or {}
    if pr:
        con.print(f"stored {pr['kept_edges']:,} of {pr['unpruned_edges']:,} entries ({pr['method']} pruning before "
                  "storing; meta['pruning'])")
    if hd:
        con.print(f"heads: {hd['kept_parts']:,} of {hd['nonzero_parts']:,} head parts carry ≥ {hd['min_share']:.0%} of "
                  f"their edge and got a head node; {hd['folded_mass_share']:.0%} of the head |mass| stays in the plain "
                  "edges (min_head_share=0 keeps every part)")
    logits = fgraph.nodes[fgraph.nodes["kind"] == "logit"].sort_values("probability", ascending=False)
    best = logits.iloc[0]
    con.print(f"top logit: {best['key']} ({best['label'] or best['token']}, p={best['probability']:.3f})")
    floor = float(np.quantile(fgraph.abs_weight, 0.99))
    paths = circuitdb.query(st, "feature_paths", graph_id=fgraph.id, target=best["key"], max_hops=3,
                            min_weight=floor, limit=3)
    paths = paths.assign(path=[" → ".join(p) for p in paths["path"]])[["path", "product", "bottleneck"]]
    _table(con, f"strongest token → {best['key']} paths (every edge |w| ≥ {floor:.3g})", paths)

    con.rule("[bold]5. Pictures: the induction circuit as a PNG, the feature circuit as an offline page")
    from pathlib import Path

    from circuitdb.render import render

    out = Path("circuitdb-demo")
    out.mkdir(exist_ok=True)
    png = render(circuit, out / "induction-circuit.png")
    page = render(st.circuit(fgraph.id, prune="influence"), out / "ioi-feature-circuit.html")
    con.print(f"wrote {png.resolve()} and {page.resolve()} (open the page in a browser; it works offline)",
              markup=False, highlight=False)
    con.rule("[bold]6. Checkpoint sweep: when does the induction circuit form? (queries/circuit_emergence.cypher)")
    from circuitdb.ingest.examples import toy_checkpoint_job
    from circuitdb.ingest.runner import run_job

    run_job(toy_checkpoint_job(), store=st)
    sweep = circuitdb.query(st, "circuit_emergence", source="A0.2", target="A1.2", channel="k", threshold=0.5)
    _table(con, "A0.2 → A1.2 (k) over training steps, one stored graph per checkpoint",
           sweep[["step", "weight", "passes", "first_step"]])
    con.rule("[bold]7. The full IOI circuit: toy-ioi-circuit's roles from its graph (queries/ioi_circuit.cypher)")
    from circuitdb.circuits.circuit import circuit_from_nodes

    full = circuitdb.load_model("toy-ioi-circuit")
    gi = circuitdb.attribute(full, "ioi", method="eap-ig", n=24, seed=seed, progress=False, graph_id="demo-ioi-full")
    st.write_graph(gi)
    roles = circuitdb.query(st, "ioi_circuit", graph_id=gi.id)
    roles = roles[roles["score"] >= 0.1 * roles.groupby("role")["score"].transform("max")]  # the heads that carry it
    _table(con, "duplicate-token → S-inhibition → name movers (heads with ≥ 10 % of their role's top score)",
           roles[["role", "head", "score", "via"]].assign(via=roles["via"].map(", ".join)))
    held = circuit_from_nodes(gi, roles["head"], include_kinds=("embed", "logit", "mlp"), method="ioi_circuit")
    held = held.evaluate(full, split="held_out", n=64)
    con.print(f"those heads' circuit: {held.n_edges} of {gi.n_edges} edges, faithfulness "
              f"{held.scores['faithfulness']:.3f} on 64 held-out prompts")
    con.rule()
    con.print(f"done in {time.perf_counter() - t0:.1f} s. Explore: circuitdb graphs list --store {st.uri}")
    st.close()


def _fmt(scores) -> str:
    return ", ".join(f"A{l}.{h}={float(scores[l, h]):.2f}" for l in range(scores.shape[0]) for h in range(scores.shape[1]))


def _table(con, title: str, df) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in df.columns:
        t.add_column(str(c))
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    con.print(t)
