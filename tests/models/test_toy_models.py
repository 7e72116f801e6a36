"""The trained toy models do what their names promise (scores computed here from raw attention patterns)."""

from __future__ import annotations

import json

import torch

from circuitdb.models import load_model
from circuitdb.models.zoo import ZOO_DIR


def _patterns_and_tokens(model, n: int = 48, half: int = 20, seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    # repeated random tokens built here (not with head_stats), avoiding BOS and <unk>
    r = torch.stack([torch.randperm(model.cfg.d_vocab - 2, generator=g)[:half] + 1 for _ in range(n)])
    toks = torch.cat([torch.zeros(n, 1, dtype=torch.long), r, r], dim=1)
    _, cache = model.run_with_cache(toks, names_filter=lambda nm: nm.endswith("hook_pattern"))
    return toks, [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.cfg.n_layers)], half


def test_toy_induction_has_prev_token_induction_and_distractor_heads() -> None:
    model = load_model("toy-induction-2l")
    toks, pats, L = _patterns_and_tokens(model)
    s = toks.shape[1]
    prev = [[sum(p[:, h, q, q - 1].mean().item() for q in range(2, s)) / (s - 2) for h in range(p.shape[1])]
            for p in pats]
    ind = [[sum(p[:, h, q, q - L + 1].mean().item() for q in range(L + 1, s)) / (s - L - 1)
            for h in range(p.shape[1])] for p in pats]
    assert max(prev[0]) >= 0.5, prev
    assert max(ind[1]) >= 0.5, ind
    distractors = [(layer, h) for layer in range(2) for h in range(model.cfg.n_heads)
                   if prev[layer][h] < 0.2 and ind[layer][h] < 0.2]
    assert distractors, (prev, ind)
    # the library's scores agree with this independent computation
    from circuitdb.attribution.head_stats import induction_scores, prev_token_scores

    assert torch.allclose(prev_token_scores(model, toks), torch.tensor(prev), atol=1e-4)
    assert torch.allclose(induction_scores(model, toks), torch.tensor(ind), atol=1e-4)
    # it copies: second-half predictions match the first half
    with torch.no_grad():
        pred = model(toks)[:, L + 1:-1].argmax(-1)
    assert (pred == toks[:, L + 2:]).float().mean() > 0.3


def test_toy_ioi_logit_diff_on_held_out_names() -> None:
    from circuitdb.models.vocab import IOI_TRAIN_NAMES, IOI_WORDS, NAMES

    model = load_model("toy-ioi")
    held = NAMES[IOI_TRAIN_NAMES:]
    g = torch.Generator().manual_seed(11)
    idx = {w: i for i, w in enumerate(IOI_WORDS)}
    rows, io, s = [], [], []
    for i in range(64):  # prompts written here, not with tasks.ioi
        a, b = (held[int(j)] for j in torch.randperm(len(held), generator=g)[:2])
        first, second = (a, b) if i % 2 else (b, a)  # ABBA / BABA, IO = a, S = b
        text = f"When {first} and {second} went to the park , {b} gave a ball to"
        rows.append([0] + [idx[w] for w in text.split()])
        io.append(idx[a])
        s.append(idx[b])
    with torch.no_grad():
        last = model(torch.tensor(rows))[:, -1]
    diff = last[torch.arange(64), torch.tensor(io)] - last[torch.arange(64), torch.tensor(s)]
    assert diff.mean() > 2, diff.mean()
    assert (diff > 0).float().mean() > 0.9


def test_train_logs_record_the_measured_scores() -> None:
    log = json.loads((ZOO_DIR / "toy-induction-2l" / "train_log.json").read_text())
    assert max(log["scores"]["prev_token_scores"][0]) >= 0.5
    assert max(log["scores"]["induction_scores"][1]) >= 0.5
    log = json.loads((ZOO_DIR / "toy-ioi" / "train_log.json").read_text())
    assert log["scores"]["logit_diff_heldout"] > 2
