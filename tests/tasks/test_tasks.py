"""Task datasets: shapes, answers that match the construction, seeds, and clear errors."""

from __future__ import annotations

import pytest
import torch

from circuitdb.errors import ConfigError
from circuitdb.models import detokenize, load_model
from circuitdb.tasks import TASKS, load_task
from circuitdb.tasks.base import PromptPairs
from circuitdb.tasks.metrics import logprob


@pytest.fixture(scope="module")
def toy_ioi():
    return load_model("toy-ioi")


@pytest.fixture(scope="module")
def toy_induction():
    return load_model("toy-induction-2l")


def test_induction_construction(toy_induction) -> None:
    ds = load_task("induction", toy_induction, n=40, seed=1, half_len=16)
    L = 16
    assert ds.clean.shape == ds.corrupted.shape == (40, 2 * L) and len(ds) == 40
    assert (ds.answer_pos == 2 * L - 1).all()
    assert torch.equal(ds.clean[:, 1:L], ds.clean[:, L + 1:])  # second copy repeats the first
    assert torch.equal(ds.corrupted[:, L + 1:], ds.clean[:, L + 1:])  # second half untouched
    assert torch.equal(ds.corrupted[:, 0], ds.clean[:, 0])
    for c, r in zip(ds.corrupted[:, 1:L + 1], ds.clean[:, 1:L + 1]):
        assert not set(c.tolist()) & set(r.tolist())  # first occurrence replaced by other tokens
    # answer: the token after the previous occurrence of the last token; wrong: the corrupted continuation
    last = ds.clean[:, -1]
    prev = [(row[:-1] == t).nonzero()[0].item() for row, t in zip(ds.clean, last)]
    assert ds.answer.tolist() == [row[p + 1].item() for row, p in zip(ds.clean, prev)]
    assert ds.wrong.tolist() == [row[p + 1].item() for row, p in zip(ds.corrupted, prev)]
    words = detokenize(toy_induction, torch.cat([ds.clean[:, 1:], ds.corrupted[:, 1:]]).flatten())
    assert not any(w.startswith("<") for w in words)  # no <unk>, no topic markers
    assert ds.meta["half_len"] == L and ds.meta["seed"] == 1
    assert torch.equal(ds.clean, load_task("induction", toy_induction, n=40, seed=1, half_len=16).clean)
    with torch.no_grad():  # the model copies: the answer is far more likely with the first occurrence intact
        assert logprob(toy_induction(ds.clean), ds).mean() > logprob(toy_induction(ds.corrupted), ds).mean() + 1.5


def test_induction_errors() -> None:
    with pytest.raises(ConfigError, match="d_vocab"):
        load_task("induction")
    assert load_task("induction", d_vocab=30, n=3, half_len=4).clean.shape == (3, 8)
    with pytest.raises(ConfigError, match="n_ctx"):
        load_task("induction", load_model("random-attn-1l"), half_len=40)
    with pytest.raises(ConfigError, match="positive"):
        load_task("induction", d_vocab=30, n=0)


def test_toy_ioi_construction(toy_ioi) -> None:
    ds = load_task("ioi", toy_ioi, n=16, seed=0, names="heldout", order="mixed")
    assert ds.clean.shape == ds.corrupted.shape == (16, 15)
    from circuitdb.models.vocab import IOI_TRAIN_NAMES, NAMES

    held = set(NAMES[IOI_TRAIN_NAMES:])
    for i in range(16):
        words = detokenize(toy_ioi, ds.clean[i])
        cwords = detokenize(toy_ioi, ds.corrupted[i])
        io, s = detokenize(toy_ioi, [ds.answer[i], ds.wrong[i]])
        assert ds.texts[i] == " ".join(words[1:])
        assert words.count(io) == 1 and words.count(s) == 2 and {io, s} <= held
        diff = [j for j in range(15) if words[j] != cwords[j]]
        assert len(diff) == 1 and words[diff[0]] == s  # only S2 changed ...
        assert cwords[diff[0]] in held - {io, s}  # ... to a third name
        assert words.index(io) < words.index(s) if i % 2 == 0 else words.index(s) < words.index(io)  # ABBA / BABA
    with torch.no_grad():
        ld = toy_ioi(ds.clean)[torch.arange(16), -1]
    assert (ld[torch.arange(16), ds.answer] > ld[torch.arange(16), ds.wrong]).float().mean() > 0.8
    assert ds.meta["names"] == "heldout" and ds.meta["task"] == "ioi"


