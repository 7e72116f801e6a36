"""GPT-2-small-shaped feature graphs, circuitdb side by side with circuit-tracer 0.5.0 (``feature_bench.py --gpt2``).

Setup (written once under ``--cache``): a random TransformerLens model of GPT-2 small's shape (12 layers, d_model
768, 12 heads, d_mlp 3072, vocabulary 50,257, LayerNorm; seed 0) and, per width, synthetic JumpReLU transcoders on
``ln2.hook_normalized`` → ``hook_mlp_out`` (Gaussian weights, ``b_enc`` 0, one threshold per layer set to the
``1 - 64/width`` quantile of the pre-activations on 512 calibration tokens: L0 ≈ 64 per token). Both tools read the
same files (the LayerNorm of a random model is the identity, so TransformerLens 2.x's and 3.x's readings of the hook
agree). Prompts: random tokens with the BOS id first.

Each run is a fresh process, one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``), started only when
``MemAvailable`` ≥ ``--need-gib`` and killed by a watchdog above ``--limit-gib`` of resident memory. Reported: the
attribution's process CPU time and wall time, the process's peak RSS (``VmHWM``: model and transcoders included, for
both tools), stored (pruned) and raw edge counts, circuitdb's time to write the stored graph into a fresh embedded
store, and the largest relative difference of the logit rows over the features both tools visited (circuitdb with
circuit-tracer's conventions: ``zero_first_pos=True``, ``token_vectors="embed"``). Batch sizes are each tool's default
(circuit-tracer 512, circuitdb 64).

    .venv/bin/python bench/feature_bench.py --gpt2 --widths 6144,24576 --tokens 16 [--peer /tmp/ct-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CFG = {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_head": 64, "d_mlp": 3072, "n_ctx": 1024, "d_vocab": 50257,
       "act_fn": "gelu_new", "normalization_type": "LN", "seed": 0, "model_name": "gpt2-shape-random"}
BOS, L0 = 50256, 64


def _status(pid: int | str, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field in bytes (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _model():  # noqa: ANN202
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.set_num_threads(1)
    return HookedTransformer(HookedTransformerConfig(**CFG, device="cpu"))


def setup(cache: Path, widths: list[int], lengths: list[int]) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    cache.mkdir(parents=True, exist_ok=True)
    (cache / "config.json").write_text(json.dumps(CFG))
    if not (cache / "model.safetensors").is_file():
        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in _model().state_dict().items()}, str(cache / "model.safetensors"))
    model = _model()
    model.load_state_dict(load_file(str(cache / "model.safetensors")))
    for n in lengths:
        toks = torch.randint(0, BOS, (n,), generator=torch.Generator().manual_seed(n))
        toks[0] = BOS
        (cache / f"tokens_{n}.json").write_text(json.dumps(toks.tolist()))
    calib = torch.randint(0, BOS, (4, 128), generator=torch.Generator().manual_seed(99))
    calib[:, 0] = BOS
    with torch.no_grad():
        _, act = model.run_with_cache(calib, names_filter=lambda h: h.endswith("ln2.hook_normalized"))
    d = CFG["d_model"]
    for w in widths:
        out = cache / f"w{w}"
        if (out / f"layer_{CFG['n_layers'] - 1}.safetensors").is_file():
            continue
        out.mkdir(exist_ok=True)
        g = torch.Generator().manual_seed(w)
        for layer in range(CFG["n_layers"]):
            W_enc = torch.randn(d, w, generator=g) / d ** 0.5
            pre = act[f"blocks.{layer}.ln2.hook_normalized"].reshape(-1, d) @ W_enc
            thr = torch.quantile(pre.flatten()[: 2 ** 24 - 1], 1 - L0 / w).item()
            save_file({"W_enc": W_enc, "b_enc": torch.zeros(w), "W_dec": torch.randn(w, d, generator=g) / w ** 0.5,
                       "b_dec": torch.zeros(d), "threshold": torch.full((w,), thr)},
                      str(out / f"layer_{layer}.safetensors"))


def _dictionaries(cache: Path, width: int) -> list:
    from safetensors.torch import load_file

    from circuitdb.dictionaries.base import Dictionary

    out = []
    for layer in range(CFG["n_layers"]):
        t = load_file(str(cache / f"w{width}" / f"layer_{layer}.safetensors"))
        out.append(Dictionary(id=f"jr{layer}-w{width}", kind="transcoder", hook_in=f"blocks.{layer}.ln2.hook_normalized",
                              hook_out=f"blocks.{layer}.hook_mlp_out", activation="jumprelu", ln_convention="tl2", **t))
    return out


def ours(cache: Path, width: int, n_tok: int, cap: int, heads: bool, prune: str = "influence") -> dict:
    """circuitdb's side (run in a fresh process)."""
    import torch
    from safetensors.torch import load_file

    from circuitdb.attribution.features import attribute_features
    from circuitdb.attribution.replacement import ReplacementModel
    from circuitdb.store.embedded import EmbeddedStore

    t_setup = time.perf_counter()
    model = _model()
    model.load_state_dict(load_file(str(cache / "model.safetensors")))
    dicts = _dictionaries(cache, width)
    toks = torch.tensor(json.loads((cache / f"tokens_{n_tok}.json").read_text()))
    setup_s, rss_setup = time.perf_counter() - t_setup, _status("self", "VmRSS")
    conv = {"zero_first_pos": True, "token_vectors": "embed"}  # circuit-tracer's conventions, to compare the rows
    c0, w0 = time.process_time(), time.perf_counter()
    g = attribute_features(model, toks, dicts, max_feature_nodes=cap, heads=heads, progress=False, graph_id="b",
                           prune=None if prune == "none" else prune, **conv)
    attr_cpu, attr_wall = time.process_time() - c0, time.perf_counter() - w0
    hwm_attr = _status("self", "VmHWM")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "db") as store:
        s0 = time.perf_counter()
        store.write_graph(g)
        write_s = time.perf_counter() - s0
    pr = g.meta.get("pruning", {"unpruned_edges": g.n_edges, "unpruned_nodes": g.n_nodes})
    out = {"tool": "circuitdb", "width": width, "tokens": n_tok, "cap": cap, "heads": heads, "prune": prune,
           "setup_s": setup_s, "rss_after_setup": rss_setup,
           "attr_cpu_s": attr_cpu, "attr_wall_s": attr_wall, "write_s": write_s, "peak_rss_attr": hwm_attr,
           "active": g.meta["params"]["n_active_features"], "kept_nodes": g.n_nodes, "kept_edges": g.n_edges,
           "raw_edges": pr["unpruned_edges"], "raw_nodes": pr["unpruned_nodes"]}
    if not heads and prune != "none":  # the logit rows over the visited features, for the agreement check (after the timing)
        rm = ReplacementModel.build(model, toks, _dictionaries(cache, width), **conv)
        logits = g.nodes.loc[g.nodes.kind == "logit", "token"].astype(int).tolist()
        rows = rm.rows([("logit", rm.P - 1, t, -1) for t in logits]).double().numpy()
        S = rm.sources
        out["logits"] = logits
        out["logit_rows"] = {f"F{l}:{f}@{p}": rows[:, j].tolist() for j, (k, l, f, p) in
                             enumerate(zip(S.kind, S.layer, S.feature, S.pos)) if k == "feature"}
    return out


