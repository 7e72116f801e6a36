"""On a CUDA device: component graphs (EAP, EAP-IG, exact patching) equal the CPU graph in float64, and in half
precision stay within its rounding (measured on the CPU: bfloat16 2.2e-3, float16 1.9e-4 of the largest |score| on
toy-induction-2l, top-20 edges 19/20 the same). Skipped where there is no CUDA."""

from __future__ import annotations

import os

import pytest
import torch

import circuitdb

DEVICE = os.environ.get("CIRCUITDB_TEST_DEVICE", "cuda")  # e.g. cpu: this test's logic without a GPU
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")


def _weights(g):  # noqa: ANN001, ANN202
    return dict(zip(zip(g.keys[g.src], g.keys[g.dst], g.channel), g.weight))


@pytest.fixture(scope="module")
def reference():
    return {m: circuitdb.attribute("toy-induction-2l", "induction", method=m, n=16, progress=False, dtype="float64",
                                   graph_id="g") for m in ("eap", "eap-ig", "patching")}


@pytest.mark.parametrize("method", ["eap", "eap-ig", "patching"])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4), ("bfloat16", 2e-2), ("float16", 2e-3)])
def test_component_graph_on_cuda_matches_cpu_float64(reference, method, dtype, rtol):
    ref = reference[method]
    g = circuitdb.attribute("toy-induction-2l", "induction", method=method, n=16, progress=False, dtype=dtype,
                            device=DEVICE, graph_id="g")
    a, b = _weights(ref), _weights(g)
    assert set(a) == set(b)
    scale = max(abs(v) for v in a.values())
    assert max(abs(a[k] - b[k]) for k in a) <= rtol * scale
    top = lambda w: set(sorted(w, key=lambda k: -abs(w[k]))[:20])  # noqa: E731
    assert len(top(a) & top(b)) >= (18 if dtype in ("bfloat16", "float16") else 20)
