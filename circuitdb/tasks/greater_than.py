"""Greater-than (Hanna et al. 2023): ``The war lasted from the year 17YY to the year 17`` → a year ending > YY.

Clean prompts use YY in ``[02, 98]``; the corrupted prompt uses ``YY = 01`` (so every ending is "greater").
``answer`` = the two-digit token ``YY+1`` (the smallest correct ending) and ``wrong`` = the token ``YY`` (the largest
incorrect one), so ``logit_diff`` measures the threshold; ``meta["years"]`` lists each prompt's YY for a
probability-difference metric (sum of p over endings > YY minus the rest). Needs a real tokenizer in which the
two-digit endings are single tokens and ``17YY`` splits into ``17`` + ``YY`` (GPT-2 style); toy vocabularies raise
ConfigError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from circuitdb.errors import ConfigError
from circuitdb.tasks.base import PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

NOUNS = ["war", "dynasty", "reign", "campaign", "expedition", "conflict", "occupation", "trial", "siege", "strike"]
TEMPLATE = "The {noun} lasted from the year {century}{yy:02d} to the year {century}"


def greater_than_task(model: "HookedTransformer | None" = None, *, n: int = 64, seed: int = 0, century: int = 17,
                      tokenizer=None) -> PromptPairs:  # noqa: ANN001
    """``n`` greater-than prompt pairs (see module doc)."""
    tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tok is None or getattr(tok, "circuitdb_toy_vocab", False):
        name = getattr(getattr(model, "cfg", None), "model_name", "model")
        raise ConfigError(f"task 'greater-than' needs a real tokenizer with two-digit year tokens (e.g. gpt2); "
                          f"{name!r} has {'a toy word-level vocabulary' if tok is not None else 'no tokenizer'}")
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    two = {yy: ids(f"{yy:02d}") for yy in range(100)}
    ok_years = []
    base_len = None
    for yy in range(2, 99):
        if len(two[yy]) != 1 or len(two[yy + 1]) != 1:
            continue
        p = ids(TEMPLATE.format(noun=NOUNS[0], century=century, yy=yy))
        c = ids(TEMPLATE.format(noun=NOUNS[0], century=century, yy=1))
        if len(p) == len(c) and two[yy][0] in p:
            ok_years.append(yy)
            base_len = len(c)
    if not ok_years or base_len is None:
        raise ConfigError("task 'greater-than': this tokenizer does not split years as century + two-digit token")
    nouns = [w for w in NOUNS if len(ids(TEMPLATE.format(noun=w, century=century, yy=1))) == base_len]
    g = torch.Generator().manual_seed(seed)
    years = [ok_years[int(i)] for i in torch.randint(0, len(ok_years), (n,), generator=g)]
    picks = [nouns[int(i)] for i in torch.randint(0, len(nouns), (n,), generator=g)]
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    texts = [TEMPLATE.format(noun=w, century=century, yy=yy) for w, yy in zip(picks, years)]
    clean = torch.tensor([bos + ids(t) for t in texts])
    corrupted = torch.tensor([bos + ids(TEMPLATE.format(noun=w, century=century, yy=1)) for w in picks])
    ds = PromptPairs(
        clean, corrupted, torch.tensor([two[yy + 1][0] for yy in years]), torch.tensor([two[yy][0] for yy in years]),
        None, name="greater-than", texts=tuple(texts),
        meta={"task": "greater-than", "n": n, "seed": seed, "century": century, "years": years,
              "corruption": "YY = 01", "metric": "logit_diff"},
    )
    if model is not None:
        ds.check_fits(model)
    return ds
