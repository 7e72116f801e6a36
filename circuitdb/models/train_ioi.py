"""Training data and evaluation for ``toy-ioi`` (see :mod:`circuitdb.models.train` for the driver).

Mixture per batch:
- IOI prompts from :mod:`circuitdb.tasks.ioi` templates with the *training* names only (``NAMES[:IOI_TRAIN_NAMES]``);
  loss = cross-entropy of the IO name at the last position.
- "Plain" word sequences (fraction ``p_plain``): random words of the whole vocabulary, names over-represented, with
  a repeated segment; loss = next-token cross-entropy on every position. These are the only sequences where the
  held-out names appear, so their embeddings learn to be copied and matched, but never in an IOI prompt.
Evaluation: mean logit difference IO − S on IOI prompts with held-out names (the number the test checks).

Variable positions (``toy-ioi-v2``; off by default): ``fillers_max=K`` draws one filler count k ∈ [0, K] per batch
and inserts k random non-name words into every IOI prompt of the batch (see ``fillers`` in
:func:`circuitdb.tasks.ioi.generate_words`); ``order`` is the generator's name order (``"mixed3"`` adds BBAA prompts,
where the repeated name comes first). The plain sequences take the IOI rows' length; ``plain_copy`` makes that
fraction of them whole-sequence repeats ``[BOS] r r`` (a strong induction / copying signal for every name,
held-out names included); ``second_pair`` (toy-ioi) is the probability that a batch's IOI prompts name a second
pair that is not the answer (:func:`circuitdb.tasks.ioi.generate_words`), which "copy every name, suppress S" cannot
solve; ``name_next`` makes the word after every name of a plain sequence "and" or a verb, so
every name (held-out ones included) gets an "is a name" feature that IOI can use to find names at varying positions.

Guided roles (``toy-ioi-circuit``): ``guide={"duplicate_token": [[0, 0]], ...}`` adds, for every listed head, the
cross-entropy of its attention at its role's positions on the IOI rows (``duplicate_token`` S2→S1,
``s_inhibition`` END→S2, ``name_mover`` END→IO; positions from :func:`role_positions`), times ``guide_weight``. Only
those heads' attention is told where to look; what they write, and every other head, is learned from the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from circuitdb.errors import ConfigError
from circuitdb.models import vocab as V


@dataclass(frozen=True)
class IOIData:
    p_plain: float = 0.3
    seq_len: int = 15  # BOS + 14 template words
    fillers_max: int = 0  # > 0: a random number of filler words per batch (variable name positions)
    order: str = "mixed"  # IOI name order of the generator ("mixed3": ABBA, BABA, BBAA)
    plain_copy: float = 0.0  # fraction of the plain sequences that are [BOS] r r (whole-sequence repeat)
    distractors: int = 0  # IOI prompts: up to this many other names mentioned twice among the fillers
    name_next: bool = False  # plain sequences: the word after a name is "and" or a verb (teaches "is a name")
    second_pair: float = 0.0  # probability that a batch's IOI prompts have more, non-answer pairs of names
    pairs_max: int = 1  # such a batch has 1..pairs_max non-answer pairs (one count per batch)
    s_extra: int = 0  # IOI prompts with fillers: 0..s_extra more mentions of S among them (per prompt)
    guide: dict = field(default_factory=dict)  # role -> [[layer, head], ...]: attention targets (module doc)
    guide_weight: float = 1.0  # weight of each guided head's attention cross-entropy

    def __post_init__(self) -> None:
        bad = sorted(set(self.guide) - set(GUIDE_ROLES))
        if bad:
            raise ConfigError(f"unknown guided IOI role(s) {bad}; valid options: {', '.join(GUIDE_ROLES)}")

    def batch(self, g: torch.Generator, n: int) -> tuple[Tensor, Tensor, dict[str, Tensor], "IOIData"]:
        """``(tokens [n, seq], is_plain [n], role positions of the IOI rows (first in the batch), self)``: what
        :func:`loss_fn` takes."""
        from circuitdb.tasks.ioi import TEMPLATES, filler_pool, generate_words

        idx = {w: i for i, w in enumerate(V.IOI_WORDS)}
        n_plain = int(round(n * self.p_plain))
        k = int(torch.randint(0, self.fillers_max + 1, (1,), generator=g)) if self.fillers_max else 0
        pair2 = int(torch.randint(1, self.pairs_max + 1, (1,), generator=g)) if self.second_pair and bool(
            torch.rand(1, generator=g) < self.second_pair) else 0
        rows = generate_words(g, n - n_plain, V.NAMES[: V.IOI_TRAIN_NAMES], V.PLACES, V.OBJECTS, V.VERBS, TEMPLATES,
                              self.order, k, filler_pool(), self.distractors, pair2, self.s_extra)
        ioi = torch.tensor([[0] + [idx[w] for w in r[0]] + [idx[r[2]]] for r in rows])  # prompt + answer
        roles = role_positions(ioi[:, :-1], ioi[:, -1], torch.tensor([idx[r[3]] for r in rows]))
        s = ioi.shape[1]  # the plain sequences take the IOI rows' length
        name_ids = torch.tensor([idx[w] for w in V.NAMES])
        words = torch.randint(1, len(V.IOI_WORDS) - 1, (n_plain, s), generator=g)
        names = name_ids[torch.randint(0, len(name_ids), (n_plain, s), generator=g)]
        plain = torch.where(torch.rand(n_plain, s, generator=g) < 0.5, names, words)
        plain[:, 0] = 0
        if self.name_next:
            after = torch.tensor([idx[w] for w in ["and", *V.VERBS]])
            pick = after[torch.randint(0, len(after), (n_plain, s), generator=g)]
            is_name = torch.isin(plain, name_ids)
            for i in range(1, s):  # left to right: a word forced after a name is not a name
                nxt = is_name[:, i - 1] & (plain[:, i - 1] != 0)
                plain[:, i] = torch.where(nxt, pick[:, i], plain[:, i])
                is_name[:, i] &= ~nxt
        n_copy = int(round(n_plain * self.plain_copy))
        half = (s - 1) // 2
        plain[:n_copy, 1 + half:1 + 2 * half] = plain[:n_copy, 1:1 + half]
        for i in range(n_copy, n_plain):
            L = int(torch.randint(2, 6, (1,), generator=g))
            a = int(torch.randint(1, s - 2 * L + 1, (1,), generator=g))
            b = int(torch.randint(a + L, s - L + 1, (1,), generator=g))
            plain[i, b:b + L] = plain[i, a:a + L]
        tokens = torch.cat([ioi, plain])
        is_plain = torch.cat([torch.zeros(len(ioi), dtype=torch.bool), torch.ones(n_plain, dtype=torch.bool)])
        return tokens, is_plain, roles, self


GUIDE_ROLES = ("duplicate_token", "s_inhibition", "name_mover")
# (query, key) position pair of each guided role, as columns of role_positions()
_ROLE_QK = {"duplicate_token": ("s2", "s1"), "s_inhibition": ("end", "s2"), "name_mover": ("end", "io")}


def role_positions(prompts: Int[Tensor, "n seq"], io: Int[Tensor, " n"],
                   s: Int[Tensor, " n"]) -> dict[str, Int[Tensor, " n"]]:
    """Per IOI prompt (``[n, seq]``, BOS first; ``io`` / ``s``: the IO and S token ids): the positions of IO (its one
    mention), S1 / S2 (S's first and last mention) and END (the last position, where the answer is predicted)."""
    pos = torch.arange(prompts.shape[1]).expand_as(prompts)
    is_s = prompts == s[:, None]
    return {"io": torch.where(prompts == io[:, None], pos, -1).max(1).values,
            "s1": torch.where(is_s, pos, prompts.shape[1]).min(1).values,
            "s2": torch.where(is_s, pos, -1).max(1).values,
            "end": torch.full((len(prompts),), prompts.shape[1] - 1)}


def loss_fn(model, batch: tuple) -> Tensor:  # noqa: ANN001
    tokens, is_plain, roles, data = batch
    patterns: dict[int, Tensor] = {}

    def grab(pattern: Tensor, hook) -> None:  # noqa: ANN001
        patterns[hook.layer()] = pattern

    layers = sorted({int(lh[0]) for heads in data.guide.values() for lh in heads})
    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", grab) for layer in layers]):
        logits = model(tokens[:, :-1])
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # [n, seq]
    ioi_loss = nll[~is_plain, -1].mean()
    plain_loss = nll[is_plain].mean() if bool(is_plain.any()) else nll.new_zeros(())
    r = torch.arange(len(roles["io"]))
    guide_loss = nll.new_zeros(())
    for role, heads in data.guide.items():
        q, k = (roles[x] for x in _ROLE_QK[role])
        for layer, head in heads:
            p = patterns[int(layer)][r, int(head), q, k]  # the IOI rows come first in the batch
            guide_loss = guide_loss - torch.log(p + 1e-6).mean()
    return ioi_loss + plain_loss + data.guide_weight * guide_loss


def evaluate(model, seed: int = 123, fillers: int = 0, order: str = "mixed",  # noqa: ANN001
             second_pair: int = 0) -> dict:
    """Scores on the default IOI prompts; with ``fillers`` / ``order`` set, also on that variant (keys ``*_var``);
    with ``second_pair=N``, also on prompts with 1..N non-answer pairs (keys ``*_pair1`` ...)."""
    from circuitdb.tasks.ioi import ioi_task
    from circuitdb.tasks.metrics import logit_diff

    out = {}
    variants = [("", {})]
    if fillers or order != "mixed":
        variants.append(("_var", dict(fillers=fillers, order=order)))
    if second_pair:
        variants += [(f"_pair{k}", dict(second_pair=k)) for k in range(1, int(second_pair) + 1)]
    for suffix, kw in variants:
        for names in ("train", "heldout"):
            ds = ioi_task(model, n=256, seed=seed, names=names, **kw)
            with torch.no_grad():
                ld = logit_diff(model(ds.clean), ds)
                ldc = logit_diff(model(ds.corrupted), ds)
            out[f"logit_diff_{names}{suffix}"] = round(float(ld.mean()), 4)
            out[f"accuracy_{names}{suffix}"] = round(float((ld > 0).float().mean()), 4)
            out[f"logit_diff_corrupted_{names}{suffix}"] = round(float(ldc.mean()), 4)
    return out
