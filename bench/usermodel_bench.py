"""Benchmark of what a user's model and task cost around the attribution (printed as ratios; not part of the tests).

- A plain forward pass with the hook flags that only slow a model down (``use_attn_result``, ``use_split_qkv_input``)
  against the same model as ``load_model`` returns it (flags off): why loading switches them off.
- Head statistics on graph nodes (attention scores + DLA) against the EAP call they decorate: the old way (three
  forwards on repeated random tokens of the whole vocabulary, BOS included) and the new (one forward on the task's
  own clean prompts), both as a fraction of EAP.

Modest shapes, one CPU thread, best of ``--repeats``. Usage: ``python bench/usermodel_bench.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time


def _best(fn, k: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    k = ap.parse_args().repeats
    import torch

    torch.set_num_threads(1)
    import circuitdb
    from circuitdb.attribution import head_stats as hs
    from circuitdb.models import attention_scores as sc

    fast = circuitdb.load_model("random-4l")
    slow = circuitdb.load_model("random-4l", keep_hook_flags=True)
    slow.cfg.use_attn_result, slow.cfg.use_split_qkv_input = True, True
    toks = torch.randint(0, fast.cfg.d_vocab, (32, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = _best(lambda: fast(toks), k), _best(lambda: slow(toks), k)
    print(f"random-4l forward [32 x 64]: flags off {a * 1e3:.1f} ms, use_attn_result + use_split_qkv_input "
          f"{b * 1e3:.1f} ms: {b / a:.2f}x")
    for name in ("toy-induction-2l", "random-4l"):
        m = circuitdb.load_model(name)
        ds = circuitdb.load_task("induction", m, n=32)
        cfg = m.cfg
        half = max(2, min(20, (cfg.n_ctx - 1) // 2))

        def old() -> None:
            rnd = sc.repeated_random_tokens(cfg.d_vocab, n=16, half_len=half, seed=0)
            for fn in (sc.prev_token_scores, sc.induction_scores, sc.duplicate_token_scores):
                fn(m, rnd)
            hs.direct_logit_attribution(m, ds)

        def new() -> None:
            sc.text_pattern_scores(m, ds.clean)
            hs.direct_logit_attribution(m, ds)

        eap = _best(lambda: circuitdb.attribute(m, ds, method="eap", progress=False, head_stats=False), k)
        t_old, t_new = _best(old, k), _best(new, k)
        print(f"{name} (induction, 32 pairs): EAP {eap * 1e3:.1f} ms; head stats old {t_old / eap:.2f}x of EAP, "
              f"new (task prompts) {t_new / eap:.2f}x of EAP")


if __name__ == "__main__":
    main()
