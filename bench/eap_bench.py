"""Benchmark of the component attribution engine (printed as ratios; not part of the test run).

On ``random-4l`` (4 layers, 4 heads, MLPs, LayerNorm, d_model 64), batch 32, 32 tokens, one CPU thread:
- EAP (all edges) / one forward pass            (goal ≤ 5)
- EAP-IG (m = 5) / EAP                           (goal ≤ 6)
- exact patching of every edge / EAP             (why EAP exists)
- peak memory above the loaded model (resident set of a fresh process, sampled every ms while one method runs), and
  EAP's peak with 1 vs 8 batches (memory must not grow with the number of batches).

Usage: ``python bench/eap_bench.py [--repeats 3] [--model random-4l | bench-4l-d128 | any zoo name]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _setup(model_name: str, n: int, seq: int):  # noqa: ANN202
    import torch

    torch.set_num_threads(1)
    from circuitdb.models import load_model
    from circuitdb.tasks.base import PromptPairs

    if model_name == "bench-4l-d128":  # the upper size: 4 layers, 4 heads, MLPs, LayerNorm, d_model 128
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(
            n_layers=4, n_heads=4, d_model=128, d_head=32, d_mlp=512, n_ctx=64, d_vocab=512, act_fn="gelu",
            normalization_type="LN", seed=0, model_name=model_name))
    else:
        model = load_model(model_name)
    g = torch.Generator().manual_seed(0)
    V = model.cfg.d_vocab
    ds = PromptPairs(torch.randint(0, V, (n, seq), generator=g), torch.randint(0, V, (n, seq), generator=g),
                     torch.randint(0, V, (n,), generator=g), torch.randint(0, V, (n,), generator=g))
    return model, ds


def _runner(method: str, model, ds):  # noqa: ANN001, ANN202
    import torch

    from circuitdb.attribution.eap import EAPConfig, eap_scores
    from circuitdb.attribution.patching import exact_edge_scores
    from circuitdb.tasks.metrics import logit_diff

    if method == "forward":
        def run() -> None:
            with torch.no_grad():
                model(ds.clean)
    elif method == "forward+backward":
        def run() -> None:
            logit_diff(model(ds.clean), ds).sum().backward()
            model.zero_grad(set_to_none=True)
    elif method in ("eap", "eap-ig"):
        cfg = EAPConfig(method=method, ig_steps=5, batch_size=32, progress=False)

        def run() -> None:
            eap_scores(model, ds, logit_diff, cfg)
    elif method == "patching":
        def run() -> None:
            exact_edge_scores(model, ds, logit_diff, batch_size=32, progress=False)
    else:
        raise SystemExit(f"unknown method {method}")
    return run


def _time(run, repeats: int) -> float:  # noqa: ANN001
    run()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(method: str, model_name: str, n: int, seq: int) -> None:
    """Run one method once in this (fresh) process; print its peak resident memory above the set-up's, sampled every
    millisecond by a thread (torch's CPU tensors are invisible to tracemalloc)."""
    import threading

    model, ds = _setup(model_name, n, seq)
    _runner("forward", model, ds)()
    run = _runner(method, model, ds)
    base = _rss_mb()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.001)

    th = threading.Thread(target=sample)
    th.start()
    run()
    stop.set()
    th.join()
    print(json.dumps({"peak_mb": peak[0], "extra_mb": peak[0] - base}))


def _memory(method: str, model_name: str, n: int, seq: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", method, "--model", model_name, "--n", str(n),
                          "--seq", str(seq)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random-4l")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.model, a.n, a.seq)
        return
    from circuitdb.attribution.components import component_graph

    model, ds = _setup(a.model, a.n, a.seq)
    comp = component_graph(model)
    t = {m: _time(_runner(m, model, ds), a.repeats if m != "patching" else 1)
         for m in ("forward", "forward+backward", "eap", "eap-ig", "patching")}
    print(f"model {a.model}: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, d_model {model.cfg.d_model}, "
          f"{comp.n_edges} edges; batch {a.n} x {a.seq} tokens; 1 thread; median of {a.repeats}")
    for m, s in t.items():
        print(f"  {m:17s} {s * 1000:10.1f} ms")
    print(f"EAP / forward           {t['eap'] / t['forward']:6.2f}   (goal <= 5)")
    print(f"EAP / forward+backward  {t['eap'] / t['forward+backward']:6.2f}")
    print(f"EAP-IG(m=5) / EAP       {t['eap-ig'] / t['eap']:6.2f}   (goal <= 6)")
    print(f"patching(all) / EAP     {t['patching'] / t['eap']:6.1f}")
    for m in ("forward", "eap", "eap-ig", "patching"):
        mem = _memory(m, a.model, a.n, a.seq)
        print(f"peak memory {m:9s} +{mem['extra_mb']:6.1f} MB over the loaded model (process {mem['peak_mb']:.0f} MB)")
    one, eight = _memory("eap", a.model, a.n, a.seq), _memory("eap", a.model, 8 * a.n, a.seq)
    print(f"EAP peak memory, 1 batch vs 8 batches of {a.n}: +{one['extra_mb']:.1f} MB vs +{eight['extra_mb']:.1f} MB")

if __name__ == "__main__":
    main()