def _run(cmd: list[str], need: int, limit: int) -> dict:
    """Run one measurement process under the memory guard; its JSON line plus its peak RSS."""
    waited = 0
    while _available() < need:
        if waited > 600:
            return {"error": f"MemAvailable stayed below {need / 2**30:.0f} GiB for 10 minutes"}
        time.sleep(10)
        waited += 10
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:  # files: a full pipe would block it
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        peak, killed, loads, t0 = 0, False, [], time.perf_counter()
        while proc.poll() is None:
            peak = max(peak, _status(proc.pid, "VmHWM"))
            loads.append(os.getloadavg()[0])
            if _status(proc.pid, "VmRSS") > limit:
                cpu = _cpu(proc.pid)  # setup included: the time until the kill is a lower bound
                proc.kill()
                killed = True
            time.sleep(0.2)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    seen = {"peak_rss": peak, "run_wall_s": time.perf_counter() - t0,  # the machine's 1-minute load over the run
            "load_mean": float(np.mean(loads)) if loads else None, "load_max": max(loads, default=None)}
    if killed:
        return {"error": f"killed by the watchdog above {limit / 2**30:.0f} GiB RSS", "cpu_s_until_kill": cpu, **seen}
    if proc.returncode:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}", **seen}
    return {**json.loads(out.strip().splitlines()[-1]), **seen}


