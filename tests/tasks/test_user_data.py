"""A researcher's own data and metric: answers optional and checked against the output vocabulary, several answers
per example, built-in L2/MSE, ``module:function`` metrics, and the metric protocol under exact patching (the metric
sees the real batch, with indices, whatever the batch size)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import circuitdb
from circuitdb.errors import ConfigError
from circuitdb.tasks import get_metric
from circuitdb.tasks.base import PromptPairs


def _one_output_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=6, d_head=4, n_heads=2, d_vocab=7, d_vocab_out=1,
                                  attn_only=True, act_fn="gelu", normalization_type=None, seed=0, dtype=torch.float64)
    torch.manual_seed(0)
    return HookedTransformer(cfg)


def _pairs(n: int = 6, seq: int = 5, **kw) -> PromptPairs:
    g = torch.Generator().manual_seed(1)
    return PromptPairs(torch.randint(0, 7, (n, seq), generator=g), torch.randint(0, 7, (n, seq), generator=g), **kw)


def test_answer_is_optional_and_metrics_that_need_it_say_so() -> None:
    ds = _pairs()
    assert ds.answer is None and ds.index.tolist() == list(range(6))
    logits = torch.randn(6, 5, 7)
    with pytest.raises(ConfigError, match="has no answer tokens.*kl, l2, mse"):
        get_metric("logprob")(logits, ds)
    from circuitdb.tasks.metrics import default_metric_name

    assert default_metric_name(ds) == "kl"


def test_answers_are_checked_against_the_output_vocabulary() -> None:
    model = _one_output_model()
    _pairs(answer=torch.zeros(6, dtype=torch.long)).check_fits(model)  # id 0 of 1 output: fine
    with pytest.raises(ConfigError, match=r"answer holds token id 2, outside the vocabulary \[0, 1\).*output"):
        _pairs(answer=torch.full((6,), 2)).check_fits(model)  # passed before: checked against d_vocab = 7
    with pytest.raises(ConfigError, match="clean holds token id 9"):
        PromptPairs(torch.full((2, 3), 9), torch.zeros(2, 3, dtype=torch.long)).check_fits(model)


def test_several_answers_per_example() -> None:
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    toks = torch.zeros(2, 3, dtype=torch.long)
    ds = PromptPairs(toks, toks, answer=torch.tensor([[1, 2], [3, 4]]), wrong=torch.tensor([0, 0]))
    lp = logits[:, -1].log_softmax(-1)
    want = torch.stack([torch.logsumexp(lp[0, [1, 2]], 0), torch.logsumexp(lp[1, [3, 4]], 0)])
    torch.testing.assert_close(get_metric("logprob")(logits, ds), want)
    x = logits[:, -1]
    torch.testing.assert_close(get_metric("logit_diff")(logits, ds),
                               torch.stack([x[0, [1, 2]].mean() - x[0, 0], x[1, [3, 4]].mean() - x[1, 0]]))
    sub = ds.batch(slice(1, 2))
    assert sub.answer.tolist() == [[3, 4]] and sub.index.tolist() == [1]


def test_l2_and_mse_against_hand_computation() -> None:
    clean = torch.randn(3, 4, 5, dtype=torch.float64)
    other = clean + torch.randn_like(clean)
    ds = PromptPairs(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long))
    d = (other[:, -1] - clean[:, -1]) ** 2
    for name, want in (("l2", -d.sum(-1)), ("mse", -d.mean(-1))):
        m = get_metric(name)
        assert m.needs_clean
        with pytest.raises(ConfigError, match="not prepared"):
            m(other, ds)
        torch.testing.assert_close(m.prepare(clean, ds)(other, ds), want)
        assert torch.equal(m.prepare(clean, ds)(clean, ds), torch.zeros(3, dtype=torch.float64))


def test_module_function_metric(monkeypatch) -> None:
    mod = types.ModuleType("my_metrics_mod")
    mod.first_output = lambda logits, batch: logits[:, -1, 0]
    monkeypatch.setitem(sys.modules, "my_metrics_mod", mod)
    assert get_metric("my_metrics_mod:first_output") is mod.first_output
    with pytest.raises(ConfigError, match="no callable 'nope'"):
        get_metric("my_metrics_mod:nope")
    with pytest.raises(ConfigError, match="cannot import module"):
        get_metric("no_such_module_xyz:f")


class PerExampleTarget:
    """A custom metric holding one target per example of the dataset, read through ``batch.index``; it records every
    batch it is shown."""

    def __init__(self, targets: torch.Tensor) -> None:
        self.targets = targets
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, logits: torch.Tensor, batch: PromptPairs) -> torch.Tensor:
        self.seen.append(tuple(batch.index.tolist()))
        return -(logits[:, -1, 0] - self.targets[batch.index]) ** 2


@pytest.mark.parametrize("method", ["patching", "eap-ig"])
def test_custom_metric_on_a_one_output_model_at_three_batch_sizes(method) -> None:
    model = _one_output_model()
    ds = _pairs(n=6)
    targets = torch.linspace(-1, 1, 6, dtype=torch.float64)
    graphs = []
    for bs in (1, 4, 32):
        metric = PerExampleTarget(targets)
        g = circuitdb.attribute(model, ds, method=method, metric=metric, batch_size=bs, progress=False,
                                head_stats=False)
        graphs.append(g.weight)
        assert all(len(s) <= min(bs, 6) for s in metric.seen)  # never a repeated batch
        assert {i for s in metric.seen for i in s} == set(range(6))
    for w in graphs[1:]:
        np.testing.assert_allclose(w, graphs[0], rtol=1e-9, atol=1e-12)
