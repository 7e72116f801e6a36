"""Head statistics: scores read the expected key positions; DLA components add up to the logit difference."""

from __future__ import annotations

import pytest
import torch

from circuitdb.attribution.head_stats import (
    direct_logit_attribution,
    duplicate_token_scores,
    induction_scores,
    prev_token_scores,
    repeated_random_tokens,
)
from circuitdb.errors import ConfigError
from circuitdb.models import load_model
from circuitdb.tasks.base import PromptPairs


def test_repeated_random_tokens_structure() -> None:
    t = repeated_random_tokens(50, 5, 8, seed=3)
    assert t.shape == (5, 17) and (t[:, 0] == 0).all()
    assert torch.equal(t[:, 1:9], t[:, 9:])
    assert (t[:, 1:] >= 1).all() and (t < 50).all()
    assert all(len(set(row[1:9].tolist())) == 8 for row in t)  # no chance repeats inside a half
    assert torch.equal(t, repeated_random_tokens(50, 5, 8, seed=3))
    assert not torch.equal(t, repeated_random_tokens(50, 5, 8, seed=4))
    assert repeated_random_tokens(50, 2, 4, bos=None).shape == (2, 8)
    with pytest.raises(ConfigError):
        repeated_random_tokens(50, 0, 4)


def _forced(model, layer: int, head: int, key_of):  # noqa: ANN001
    """A hook that overwrites one head's pattern with one-hot attention to key_of(q) (or BOS when None)."""

    def hook(pattern, hook):  # noqa: ANN001
        s = pattern.shape[-1]
        new = torch.zeros(s, s)
        for q in range(s):
            k = key_of(q)
            new[q, 0 if k is None else k] = 1.0
        pattern[:, head] = new
        return pattern

    return [(f"blocks.{layer}.attn.hook_pattern", hook)]


def test_scores_read_the_expected_key() -> None:
    model = load_model("random-2l")
    toks = repeated_random_tokens(model.cfg.d_vocab, 4, 6, seed=0)  # seq 13, L = 6
    L = 6
    with model.hooks(fwd_hooks=_forced(model, 0, 1, lambda q: q - 1 if q >= 1 else None)
                     + _forced(model, 1, 2, lambda q: q - L + 1 if q >= L + 1 else None)
                     + _forced(model, 1, 3, lambda q: q - L if q >= L + 1 else None)):
        prev = prev_token_scores(model, toks)
        ind = induction_scores(model, toks)
        dup = duplicate_token_scores(model, toks)
    assert prev.shape == (2, 4)
    assert prev[0, 1].item() == pytest.approx(1.0)
    assert ind[1, 2].item() == pytest.approx(1.0)
    assert dup[1, 3].item() == pytest.approx(1.0)
    assert prev[1, 2].item() < 0.5 and ind[0, 1].item() == pytest.approx(0.0) and dup[1, 2].item() == 0.0
    # the same tokens without forcing: no head is perfect
    assert prev_token_scores(model, toks).max() < 0.99


def test_induction_scores_reject_non_repeated_tokens() -> None:
    model = load_model("random-attn-1l")
    with pytest.raises(ConfigError, match="halves differ"):
        induction_scores(model, torch.arange(1, 11)[None])
    with pytest.raises(ConfigError):
        prev_token_scores(model, torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("name", ["random-attn-1l", "random-2l", "random-parallel", "random-gqa"])
def test_dla_components_sum_to_the_logit_difference(name: str) -> None:
    model = load_model(name, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, model.cfg.d_vocab, (6, 7), generator=g)
    ds = PromptPairs(clean, clean.clone(), torch.randint(0, 50, (6,), generator=g),
                     torch.randint(0, 50, (6,), generator=g), torch.tensor([6, 5, 4, 6, 6, 3]))
    dla = direct_logit_attribution(model, ds)
    assert dla.heads.shape == (model.cfg.n_layers, model.cfg.n_heads)
    comp = dla.heads.sum().item() + dla.embed + dla.bias + (0.0 if dla.mlps is None else dla.mlps.sum().item())
    assert comp == pytest.approx(dla.total, abs=1e-6)
    with torch.no_grad():
        logits = model(clean)[torch.arange(6), ds.answer_pos]
    manual = (logits[torch.arange(6), ds.answer] - logits[torch.arange(6), ds.wrong]).mean().item()
    assert dla.total == pytest.approx(manual, abs=1e-9)
    assert (dla.mlps is None) == model.cfg.attn_only


def test_dla_of_one_head_matches_zeroing_its_output_in_a_model_without_layernorm() -> None:
    model = load_model("random-attn-1l", dtype=torch.float64)
    clean = torch.randint(1, 50, (5, 6))
    ds = PromptPairs(clean, clean.clone(), torch.randint(0, 50, (5,)), torch.randint(0, 50, (5,)))
    dla = direct_logit_attribution(model, ds)

    def zero_head(z, hook):  # noqa: ANN001
        z[:, :, 2] = 0.0
        return z

    with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.attn.hook_z", zero_head)]):
        logits = model(clean)[:, -1]
    ablated = (logits[torch.arange(5), ds.answer] - logits[torch.arange(5), ds.wrong]).mean().item()
    assert dla.total - ablated == pytest.approx(dla.heads[0, 2].item(), abs=1e-9)
