"""Feature-graph benchmark: attribution time per prompt ÷ one forward pass, and scaling with prompt length and
``max_feature_nodes``.

Setup: ``random-4l`` (4 layers, 4 heads, d_model 64, d_mlp 256) with width-512 ReLU transcoders trained here for a
few hundred steps on random tokens (seed 0, cached under ``--cache``). Each measurement runs in a fresh subprocess so
its peak memory (resident set sampled every 5 ms, above the post-setup baseline) is its own. One thread. Times
are this process's CPU time (``time.process_time``; the forward pass: the minimum of 20), which a shared machine
disturbs far less than wall time; wall time is printed too.

    python bench/feature_bench.py            # prints markdown tables
    python bench/feature_bench.py --sweep    # width sweep (equal active features) and heads on/off ratios

``--gpt2``: a GPT-2-small-shaped random model side by side with circuit-tracer 0.5.0 (:mod:`feature_gpt2`).

The sweep: ``random-4l`` with random ReLU transcoders of width 512 (bias -1, seed 0), widened to 2,048 … 65,536 by
features that never fire (bias -1e6): the active features — and so the graph — are the same at every width, only the
dictionary is wider. Default pruning (influence 0.8 / 0.98), 32 tokens, all active features visited.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

MODEL = "random-4l"


def _setup(cache: Path):  # noqa: ANN202
    import torch

    torch.set_num_threads(1)
    from circuitdb.dictionaries import load_dictionaries, save_dictionary
    from circuitdb.dictionaries.train import TrainConfig, train_dictionaries, zoo_tokens
    from circuitdb.models import load_model

    model = load_model(MODEL)
    if not any(cache.glob("*.json")):
        cfg = TrainConfig(width=512, steps=600, batch=512, l1=3e-2, seed=0)
        for d, stats in train_dictionaries(model, zoo_tokens(model, 600, 0), cfg):
            save_dictionary(d, cache / d.id.split("/")[-1], stats=stats)
    return model, load_dictionaries(str(cache), model)


def _rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def one(cache: Path, n_tokens: int, cap: int | None, heads: bool, prune: str = "influence") -> dict:
    import torch

    from circuitdb.attribution.features import attribute_features

    model, dicts = _setup(cache)
    toks = torch.randint(1, model.cfg.d_vocab, (n_tokens,), generator=torch.Generator().manual_seed(n_tokens))
    toks[0] = 0
    with torch.no_grad():
        model(toks[None])
        times = []
        for _ in range(20):
            t0 = time.process_time()
            model(toks[None])
            times.append(time.process_time() - t0)
        fwd = min(times)  # the machine is shared: the minimum is the least noisy estimate
    base = _rss()
    peak = [base]
    done = threading.Event()

    def poll() -> None:  # sample the resident set every 5 ms: its peak above the baseline is the run's memory
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss())

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    t0, w0 = time.process_time(), time.perf_counter()
    g = attribute_features(model, toks, dicts, max_feature_nodes=cap, heads=heads, progress=False,
                           prune=None if prune == "none" else prune)
    dt, wall = time.process_time() - t0, time.perf_counter() - w0
    done.set()
    th.join()
    peak = max(peak[0], _rss())
    return {"tokens": n_tokens, "cap": cap, "heads": heads, "prune": prune, "forward_s": fwd, "attr_s": dt, "ratio": dt / fwd,
            "wall_s": wall,
            "peak_mib": (peak - base) / 2**20, "nodes": g.n_nodes, "edges": g.n_edges,
            "features": int((g.nodes["kind"] == "feature").sum()), "active": g.meta["params"]["n_active_features"],
            "replacement": g.meta["scores"]["replacement"], "completeness": g.meta["scores"]["completeness"]}


def _widened(model, width: int):  # noqa: ANN001, ANN202
    import dataclasses

    import torch

    from circuitdb.dictionaries.train import random_dictionaries

    out = []
    for i, d in enumerate(random_dictionaries(model, "transcoder", width=512, seed=0, bias=-1.0)):
        extra = width - d.width
        if extra <= 0:
            out.append(d)
            continue
        g = torch.Generator().manual_seed(i)
        out.append(dataclasses.replace(
            d, W_enc=torch.cat([d.W_enc, torch.randn(d.d_in, extra, generator=g) / 8], 1),
            b_enc=torch.cat([d.b_enc, torch.full((extra,), -1e6)]),
            W_dec=torch.cat([d.W_dec, torch.randn(extra, d.d_out, generator=g) / 8])))
    return out


def sweep_one(width: int, n_tokens: int, heads: bool, reps: int = 3) -> dict:
    import torch

    from circuitdb.attribution.features import attribute_features
    from circuitdb.models import load_model

    torch.set_num_threads(1)
    model = load_model(MODEL)
    dicts = _widened(model, width)
    toks = torch.randint(1, model.cfg.d_vocab, (n_tokens,), generator=torch.Generator().manual_seed(0))
    toks[0] = 0
    attribute_features(model, toks, dicts, heads=heads, progress=False)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        g = attribute_features(model, toks, dicts, heads=heads, progress=False)
        times.append(time.process_time() - t0)
    pr = g.meta["pruning"]
    return {"width": width, "tokens": n_tokens, "heads": heads, "attr_s": min(times),
            "active": g.meta["params"]["n_active_features"], "nodes": g.n_nodes, "edges": g.n_edges,
            "raw_edges": pr["unpruned_edges"], "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def sweep(widths: list[int], n_tokens: int) -> None:
    rows = []
    for w in widths:
        for heads in (False, True):
            out = subprocess.run([sys.executable, __file__, "--sweep-one", str(w), str(n_tokens), str(int(heads))],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    base = {r["heads"]: r["attr_s"] for r in rows if r["width"] == widths[0]}
    print("| width | active features | heads | time s | ÷ width %d | heads on ÷ off | stored nodes | stored edges | "
          "raw edges | peak RSS MiB |" % widths[0])
    print("|---|---|---|---|---|---|---|---|---|---|")
    off = {r["width"]: r["attr_s"] for r in rows if not r["heads"]}
    for r in rows:
        print(f"| {r['width']:,} | {r['active']:,} | {'yes' if r['heads'] else 'no'} | {r['attr_s']:.2f} | "
              f"{r['attr_s'] / base[r['heads']]:.2f} | {r['attr_s'] / off[r['width']]:.2f} | {r['nodes']:,} | "
              f"{r['edges']:,} | {r['raw_edges']:,} | {r['peak_mib']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cache", default="/tmp/circuitdb-feature-bench")
    p.add_argument("--one", nargs="+", metavar="TOKENS CAP HEADS [PRUNE]")
    p.add_argument("--memory", action="store_true", help="peak memory: pruned before storing vs every entry stored")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--widths", default="512,2048,16384,65536")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--sweep-one", nargs=3, metavar=("WIDTH", "TOKENS", "HEADS"))
    if "--gpt2" in sys.argv[1:]:  # GPT-2-shape side by side with circuit-tracer: its own options (feature_gpt2)
        sys.path.insert(0, str(Path(__file__).parent))
        import feature_gpt2

        feature_gpt2.main([x for x in sys.argv[1:] if x != "--gpt2"])
        return
    a = p.parse_args()
    if a.sweep_one:
        print(json.dumps(sweep_one(int(a.sweep_one[0]), int(a.sweep_one[1]), a.sweep_one[2] == "1")))
        return
    if a.sweep:
        sweep([int(w) for w in a.widths.split(",")], a.tokens)
        return
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if a.one:
        n, cap, heads = int(a.one[0]), (None if a.one[1] == "none" else int(a.one[1])), a.one[2] == "1"
        print(json.dumps(one(cache, n, cap, heads, *a.one[3:])))
        return
    if a.memory:
        _setup(cache)
        print("| tokens | stored | time s | peak MiB above setup | stored edges |")
        print("|---|---|---|---|---|")
        for n in (16, 32):
            for prune in ("influence", "none"):
                out = subprocess.run([sys.executable, __file__, "--cache", str(cache), "--one", str(n), "none", "0",
                                      prune], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {n} | {'pruned (influence)' if prune != 'none' else 'every entry'} | {r['attr_s']:.2f} | "
                      f"{r['peak_mib']:.0f} | {r['edges']:,} |", flush=True)
        return
    _setup(cache)  # train once
    runs = [(32, "none", "0"), (32, "none", "1")] + [(n, "none", "0") for n in (8, 16, 64)] + [
        (32, c, "0") for c in ("1000", "300", "100")]
    rows = []
    for n, cap, heads in runs:
        out = subprocess.run([sys.executable, __file__, "--cache", str(cache), "--one", str(n), cap, heads],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    print("| tokens | max_feature_nodes | heads | active features | nodes | edges | forward ms | attribution s | "
          "ratio | wall s | peak MiB | replacement | completeness |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tokens']} | {r['cap'] or 'all'} | {'yes' if r['heads'] else 'no'} | {r['active']} | "
              f"{r['nodes']} | {r['edges']} | {r['forward_s'] * 1e3:.2f} | {r['attr_s']:.2f} | {r['ratio']:.0f} | "
              f"{r['wall_s']:.1f} | "
              f"{r['peak_mib']:.0f} | {r['replacement']:.3f} | {r['completeness']:.3f} |")


if __name__ == "__main__":
    main()
