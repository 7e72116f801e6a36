"""Cost and ground-truth recovery of ``eap-ig+patching`` against EAP, EAP-IG and exact patching.

Edge ROC AUC (tie-aware) on the compiled tracr fixtures (tests/science/fixtures/tracr, zero ablation, logit
difference) and wall time of each method as a multiple of EAP's, in one run, on one CPU thread; then the same
timings on the trained toy models (patch ablation). Run: ``.venv/bin/python bench/verified_bench.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "science"))

import circuitdb  # noqa: E402
from tracr_fixtures import PROGRAMS, dataset, edge_auc, load_tracr, true_edges  # noqa: E402

METHODS = ("eap", "eap-ig", "patching", "eap-ig+patching")


def timed(model, ds, method: str, repeat: int = 3, **kw):  # noqa: ANN001, ANN201
    best, g = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        g = circuitdb.attribute(model, ds, method=method, progress=False, head_stats=False, **kw)
        best = min(best, time.perf_counter() - t)
    return g, best


def main() -> None:
    torch.set_num_threads(1)
    out = sys.stdout
    out.write("| program | edges | true | " + " | ".join(f"{m} AUC" for m in METHODS) + " | " +
              " | ".join(f"{m} time/EAP" for m in METHODS[1:]) + " | verified edges |\n")
    out.write("|---" * (3 + 2 * len(METHODS)) + "|\n")
    for name in PROGRAMS:
        model, ds = load_tracr(name), dataset(name)
        res = {m: timed(model, ds, m, ablation="zero", metric="logit_diff") for m in METHODS}
        g = res["eap-ig+patching"][0]
        out.write(f"| {name} | {g.n_edges} | {len(true_edges(name))} | " + " | ".join(f"{edge_auc(res[m][0], name):.3f}" for m in METHODS)
                  + " | " + " | ".join(f"{res[m][1] / res['eap'][1]:.1f}×" for m in METHODS[1:])
                  + f" | {g.meta['scores']['n_verified']} |\n")
    out.write("\n| model | task | edges | " + " | ".join(f"{m} time/EAP" for m in METHODS[1:]) +
              " | verified edges |\n|---|---|---|---|---|---|---|\n")
    for mname, task in (("toy-induction-2l", "induction"), ("toy-ioi", "ioi")):
        model = circuitdb.load_model(mname)
        ds = circuitdb.load_task(task, model, n=32, seed=0)
        res = {m: timed(model, ds, m, repeat=1) for m in METHODS}
        g = res["eap-ig+patching"][0]
        out.write(f"| {mname} | {task} (32 prompts) | {g.n_edges} | "
                  + " | ".join(f"{res[m][1] / res['eap'][1]:.1f}×" for m in METHODS[1:])
                  + f" | {g.meta['scores']['n_verified']} |\n")


if __name__ == "__main__":
    main()
