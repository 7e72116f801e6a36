"""``attribute_prompts``: one graph per prompt from batched passes equals ``attribute`` on that prompt alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitdb.attribution.api import attribute, attribute_prompts
from circuitdb.errors import ConfigError
from circuitdb.models import load_model
from circuitdb.tasks import load_task

IGNORED_META = ("created_at",)


def _same(a, b, atol: float) -> None:  # noqa: ANN001
    assert a.diff(b, atol=atol, meta=False) == []
    ma = {k: v for k, v in a.meta.items() if k not in IGNORED_META}
    mb = {k: v for k, v in b.meta.items() if k not in IGNORED_META}
    sa, sb = ma.pop("scores"), mb.pop("scores")
    assert ma == mb
    assert sa.keys() == sb.keys() and all(abs(sa[k] - sb[k]) <= atol * (1 + abs(sb[k])) for k in sa)
    for col in ("prev_token_score", "induction_score", "duplicate_token_score", "direct_logit"):
        np.testing.assert_allclose(a.nodes[col].to_numpy(), b.nodes[col].to_numpy(), atol=atol, rtol=1e-5)


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_each_graph_equals_attribute_on_its_prompt(method: str) -> None:
    model = load_model("toy-induction-2l")
    ds = load_task("induction", model, n=7, seed=3, half_len=6)
    kw = dict(method=method, metric="logprob", ig_steps=2, batch_size=4, progress=False)
    graphs = list(attribute_prompts(model, ds, **kw))
    assert len(graphs) == 7 and len({g.id for g in graphs}) == 7
    for i, g in enumerate(graphs):
        _same(g, attribute(model, ds.batch(slice(i, i + 1)), **kw), atol=2e-5)
    assert np.abs(graphs[0].weight - graphs[1].weight).max() > 1e-3  # the prompts' graphs differ


def test_ioi_per_position_float64_and_ids() -> None:
    model = load_model("toy-ioi", dtype="float64")
    ds = load_task("ioi", model, n=5, seed=1)
    kw = dict(method="eap", metric="logit_diff", batch_size=3, per_position=True, progress=False)
    graphs = list(attribute_prompts(model, ds, graph_ids=[f"g{i}" for i in range(5)], **kw))
    assert [g.id for g in graphs] == [f"g{i}" for i in range(5)]
    for i, g in enumerate(graphs):
        _same(g, attribute(model, ds.batch(slice(i, i + 1)), graph_id=f"g{i}", **kw), atol=1e-10)


def test_mean_ablation_uses_the_whole_dataset() -> None:
    model = load_model("toy-ioi", dtype="float64")
    ds = load_task("ioi", model, n=6, seed=2)
    kw = dict(method="eap", metric="logit_diff", ablation="mean", progress=False, head_stats=False)
    a = list(attribute_prompts(model, ds, batch_size=2, **kw))
    b = list(attribute_prompts(model, ds, batch_size=6, **kw))
    for x, y in zip(a, b):
        assert np.abs(x.weight - y.weight).max() < 1e-10 and np.abs(x.weight).max() > 1e-3
        assert x.meta["params"]["mean_over"] == {"dataset": ds.name, "n": 6, "seq_len": ds.seq_len}
    with pytest.raises(ConfigError, match="unknown per-prompt attribution method 'patching'"):
        next(attribute_prompts(model, ds, method="patching"))
    with pytest.raises(ConfigError, match="6 prompts but 2 graph ids"):
        next(attribute_prompts(model, ds, method="eap", graph_ids=["a", "b"]))
