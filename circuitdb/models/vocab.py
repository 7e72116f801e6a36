"""Word-level vocabularies of the toy models, and a real HuggingFace tokenizer built from them.

A toy vocabulary is a list of words; the word's index is its token id. Id 0 is always ``<bos>``, the last id is
``<unk>``; words written ``<...>`` are special tokens (see :func:`special_ids`). Text is tokenized by splitting on whitespace (``"Mary gave a drink to"`` → 5 tokens); the tokenizer
prepends ``<bos>`` like GPT-2-style TransformerLens models do, so ``model.to_tokens`` / ``model.to_string`` /
``model.to_str_tokens`` work on toy models.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

BOS = "<bos>"
UNK = "<unk>"

# toy-induction-2l (64 tokens): <bos>, 8 topic markers <t0>..<t7>, 54 content words (52 letters, "0", "1"), <unk>.
# Words in angle brackets are special: tasks do not draw them as random content tokens.
INDUCTION_WORDS: list[str] = [BOS, *(f"<t{i}>" for i in range(8)), *string.ascii_uppercase,
                              *string.ascii_lowercase, "0", "1", UNK]

# toy-ioi: names (the first IOI_TRAIN_NAMES are used for IOI training; the rest are held out), places, objects,
# verbs and filler words.
NAMES: list[str] = [
    "Mary", "John", "Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate",
    "Leo", "Mia", "Nick", "Olga", "Paul", "Quinn", "Rose", "Sam", "Tina", "Uma", "Victor", "Wendy", "Xavier",
    "Yara", "Zoe", "Adam", "Beth", "Chris", "Diana",
]
IOI_TRAIN_NAMES = 24  # names[24:] are held out of IOI training
PLACES: list[str] = ["store", "park", "school", "office", "garden", "station", "beach", "market"]
OBJECTS: list[str] = ["drink", "book", "ball", "letter", "gift", "key", "ring", "apple"]
VERBS: list[str] = ["gave", "handed", "sent", "passed", "showed", "threw"]
FILLERS: list[str] = [
    "When", "Then", "After", "While", "and", "went", "to", "the", "a", ",", ".", "had", "lot", "of", "fun", "at",
    "were", "working", "decided", "give", "got", "bought", "saw", "likes", "said", "hi", "is", "it", "was", "nice",
]
IOI_WORDS: list[str] = [BOS, *NAMES, *PLACES, *OBJECTS, *VERBS, *FILLERS, UNK]


def special_ids(words: list[str]) -> list[int]:
    """Ids of the special words (``<bos>``, ``<unk>``, ``<t0>``, ...): written in angle brackets."""
    return [i for i, w in enumerate(words) if len(w) > 2 and w.startswith("<") and w.endswith(">")]


def check_words(words: list[str]) -> list[str]:
    """Validate a vocabulary: unique, whitespace-free words, ``<bos>`` first and ``<unk>`` present."""
    if not words or words[0] != BOS:
        raise ConfigError(f"a toy vocabulary must start with {BOS!r}; got {words[:1]!r}")
    if UNK not in words:
        raise ConfigError(f"a toy vocabulary must contain {UNK!r}")
    if len(set(words)) != len(words):
        dup = sorted({w for w in words if words.count(w) > 1})
        raise ConfigError(f"duplicate words in toy vocabulary: {dup}")
    bad = [w for w in words if not w or any(c.isspace() for c in w)]
    if bad:
        raise ConfigError(f"toy vocabulary words must be non-empty and contain no whitespace; bad: {bad!r}")
    return list(words)


def save_vocab(words: list[str], path: str | Path) -> None:
    """Write ``vocab.json`` as ``{"words": [...]}`` (index = token id)."""
    Path(path).write_text(json.dumps({"words": check_words(words)}, indent=0) + "\n")


def load_vocab(path: str | Path) -> list[str]:
    """Read a ``vocab.json`` written by :func:`save_vocab` (or a plain JSON list of words)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read toy vocabulary {str(path)!r}: {e}") from e
    words = data.get("words") if isinstance(data, dict) else data
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError(f"toy vocabulary {str(path)!r} must be a JSON list of words or {{'words': [...]}}")
    return check_words(words)


def build_tokenizer(words: list[str], name: str = "toy") -> "PreTrainedTokenizerFast":
    """A ``PreTrainedTokenizerFast`` (WordLevel model, whitespace pre-tokenizer, BOS post-processor) for ``words``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = check_words(words)
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    tk.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)  # joins words with single spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=BOS, eos_token=BOS, pad_token=BOS, unk_token=UNK,
        add_bos_token=True, name_or_path=name,  # TransformerLens reads both; add_bos_token avoids a hub lookup
    )
    tok.circuitdb_toy_vocab = True  # marks word-level toy tokenizers (unknown words are errors, not <unk>)
    return tok