def agreement(a: dict, b: dict) -> tuple[float, int]:
    """Max |ours - theirs| / max |theirs| over the logit rows of the features both visited (same logits)."""
    common_logits = [t for t in a["logits"] if t in b["logits"]]
    ia = [a["logits"].index(t) for t in common_logits]
    ib = [b["logits"].index(t) for t in common_logits]
    keys = sorted(set(a["logit_rows"]) & set(b["logit_rows"]))
    if not keys or not ia:
        return float("nan"), 0
    x = np.array([[a["logit_rows"][k][i] for i in ia] for k in keys])
    y = np.array([[b["logit_rows"][k][i] for i in ib] for k in keys])
    return float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)), len(keys)


def clt_check(folder: Path, peer: str) -> dict:
    """Cross-layer transcoders against circuit-tracer's own CrossLayerTranscoder: a tiny random model (3 layers,
    d_model 16, vocabulary 20, float32) and a random CLT in circuit-tracer's folder layout, read by both tools; every
    feature → feature and feature → logit entry compared (circuitdb with circuit-tracer's conventions)."""
    import torch
    from safetensors.torch import save_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuitdb.attribution.features import attribute_features
    from circuitdb.dictionaries import load_dictionaries
    from circuitdb.dictionaries.train import random_dictionaries

    cfg = {"n_layers": 3, "n_heads": 2, "d_model": 16, "d_head": 8, "d_mlp": 32, "n_ctx": 12, "d_vocab": 20,
           "act_fn": "gelu", "normalization_type": "LN", "seed": 0, "model_name": "tiny-clt"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    with torch.no_grad():
        for q in model.parameters():
            q.mul_(4.0 if q.dim() > 1 else 1.0)
    save_file({k: v.contiguous() for k, v in model.named_parameters()}, str(folder / "model.safetensors"))
    dicts = random_dictionaries(model, "transcoder", width=24, seed=3, cross_layer=True, transcoder_in="hook_resid_mid")
    clt = folder / "clt"
    clt.mkdir(exist_ok=True)
    for i, d in enumerate(dicts):
        save_file({f"W_enc_{i}": d.W_enc.T.contiguous(), f"b_enc_{i}": d.b_enc, f"b_dec_{i}": d.b_dec},
                  str(clt / f"W_enc_{i}.safetensors"))
        dec = d.W_dec[:, None] if d.W_dec_later is None else torch.cat([d.W_dec[:, None], d.W_dec_later], 1)
        save_file({f"W_dec_{i}": dec.contiguous()}, str(clt / f"W_dec_{i}.safetensors"))
    toks = torch.randint(1, 20, (9,), generator=torch.Generator().manual_seed(1))
    toks[0] = 0
    (folder / "tokens.json").write_text(json.dumps(toks.tolist()))
    g = attribute_features(model, toks, load_dictionaries(str(clt), model), heads=False, prune=None, progress=False,
                           zero_first_pos=True, token_vectors="embed", graph_id="clt")
    keys = g.keys
    kind = g.nodes["kind"].to_numpy()
    tgt_key = np.where(kind == "logit", [k.split("@")[0] for k in keys], keys)
    mine: dict = {}
    for s_, t_, w in zip(g.src, g.dst, g.weight):
        if kind[s_] == "feature" and kind[t_] in ("feature", "logit"):
            mine.setdefault(tgt_key[t_], {})[keys[s_]] = w
    out = subprocess.run([peer, str(Path(__file__).parent / "feature_peer.py"), "--clt-check", str(folder)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1]}
    theirs = json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    worst, scale, n = 0.0, 0.0, 0
    for t in set(mine) | set(theirs):
        a, b = mine.get(t, {}), theirs.get(t, {})
        for s_ in set(a) | set(b):
            worst = max(worst, abs(a.get(s_, 0.0) - b.get(s_, 0.0)))
            scale = max(scale, abs(b.get(s_, 0.0)))
            n += 1
    return {"entries": n, "targets": len(theirs), "max_abs_diff": worst, "rel": worst / max(scale, 1e-30),
            "features_ours": int((kind == "feature").sum())}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="feature_bench.py --gpt2")
    p.add_argument("--cache", default="/tmp/circuitdb-gpt2-bench")
    p.add_argument("--widths", default="6144,24576")
    p.add_argument("--tokens", default="16")
    p.add_argument("--cap", type=int, default=4096)
    p.add_argument("--peer", default="/tmp/ct-venv/bin/python", help="python of a venv with circuit-tracer 0.5.0")
    p.add_argument("--tools", default="circuitdb,circuit-tracer,heads", help="also: raw (circuitdb, prune=None)")
    p.add_argument("--peer-batch", type=int, help="circuit-tracer's batch_size (default: its own, 512); lower it "
                   "to fit a long prompt in memory")
    p.add_argument("--need-gib", type=float, default=12)
    p.add_argument("--limit-gib", type=float, default=11)
    p.add_argument("--one", nargs="+", metavar="WIDTH TOKENS CAP HEADS [PRUNE]", help=argparse.SUPPRESS)
    p.add_argument("--clt-check", action="store_true", help="CLT edges against circuit-tracer's CrossLayerTranscoder")
    a = p.parse_args(argv)
    cache = Path(a.cache)
    if a.clt_check:
        print(json.dumps(clt_check(cache / "clt-check", a.peer)))
        return
    if a.one:
        print(json.dumps(ours(cache, int(a.one[0]), int(a.one[1]), int(a.one[2]), a.one[3] == "1", *a.one[4:])))
        return
    widths, lengths = [int(w) for w in a.widths.split(",")], [int(n) for n in a.tokens.split(",")]
    tools = a.tools.split(",")
    setup(cache, widths, lengths)
    need, limit = int(a.need_gib * 2**30), int(a.limit_gib * 2**30)
    me = [sys.executable, str(Path(__file__).parent / "feature_bench.py"), "--gpt2", "--cache", str(cache)]
    peer = [a.peer, str(Path(__file__).parent / "feature_peer.py"), str(cache)]
    for n in lengths:
        for w in widths:
            res = {}
            if "circuitdb" in tools:
                res["ours"] = _run(me + ["--one", str(w), str(n), str(a.cap), "0"], need, limit)
            if "circuit-tracer" in tools:
                res["peer"] = _run(peer + [str(w), str(n), str(a.cap), *([str(a.peer_batch)] if a.peer_batch else [])],
                                   need, limit)
            if "heads" in tools:
                res["heads"] = _run(me + ["--one", str(w), str(n), str(a.cap), "1"], need, limit)
            if "raw" in tools:  # every non-zero entry stored: the memory the pruning saves
                res["raw"] = _run(me + ["--one", str(w), str(n), str(a.cap), "0", "none"], need, limit)
            if "logit_rows" in res.get("ours", {}) and "logit_rows" in res.get("peer", {}):
                res["agreement"], res["agreement_features"] = agreement(res["ours"], res["peer"])
            for r in res.values():
                if isinstance(r, dict):
                    r.pop("logit_rows", None)
            print(json.dumps({"width": w, "tokens": n, **res}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
