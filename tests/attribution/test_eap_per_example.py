"""Per-example EAP / EAP-IG scores from one batched pass equal one run per example (examples do not interact).

Every case compares ``eap_scores(dataset, per_example=True)`` (batches of 4 over 7 examples: one full batch and one
ragged one) with ``eap_scores(dataset[i:i+1])`` run alone for each ``i``, in float64, for both methods, every
ablation, per-position mode, and metrics whose value depends on the example (per-example answers, answer positions,
a weight read from the prompt's own tokens, KL to the example's own clean output).
"""

from __future__ import annotations

import pytest
import torch

from circuitdb.attribution.eap import EAPConfig, eap_scores
from circuitdb.errors import AttributionError
from circuitdb.models import load_model
from circuitdb.tasks.base import PromptPairs
from circuitdb.tasks.metrics import get_metric, logit_diff

N, SEQ = 7, 6


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return load_model("random-2l", dtype="float64")


def pairs(model, seed: int = 1) -> PromptPairs:  # noqa: ANN001
    """Random pairs with a different answer, wrong token and answer position per example."""
    g = torch.Generator().manual_seed(seed)
    V = model.cfg.d_vocab
    clean = torch.randint(0, V, (N, SEQ), generator=g)
    corrupted = clean.clone()
    corrupted[:, :-1] = torch.randint(0, V, (N, SEQ - 1), generator=g)
    pos = torch.tensor([5, 3, 4, 5, 2, 5, 1])
    return PromptPairs(clean, corrupted, torch.randint(0, V, (N,), generator=g), torch.randint(0, V, (N,), generator=g),
                       pos)


def token_weighted(logits: torch.Tensor, batch: PromptPairs) -> torch.Tensor:
    """The answer's logit at the answer position, weighted by a number read from the example's own first token."""
    rows = torch.arange(len(batch))
    return logits[rows, batch.answer_pos, batch.answer] * (1.0 + (batch.clean[:, 0] % 3).to(logits.dtype))


def one_by_one(model, ds: PromptPairs, metric, cfg: EAPConfig) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    single = EAPConfig(method=cfg.method, ig_steps=cfg.ig_steps, ablation=cfg.ablation, batch_size=1,
                       per_position=cfg.per_position, progress=False)
    runs = [eap_scores(model, ds.batch(slice(i, i + 1)), metric, single, mean_over=ds) for i in range(len(ds))]
    return torch.stack([r.scores for r in runs]), torch.tensor([r.clean_metric for r in runs], dtype=torch.float64)


@pytest.mark.parametrize("method,steps", [("eap", 1), ("eap-ig", 3)])
@pytest.mark.parametrize("ablation", ["patch", "zero", "mean"])
@pytest.mark.parametrize("metric", [logit_diff, token_weighted], ids=["logit_diff", "token_weighted"])
def test_batched_per_example_equals_one_run_per_example(model, method, steps, ablation, metric) -> None:  # noqa: ANN001
    ds = pairs(model)
    cfg = EAPConfig(method=method, ig_steps=steps, ablation=ablation, batch_size=4, per_example=True, progress=False)
    res = eap_scores(model, ds, metric, cfg)
    want, want_clean = one_by_one(model, ds, metric, cfg)
    assert res.scores.shape == want.shape and res.scores.shape[0] == N
    assert float(want.abs().max()) > 1e-3  # the scores are not trivially zero
    torch.testing.assert_close(res.scores, want, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(res.clean_values, want_clean, atol=1e-10, rtol=1e-9)
    # the examples differ, so a mix-up of examples (or a batch sum) would show
    assert float((want[0] - want[1]).abs().max()) > 1e-3
    # and their mean is the ordinary (dataset-mean) result
    mean = eap_scores(model, ds, metric, EAPConfig(method=method, ig_steps=steps, ablation=ablation, batch_size=4,
                                                   progress=False))
    torch.testing.assert_close(res.scores.mean(0), mean.scores, atol=1e-10, rtol=1e-9)


def test_per_position_and_kl_per_example(model) -> None:  # noqa: ANN001
    ds = pairs(model, seed=2)
    for metric, method in ((logit_diff, "eap"), (get_metric("kl"), "eap-ig")):
        cfg = EAPConfig(method=method, ig_steps=2, ablation="patch", batch_size=4, per_position=True,
                        per_example=True, progress=False)
        res = eap_scores(model, ds, metric, cfg)
        want, _ = one_by_one(model, ds, metric, cfg)
        assert res.scores.shape == (N, SEQ) + want.shape[2:]
        assert float(want.abs().max()) > 1e-4
        torch.testing.assert_close(res.scores, want, atol=1e-10, rtol=1e-9)
    assert res.baseline_values.shape == (N,) and bool((res.baseline_values < 0).all())  # KL of corrupted ≥ 0


def test_mean_ablation_is_the_datasets_mean_not_the_batchs(model) -> None:  # noqa: ANN001
    """Per-example graphs under mean ablation use one mean over all of ``mean_over`` (default: the dataset), so the
    batch size does not change them; a prompt's own mean would make its differences zero."""
    ds = pairs(model, seed=3)
    kw = dict(method="eap-ig", ig_steps=2, ablation="mean", per_example=True, progress=False)
    a = eap_scores(model, ds, logit_diff, EAPConfig(batch_size=2, **kw)).scores
    b = eap_scores(model, ds, logit_diff, EAPConfig(batch_size=7, **kw)).scores
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    own = eap_scores(model, ds.batch(slice(0, 1)), logit_diff, EAPConfig(batch_size=1, **kw)).scores
    assert float(own.abs().max()) < 1e-12 < float(a[0].abs().max())  # mean of one prompt = the prompt itself
    sub = eap_scores(model, ds.batch(slice(2, 5)), logit_diff, EAPConfig(batch_size=2, **kw), mean_over=ds).scores
    torch.testing.assert_close(sub, a[2:5], atol=1e-10, rtol=1e-9)


def test_a_metric_that_couples_examples_is_refused(model) -> None:  # noqa: ANN001
    def centred(logits: torch.Tensor, batch: PromptPairs) -> torch.Tensor:
        v = logit_diff(logits, batch)
        return v - v.mean()  # every example's value depends on the others

    ds = pairs(model)
    with pytest.raises(AttributionError, match="'centred' couples the examples of a batch"):
        eap_scores(model, ds, centred, EAPConfig(method="eap", per_example=True, batch_size=4, progress=False))
    eap_scores(model, ds, centred, EAPConfig(method="eap", batch_size=4, progress=False))  # a batch mean is fine
