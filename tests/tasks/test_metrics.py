"""Metrics against hand computation; the KL prepare protocol; name errors."""

from __future__ import annotations

import pytest
import torch

from circuitdb.errors import ConfigError
from circuitdb.tasks import get_metric
from circuitdb.tasks.base import PromptPairs
from circuitdb.tasks.metrics import KLMetric, kl_metric


def _batch() -> tuple[torch.Tensor, PromptPairs]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 7, generator=g, dtype=torch.float64)
    toks = torch.zeros(3, 4, dtype=torch.long)
    return logits, PromptPairs(toks, toks, torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([3, 1, 2]))


def test_logit_diff_and_logprob_by_hand() -> None:
    logits, b = _batch()
    ld = get_metric("logit_diff")(logits, b)
    lp = get_metric("logprob")(logits, b)
    for i, (p, a, w) in enumerate([(3, 1, 4), (1, 2, 5), (2, 3, 6)]):
        assert ld[i].item() == pytest.approx((logits[i, p, a] - logits[i, p, w]).item())
        expect = logits[i, p, a] - torch.logsumexp(logits[i, p], 0)
        assert lp[i].item() == pytest.approx(expect.item())
    assert get_metric("logit-diff") is get_metric("logit_diff")
    no_wrong = PromptPairs(b.clean, b.corrupted, b.answer)
    with pytest.raises(ConfigError, match="logprob"):
        get_metric("logit_diff")(logits, no_wrong)


def test_kl_needs_prepare_and_is_zero_on_clean() -> None:
    logits, b = _batch()
    kl = get_metric("kl")
    assert isinstance(kl, KLMetric) and kl.needs_clean
    with pytest.raises(ConfigError, match="prepare"):
        kl(logits, b)
    ready = kl.prepare(logits, b)
    assert not ready.needs_clean
    assert torch.allclose(ready(logits, b), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    other = logits + torch.randn_like(logits)
    val = kl_metric(logits, b)(other, b)
    rows = torch.arange(3)
    p = logits[rows, b.answer_pos].log_softmax(-1)
    q = other[rows, b.answer_pos].log_softmax(-1)
    assert torch.allclose(val, -(p.exp() * (p - q)).sum(-1))
    assert (val < 0).all()


def test_callables_pass_and_unknown_names_list_options() -> None:
    f = lambda logits, batch: logits[:, -1, 0]  # noqa: E731
    assert get_metric(f) is f
    with pytest.raises(ConfigError, match="kl, l2, logit_diff, logprob, mse"):
        get_metric("accuracy")
    with pytest.raises(ConfigError):
        get_metric(3)
