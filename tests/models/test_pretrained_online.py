"""The pretrained path (HookedTransformer.from_pretrained) — runs only where the Hugging Face hub is reachable.

It runs in a subprocess without the test suite's HF_HUB_OFFLINE setting (huggingface_hub reads it at import time).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from circuitdb.models import hub_reachable

SCRIPT = """
import torch
from circuitdb.models import load_model, tokenize, detokenize
from circuitdb.tasks import load_task
from circuitdb.tasks.metrics import logit_diff
m = load_model("gpt2")
ids = tokenize(m, "When Mary and John went to the store, John gave a drink to")
assert ids[0].item() == m.tokenizer.bos_token_id, ids
assert "".join(detokenize(m, ids[1:])) == "When Mary and John went to the store, John gave a drink to"
ds = load_task("ioi", m, n=16)
with torch.no_grad():
    ld = logit_diff(m(ds.clean), ds).mean().item()
gt = load_task("greater-than", m, n=8)
print("OK", m.cfg.n_layers, ld, gt.clean.shape)
assert ld > 1.0, ld
"""


@pytest.mark.online
@pytest.mark.slow
def test_gpt2_loads_from_the_hub() -> None:
    if not hub_reachable(timeout=2.0):
        pytest.skip("huggingface.co is not reachable")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK 12" in res.stdout
