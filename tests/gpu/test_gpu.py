"""On a CUDA device: feature graphs in float32 and bfloat16 (float32 accumulation) agree with the CPU float64 graph;
dictionaries and batches live on the model's device. Skipped where there is no CUDA."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

sys.path.insert(0, str(Path(__file__).parents[1] / "attribution"))
from feature_fixtures import prompt, tiny_model  # noqa: E402

from circuitdb.attribution.features import attribute_features  # noqa: E402
from circuitdb.attribution.replacement import ReplacementModel  # noqa: E402
from circuitdb.dictionaries import load_dictionaries  # noqa: E402
from circuitdb.dictionaries.train import random_dictionaries  # noqa: E402


def _weights(g):  # noqa: ANN001, ANN202
    return dict(zip(zip(g.keys[g.src], g.keys[g.dst]), g.weight))


@pytest.fixture(scope="module")
def setup():
    model = tiny_model()
    return model, random_dictionaries(model, "transcoder", width=64, seed=3)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10), ("bfloat16", 5e-2)])
def test_cuda_graph_matches_cpu_float64(setup, dtype, rtol):
    model, dicts = setup
    ref = _weights(attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False))
    g = attribute_features(model, prompt(), dicts, heads=False, prune=None, progress=False, device="cuda",
                           dtype=dtype)
    assert g.meta["params"]["device"].startswith("cuda")
    got = _weights(g)
    scale = max(abs(v) for v in ref.values())
    common = set(ref) & set(got)
    assert len(common) >= 0.9 * len(ref)
    assert max(abs(ref[k] - got[k]) for k in common) <= rtol * scale


def test_everything_on_the_model_device(setup):
    model, dicts = setup
    cuda = tiny_model().to("cuda")
    d = load_dictionaries(dicts, cuda)
    assert all(x.W_enc.device.type == "cuda" for x in d)
    rm = ReplacementModel.build(cuda, prompt(), d, dtype=torch.bfloat16)
    assert rm.dtype == torch.float32 and rm.W_U_centred.device.type == "cuda"
    assert all(a.dec.device.type == "cuda" for a in rm.active)


def test_heads_and_pruning_on_cuda(setup):
    model, dicts = setup
    cpu = attribute_features(model, prompt(), dicts, heads=True, progress=False, graph_id="g")
    gpu = attribute_features(model, prompt(), dicts, heads=True, progress=False, graph_id="g", device="cuda")
    assert cpu.diff(gpu, atol=1e-9, meta=False) == []
    assert np.isfinite(gpu.weight).all()
