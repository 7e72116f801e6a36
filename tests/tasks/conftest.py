"""Task-test fixtures: a GPT-2-style tokenizer (leading-space word tokens, ' 17' + '32' years) built offline for the task tests."""

from __future__ import annotations

from circuitdb.models import vocab as V


def gpt2_like_tokenizer():  # noqa: ANN201
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|endoftext|>", "<unk>"]
    words += [" " + w for w in V.NAMES if w not in ("Xavier", "Yara")]  # two "multi-token" names
    words += [" " + w for w in V.PLACES + V.OBJECTS + V.VERBS + V.FILLERS if w not in (",", ".")]
    words += ["When", "After", "While", "Then", "The", ",", ".", " 17", " war", " lasted", " from", " year",
              " dynasty", " reign"]
    words += [f"{i:02d}" for i in range(100)]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[A-Za-z]+| ?\d\d|[^\sA-Za-z\d]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<unk>", name_or_path="gpt2-like")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gpt2_tok():
    return gpt2_like_tokenizer()