def test_ioi_with_a_gpt2_style_tokenizer(gpt2_tok) -> None:
    tok = gpt2_tok
    ds = load_task("ioi", None, n=12, seed=3, tokenizer=tok)
    assert ds.clean.shape == (12, 15) and (ds.clean[:, 0] == tok.bos_token_id).all()
    assert all("," in t or "." in t for t in ds.texts) and all(" ," not in t for t in ds.texts)
    names = {tok.convert_ids_to_tokens(int(a)) for a in torch.cat([ds.answer, ds.wrong])}
    assert all(n.startswith(" ") for n in names) and " Xavier" not in names
    with pytest.raises(ConfigError, match="toy-ioi"):
        load_task("ioi", None, tokenizer=tok, names="heldout")
    with pytest.raises(ConfigError, match="single tokens"):
        load_task("ioi", None, tokenizer=tok, names=["Mary", "John", "Xavier"])
    with pytest.raises(ConfigError, match="tokenizer"):
        load_task("ioi", load_model("random-2l"))
    with pytest.raises(ConfigError, match="ABBA"):
        load_task("ioi", None, tokenizer=tok, order="AB")


def test_greater_than(toy_ioi, gpt2_tok) -> None:
    tok = gpt2_tok
    ds = load_task("greater-than", None, n=10, seed=0, tokenizer=tok)
    assert ds.clean.shape == ds.corrupted.shape and ds.clean.shape[1] == 13
    for i, yy in enumerate(ds.meta["years"]):
        assert ds.texts[i].endswith(f"17{yy:02d} to the year 17")
        assert tok.convert_ids_to_tokens(int(ds.answer[i])) == f"{yy + 1:02d}"
        assert tok.convert_ids_to_tokens(int(ds.wrong[i])) == f"{yy:02d}"
        assert "01" in tok.convert_ids_to_tokens(ds.corrupted[i].tolist())
    with pytest.raises(ConfigError, match="toy word-level vocabulary"):
        load_task("greater-than", toy_ioi)


def test_unknown_task_and_dataset_checks(toy_induction) -> None:
    with pytest.raises(ConfigError, match="induction, ioi"):
        load_task("nope", toy_induction)
    assert set(TASKS) == {"induction", "ioi", "greater-than", "jsonl"}
    with pytest.raises(ConfigError, match="half_len"):
        load_task("induction", toy_induction, halflen=3)
    with pytest.raises(ConfigError, match="empty"):
        PromptPairs(torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 4, dtype=torch.long),
                    torch.zeros(0, dtype=torch.long))
    ds = load_task("induction", d_vocab=200, n=2, half_len=40)
    with pytest.raises(ConfigError, match="n_ctx"):
        ds.check_model(200, toy_induction.cfg.n_ctx)
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        ds.check_model(64, 128)


