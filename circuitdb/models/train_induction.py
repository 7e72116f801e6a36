"""Training data and evaluation for ``toy-induction-2l`` (see :mod:`circuitdb.models.train` for the driver).

The training mixture makes *two* attention rules useful, so not every head ends up in the induction mechanism:

1. **Copying** (induction): each sequence holds a segment that is repeated later at a random offset; the second copy
   is predictable only by a previous-token head (layer 0) feeding an induction head (layer 1).
2. **Topic** (a fixed-position rule): position 1 holds one of ``n_topics`` topic tokens, and every other token of the
   sequence is drawn from that topic's subset of the vocabulary. Every position gains by reading position 1, so a
   head that attends to position 1 from everywhere pays off. Such a head has low previous-token and induction
   scores: it is a distractor for circuit discovery.

Token ids: 0 = ``<bos>``, ``1..n_topics`` = topic tokens, ``n_topics+1 .. d_vocab-2`` = content tokens,
``d_vocab-1`` = ``<unk>`` (never used in training).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass(frozen=True)
class InductionData:
    d_vocab: int = 64
    n_ctx: int = 64
    n_topics: int = 8
    topic_size: int = 27
    min_rep: int = 4
    max_rep: int = 20
    p_repeat: float = 0.9
    p_topic: float = 1.0  # fraction of sequences that follow the topic rule (others: uniform content tokens,
    #                       with a content token instead of a topic token at position 1)

    def topic_sets(self, seed: int) -> Int[Tensor, "topic size"]:
        g = torch.Generator().manual_seed(seed + 7919)
        n_content = self.d_vocab - 2 - self.n_topics
        return torch.stack([torch.randperm(n_content, generator=g)[: self.topic_size] for _ in range(self.n_topics)]) \
            + self.n_topics + 1

    def batch(self, g: torch.Generator, n: int, topic_sets: Tensor) -> Int[Tensor, "n seq"]:
        s = self.n_ctx
        topic = torch.randint(0, self.n_topics, (n,), generator=g)
        pick = torch.randint(0, self.topic_size, (n, s - 2), generator=g)
        body = topic_sets[topic][torch.arange(n)[:, None], pick]
        uniform = torch.randint(self.n_topics + 1, self.d_vocab - 1, (n, s - 2), generator=g)
        use_topic = torch.rand(n, generator=g) < self.p_topic
        body = torch.where(use_topic[:, None], body, uniform)
        first = topic + 1
        if self.p_topic < 1.0:  # uniform sequences get a content token, not a topic token, at position 1
            other = torch.randint(self.n_topics + 1, self.d_vocab - 1, (n,), generator=g)
            first = torch.where(use_topic, first, other)
        seq = torch.cat([torch.zeros(n, 1, dtype=torch.long), first[:, None], body], dim=1)
        lens = torch.randint(self.min_rep, self.max_rep + 1, (n,), generator=g)
        rep = torch.rand(n, generator=g) < self.p_repeat
        u = torch.rand(n, 2, generator=g)
        for i in range(n):
            if not rep[i]:
                continue
            L = int(lens[i])
            a = 2 + int(u[i, 0] * (s - 2 * L - 2 + 1))  # first copy in [2, s-2L]
            b = a + L + int(u[i, 1] * (s - L - (a + L) + 1))  # second copy after the first
            seq[i, b:b + L] = seq[i, a:a + L]
        return seq


def loss_fn(model, tokens: Tensor) -> Tensor:  # noqa: ANN001
    """Next-token cross-entropy on positions 2.. (the topic token at position 1 is not predictable)."""
    logits = model(tokens)
    logp = logits[:, 1:-1].log_softmax(-1)
    return -logp.gather(-1, tokens[:, 2:, None]).mean()


def evaluate(model, seed: int = 123) -> dict:  # noqa: ANN001
    """Per-head scores on repeated random tokens (the test's definition) plus copying accuracy."""
    from circuitdb.models.attention_scores import induction_scores, prev_token_scores, repeated_random_tokens

    cfg = model.cfg
    half = (cfg.n_ctx - 1) // 2
    toks = repeated_random_tokens(cfg.d_vocab - 1, 64, half, seed=seed, bos=0)  # excludes <unk>
    with torch.no_grad():
        logits = model(toks)
    pred = logits[:, half + 1:-1].argmax(-1)
    acc = (pred == toks[:, half + 2:]).float().mean().item()
    store = {}
    hook = lambda p, hook: store.__setitem__(hook.layer(), p[:, :, 2:, 1].mean(dim=(0, 2)))  # noqa: E731
    with torch.no_grad(), model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), hook)]):
        model(toks, return_type=None)
    prev = prev_token_scores(model, toks)
    ind = induction_scores(model, toks)
    return {
        "prev_token_scores": [[round(float(x), 4) for x in row] for row in prev],
        "induction_scores": [[round(float(x), 4) for x in row] for row in ind],
        "pos1_scores": [[round(float(x), 4) for x in store[layer]] for layer in sorted(store)],
        "copy_accuracy_second_half": round(acc, 4),
    }


def save_checkpoint(model, cfg_dict: dict, words: list[str], out: Path, step: int, index: int) -> Path:  # noqa: ANN001
    """Save the weights after ``step`` optimizer steps as a model folder ``out/step-NNNNNN`` that ``load_model``
    reads (config.json with TransformerLens' checkpoint fields, model.safetensors, vocab.json)."""
    from safetensors.torch import save_file

    from circuitdb.models import vocab as V

    folder = Path(out) / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    cfg = {**cfg_dict, "from_checkpoint": True, "checkpoint_label_type": "step", "checkpoint_value": int(step),
           "checkpoint_index": int(index)}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    V.save_vocab(words, folder / "vocab.json")
    return folder
