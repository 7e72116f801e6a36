"""Indirect object identification (IOI) prompts, for real tokenizers and for the toy-ioi vocabulary.

Clean: ``When Mary and John went to the store , John gave a drink to`` → answer ``Mary`` (the indirect object, IO),
wrong = ``John`` (the subject, S). ``ABBA`` puts IO first in the opening pair, ``BABA`` puts S first; ``order="mixed"``
alternates. Corrupted: the second subject mention (S2) is replaced by a third name C (``..., Bob gave a drink to``),
so the prompt no longer says who the IO is; clean and corrupted prompts have equal length. Every template has 14
words; with single-token names / places / objects / verbs every prompt of a dataset has the same token length.

Variable-position variant (options, off by default; used to train ``toy-ioi-v2``): ``fillers=K`` inserts K random
non-name words per prompt, split at random between the start of the prompt and the gap before the second clause's
name (so the name positions vary while the length stays 14 + K); ``order="BBAA"`` puts the repeated name in both
opening slots and the IO in the second clause (``When John and John went to the store , Mary gave a drink to`` →
``Mary``: toy semantics "the name mentioned once"; corrupted: the second opening John → C), and ``order="mixed3"``
cycles ABBA, BABA, BBAA. With these no position gives the repeated name away: it must be found by matching tokens.

Second-pair variant (``second_pair=1``, used to train toy-ioi): ``When Mary and John went to the store , Bob and
Kate were at the park , John gave a drink to`` → ``Mary``. Bob and Kate are mentioned once but are not the answer, so
"copy every name in the prompt, suppress S" leaves three names tied; the answer is S's partner in S's own pair.

Toy vocabularies (``tokenizer.circuitdb_toy_vocab``): words are joined by single spaces (``store , John``). Real
tokenizers (GPT-2 style): punctuation is attached (``store, John``) and names, places, objects and verbs that are not
one token (with their leading space) are dropped from the pools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from circuitdb.errors import ConfigError
from circuitdb.models import vocab as V
from circuitdb.tasks.base import PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

TEMPLATES: list[str] = [
    "When {A} and {B} went to the {P} , {S} {V} a {O} to",
    "After {A} and {B} went to the {P} , {S} {V} a {O} to",
    "While {A} and {B} were at the {P} , {S} {V} a {O} to",
    "Then , {A} and {B} saw the {P} . {S} {V} a {O} to",
]
ORDERS = ("ABBA", "BABA", "mixed", "BBAA", "mixed3")
# second_pair prompts: "{opener} {pair clause} , {pair clause} , {S} {V} a {O} to"; every clause has 7 words
OPENERS: list[str] = ["When", "After", "While"]
PAIR_CLAUSES: list[str] = ["{X} and {Y} went to the {P}", "{X} and {Y} were at the {P}", "{X} and {Y} got to the {P}"]
NAME_SETS = ("train", "heldout", "all")


def generate_words(g: torch.Generator, n: int, names: list[str], places: list[str], objects: list[str],
                   verbs: list[str], templates: list[str], order: str = "mixed", fillers: int = 0,
                   filler_words: list[str] | None = None, distractors: int = 0, second_pair: int = 0,
                   s_extra: int = 0) -> list[tuple[list[str], list[str], str, str, int]]:
    """``n`` tuples ``(clean_words, corrupted_words, io, s, template_index)``.

    ``fillers``: number of random ``filler_words`` inserted per prompt (split at random between the start and the
    position before ``{S}``); 0 (default) draws nothing extra from ``g``. ``distractors``: up to that many other
    names, each mentioned twice, replace filler words (so the IO stays the only name mentioned once).
    ``s_extra``: 0 to that many more mentions of S (drawn per prompt) replace filler words, so a head that copies
    every name copies mostly S. ``second_pair=N``: the prompts of :func:`_second_pair_words` with N non-answer pairs instead of ``templates``.
    """
    if order not in ORDERS:
        raise ConfigError(f"unknown IOI order {order!r}; valid options: {', '.join(ORDERS)}")
    if len(names) < 3:
        raise ConfigError(f"IOI needs at least 3 names, got {len(names)}: {names}")
    if fillers < 0 or (fillers > 0 and not filler_words):
        raise ConfigError(f"IOI fillers must be >= 0 and need filler_words; got fillers={fillers}")
    if second_pair:
        if order not in ("ABBA", "BABA", "mixed"):
            raise ConfigError(f"IOI second_pair takes order ABBA, BABA or mixed; got {order!r}")
        return _second_pair_words(g, n, names, places, objects, verbs, order, fillers, filler_words or [],
                                  int(second_pair))
    out = []
    pick = lambda seq: seq[int(torch.randint(0, len(seq), (1,), generator=g))]  # noqa: E731
    for i in range(n):
        io, s, c = (names[int(j)] for j in torch.randperm(len(names), generator=g)[:3])
        ti = int(torch.randint(0, len(templates), (1,), generator=g))
        kind = {"mixed": ("ABBA", "BABA")[i % 2], "mixed3": ("ABBA", "BABA", "BBAA")[i % 3]}.get(order, order)
        if kind == "BBAA":
            fill = dict(A=s, P=pick(places), V=pick(verbs), O=pick(objects), S=io)
            clean = templates[ti].format(B=s, **fill).split()
            corrupt = templates[ti].format(B=c, **fill).split()
        else:
            a, b = (io, s) if kind == "ABBA" else (s, io)
            fill = dict(A=a, B=b, P=pick(places), V=pick(verbs), O=pick(objects))
            clean = templates[ti].format(S=s, **fill).split()
            corrupt = templates[ti].format(S=c, **fill).split()
        if fillers:
            pre = int(torch.randint(0, fillers + 1, (1,), generator=g))
            words = [pick(filler_words) for _ in range(fillers)]
            pairs = min(distractors, fillers // 2, len(names) - 3)
            if pairs:  # distractor names, each mentioned twice among the fillers
                others = [x for x in names if x not in (io, s, c)]
                ds = [others[int(j)] for j in torch.randperm(len(others), generator=g)[:pairs]]
                slots = torch.randperm(fillers, generator=g)[:2 * pairs].tolist()
                for j, pos in enumerate(slots):
                    words[pos] = ds[j // 2]
            if s_extra:  # 0..s_extra more mentions of S among the other fillers
                free = [j for j in torch.randperm(fillers, generator=g).tolist() if words[j] in filler_words]
                for pos in free[:int(torch.randint(0, s_extra + 1, (1,), generator=g))]:
                    words[pos] = s
            cut = templates[ti].split().index("{S}")  # the second clause's name slot
            ins = lambda ws: words[:pre] + ws[:cut] + words[pre:] + ws[cut:]  # noqa: E731
            clean, corrupt = ins(clean), ins(corrupt)
        out.append((clean, corrupt, io, s, ti))
    return out


def _second_pair_words(g: torch.Generator, n: int, names: list[str], places: list[str], objects: list[str],
                       verbs: list[str], order: str, fillers: int = 0, filler_words: list[str] = (),
                       n_other: int = 1) -> list[tuple[list[str], list[str], str, str, int]]:
    """IOI prompts with ``n_other`` more pairs of names, each name mentioned once, that are not the answer: ``When
    Mary and John went to the store , Bob and Kate were at the park , John gave a drink to`` → ``Mary`` (S's partner
    in S's own pair). The pairs' order, S's place in its pair and each pair's clause wording are drawn at random, so
    only S's identity says which once-mentioned name is the answer. ``fillers``: that many ``filler_words`` split at
    random between the start and the gaps after each clause (so no position gives a pair away). Corrupted: S2 → a
    name not in the prompt. ``template_index``: the opener's index."""
    if len(names) < 4 + 2 * n_other:
        raise ConfigError(f"IOI second_pair={n_other} needs at least {4 + 2 * n_other} names, got {len(names)}")
    rand = lambda k: int(torch.randint(0, k, (1,), generator=g))  # noqa: E731
    clause = lambda x, y: PAIR_CLAUSES[rand(len(PAIR_CLAUSES))].format(  # noqa: E731
        X=x, Y=y, P=places[rand(len(places))]).split()
    out = []
    for i in range(n):
        io, s, c, *others = (names[int(j)] for j in torch.randperm(len(names), generator=g)[:3 + 2 * n_other])
        kind = ("ABBA", "BABA")[i % 2] if order == "mixed" else order
        clauses = [clause(io, s) if kind == "ABBA" else clause(s, io)]
        clauses += [clause(others[2 * j], others[2 * j + 1]) for j in range(n_other)]
        clauses = [clauses[int(j)] for j in torch.randperm(len(clauses), generator=g)]
        oi = rand(len(OPENERS))
        cuts = sorted(rand(fillers + 1) for _ in range(len(clauses))) + [fillers]
        fill = [filler_words[rand(len(filler_words))] for _ in range(fillers)]
        words = [*fill[:cuts[0]], OPENERS[oi]]
        for j, cl in enumerate(clauses):
            words += [*cl, ",", *fill[cuts[j]:cuts[j + 1]]]
        tail = [verbs[rand(len(verbs))], "a", objects[rand(len(objects))], "to"]
        out.append((words + [s, *tail], words + [c, *tail], io, s, oi))
    return out


def filler_pool() -> list[str]:
    """Words inserted by ``fillers=``: places, objects and filler words (no names, verbs or punctuation)."""
    return [*V.PLACES, *V.OBJECTS, *(w for w in V.FILLERS if w not in (",", "."))]


def _pretty(words: list[str]) -> str:
    return " ".join(words).replace(" ,", ",").replace(" .", ".")


def _single(tok, word: str) -> int | None:  # noqa: ANN001
    ids = tok(" " + word, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 and ids[0] != tok.unk_token_id else None


def ioi_task(model: "HookedTransformer | None" = None, *, n: int = 64, seed: int = 0, order: str = "mixed",
             names: str | list[str] = "all", templates: list[str] | None = None, tokenizer=None,  # noqa: ANN001
             fillers: int = 0, distractors: int = 0, second_pair: int = 0,
             s_extra: int = 0) -> PromptPairs:
    """``n`` IOI prompt pairs tokenized for ``model`` (or ``tokenizer``); see module doc.

    ``fillers``: random non-name words inserted per prompt (variable name positions, see module doc); ``order`` also
    accepts ``"BBAA"`` and ``"mixed3"``. ``second_pair=N``: prompts with N more, non-answer pairs of names (module doc).

    ``names``: a list of names, or for toy vocabularies ``"train"`` (names seen in toy-ioi IOI training),
    ``"heldout"`` (names never used in IOI training) or ``"all"``.
    """
    tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tok is None:
        raise ConfigError("task 'ioi' needs a model with a tokenizer (toy-ioi, gpt2, ...) or tokenizer=")
    toy = bool(getattr(tok, "circuitdb_toy_vocab", False))
    if isinstance(names, str):
        if names not in NAME_SETS:
            raise ConfigError(f"unknown IOI name set {names!r}; valid options: {', '.join(NAME_SETS)} or a list")
        pool = {"train": V.NAMES[: V.IOI_TRAIN_NAMES], "heldout": V.NAMES[V.IOI_TRAIN_NAMES:], "all": V.NAMES}[names]
        if names != "all" and not toy:
            raise ConfigError(f"IOI name set {names!r} only exists for the toy-ioi vocabulary; use 'all' or a list")
    else:
        pool = list(names)
    templates = list(templates or TEMPLATES)
    keep = lambda ws: [w for w in ws if _single(tok, w) is not None]  # noqa: E731
    name_pool, places, objects, verbs = keep(pool), keep(V.PLACES), keep(V.OBJECTS), keep(V.VERBS)
    dropped = sorted(set(pool) - set(name_pool))
    if dropped and not isinstance(names, str):
        raise ConfigError(f"IOI names {dropped} are not single tokens for this tokenizer")
    if not (places and objects and verbs):
        raise ConfigError("the tokenizer has no single-token places/objects/verbs for the IOI templates")
    g = torch.Generator().manual_seed(seed)
    fill_pool = keep(filler_pool()) if fillers else None
    rows = generate_words(g, n, name_pool, places, objects, verbs, templates, order, fillers, fill_pool,
                          distractors, second_pair, s_extra)
    render = (lambda ws: " ".join(ws)) if toy else _pretty
    enc = lambda text: [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]  # noqa: E731
    clean = [enc(render(r[0])) for r in rows]
    corrupted = [enc(render(r[1])) for r in rows]
    lengths = {len(x) for x in clean + corrupted}
    if len(lengths) != 1:
        raise ConfigError(f"IOI prompts tokenize to different lengths {sorted(lengths)} with this tokenizer; pass "
                          "templates= with templates of one token length")
    unk = tok.unk_token_id
    if unk is not None and any(unk in x for x in clean + corrupted):
        raise ConfigError("IOI template words are missing from the tokenizer's vocabulary")
    ds = PromptPairs(
        torch.tensor(clean), torch.tensor(corrupted),
        torch.tensor([_single(tok, r[2]) for r in rows]), torch.tensor([_single(tok, r[3]) for r in rows]),
        None, name="ioi", texts=tuple(render(r[0]) for r in rows),
        meta={"task": "ioi", "n": n, "seed": seed, "order": order,
              "names": names if isinstance(names, str) else list(names), "n_templates": len(templates),
              "corruption": "S2 replaced by a third name", "metric": "logit_diff",
              **({"fillers": fillers} if fillers else {}), **({"distractors": distractors} if distractors else {}),
              **({"second_pair": int(second_pair)} if second_pair else {}),
              **({"s_extra": s_extra} if s_extra else {})},
    )
    if model is not None:
        ds.check_fits(model)
    return ds