def test_ioi_variable_positions_and_bbaa(toy_ioi) -> None:
    """``fillers=K`` moves the names around at a fixed length; BBAA repeats S in both opening slots; distractor names
    appear twice each, so the answer is still the only name mentioned once."""
    from circuitdb.models.vocab import NAMES

    K = 4
    ds = load_task("ioi", toy_ioi, n=30, seed=3, fillers=K, order="mixed3", distractors=1)
    assert ds.clean.shape == (30, 1 + 14 + K) and ds.meta["fillers"] == K
    answer_pos = set()
    for i in range(len(ds)):
        words = detokenize(toy_ioi, ds.clean[i].tolist())[1:]
        io, s = detokenize(toy_ioi, [int(ds.answer[i]), int(ds.wrong[i])])
        counts = {w: words.count(w) for w in words if w in NAMES}
        assert counts[io] == 1 and counts[s] == 2, (words, io, s)
        assert all(c == 2 for w, c in counts.items() if w != io), counts
        answer_pos.add(words.index(io))
        diff = (ds.clean[i] != ds.corrupted[i]).nonzero().flatten().tolist()
        assert len(diff) == 1 and detokenize(toy_ioi, [int(ds.clean[i, diff[0]])]) == [s]
    assert len(answer_pos) > 3  # the IO is not at a fixed position
    bbaa = load_task("ioi", toy_ioi, n=4, seed=0, order="BBAA")
    first = detokenize(toy_ioi, bbaa.clean[0].tolist())
    assert first[2] == first[4] == detokenize(toy_ioi, [int(bbaa.wrong[0])])[0]
    plain = load_task("ioi", toy_ioi, n=8, seed=0)
    assert "fillers" not in plain.meta and plain.clean.shape[1] == 15


def test_ioi_second_pair(toy_ioi) -> None:
    """``second_pair=N``: N more pairs of names, each mentioned once, that are not the answer; the answer is S's partner
    in S's own clause, and which clause holds S's pair varies (so "every name but S" is not the answer)."""
    from circuitdb.models.vocab import NAMES

    for n_other, fillers in ((1, 3), (2, 1)):
        ds = load_task("ioi", toy_ioi, n=40, seed=1, second_pair=n_other, fillers=fillers)
        assert ds.clean.shape == (40, 1 + 1 + 8 * (n_other + 1) + 5 + fillers) and ds.meta["second_pair"] == n_other
        clause_of_s = set()
        for i in range(len(ds)):
            words = detokenize(toy_ioi, ds.clean[i].tolist())[1:]
            io, s = detokenize(toy_ioi, [int(ds.answer[i]), int(ds.wrong[i])])
            names = [w for w in words if w in NAMES]
            assert len(names) == 2 * (n_other + 1) + 1 and names[-1] == s, words
            assert words.count(s) == 2 and all(names.count(w) == 1 for w in names if w != s), words
            i_io, i_s1 = words.index(io), words.index(s)
            assert abs(i_io - i_s1) == 2 and words[min(i_io, i_s1) + 1] == "and", words  # one pair
            clause_of_s.add(names.index(s) // 2)
            diff = (ds.clean[i] != ds.corrupted[i]).nonzero().flatten().tolist()
            assert len(diff) == 1 and detokenize(toy_ioi, [int(ds.clean[i, diff[0]])]) == [s]
        assert clause_of_s == set(range(n_other + 1))  # S's pair is first, second, ...
    with pytest.raises(ConfigError, match="second_pair takes order"):
        load_task("ioi", toy_ioi, n=2, second_pair=1, order="BBAA")


def test_ioi_extra_s_mentions(toy_ioi) -> None:
    """``s_extra=R``: 0..R more mentions of S replace fillers; the IO stays the only name mentioned once."""
    from circuitdb.models.vocab import NAMES

    ds = load_task("ioi", toy_ioi, n=40, seed=2, fillers=6, s_extra=3)
    counts = set()
    for i in range(len(ds)):
        words = detokenize(toy_ioi, ds.clean[i].tolist())[1:]
        io, s = detokenize(toy_ioi, [int(ds.answer[i]), int(ds.wrong[i])])
        assert words.count(io) == 1 and {w for w in words if w in NAMES} == {io, s}, words
        counts.add(words.count(s))
    assert counts == {2, 3, 4, 5} and ds.meta["s_extra"] == 3
