"""User prompt pairs from JSONL: one ``{"clean": ..., "corrupted": ..., "answer": ..., "wrong": ...}`` per line.

``clean`` / ``corrupted`` are text (tokenized with the model's tokenizer, BOS prepended) or lists of token ids (used
as given). ``answer`` / ``wrong`` are a token id or a text that is exactly one token (``" Mary"`` for GPT-2, ``"Mary"``
for toy vocabularies); ``wrong`` is optional but must be on every line or on none. Optional ``answer_pos`` (int,
default: the last position). All prompts must have one common length. Errors name the file and line number.
Blank lines are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from circuitdb.errors import ConfigError
from circuitdb.tasks.base import PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

REQUIRED = ("clean", "corrupted", "answer")
ALLOWED = ("clean", "corrupted", "answer", "wrong", "answer_pos")


def _prompt(value: Any, tok, where: str, field: str) -> list[int]:  # noqa: ANN001
    if isinstance(value, str):
        if tok is None:
            raise ConfigError(f"{where}: {field} is text but the model has no tokenizer; give token ids")
        if not value:
            raise ConfigError(f"{where}: {field} is empty")
        ids = tok(value, add_special_tokens=False)["input_ids"]
        out = ([tok.bos_token_id] if tok.bos_token_id is not None else []) + list(ids)
        if tok.unk_token_id is not None and getattr(tok, "circuitdb_toy_vocab", False) and tok.unk_token_id in ids:
            raise ConfigError(f"{where}: {field} {value!r} has words outside the model's vocabulary")
        return out
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise ConfigError(f"{where}: {field} must be a non-empty string or a list of token ids, got {value!r}")


def _token(value: Any, tok, where: str, field: str) -> int:  # noqa: ANN001
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if tok is None:
            raise ConfigError(f"{where}: {field} is text but the model has no tokenizer; give a token id")
        ids = tok(value, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or (getattr(tok, "circuitdb_toy_vocab", False) and ids[0] == tok.unk_token_id):
            raise ConfigError(f"{where}: {field} {value!r} is not exactly one known token (got {len(ids)} tokens)")
        return int(ids[0])
    raise ConfigError(f"{where}: {field} must be a token id or a one-token string, got {value!r}")


def jsonl_task(model: "HookedTransformer | None" = None, *, path: str | Path, n: int | None = None,
               tokenizer=None) -> PromptPairs:  # noqa: ANN001
    """Read prompt pairs from ``path`` (the first ``n`` lines when given); see module doc."""
    path = Path(path)
    tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read prompt file {str(path)!r}: {e}") from e
    rows: list[tuple[int, list[int], list[int], int, int | None, int | None]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: invalid JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object with keys {list(REQUIRED)}")
        missing = [k for k in REQUIRED if k not in obj]
        extra = sorted(set(obj) - set(ALLOWED))
        if missing or extra:
            raise ConfigError(f"{where}: missing keys {missing}, unknown keys {extra}; allowed keys: {list(ALLOWED)}")
        clean = _prompt(obj["clean"], tok, where, "clean")
        corrupted = _prompt(obj["corrupted"], tok, where, "corrupted")
        if len(clean) != len(corrupted):
            raise ConfigError(f"{where}: clean has {len(clean)} tokens, corrupted has {len(corrupted)}; they must match")
        wrong = _token(obj["wrong"], tok, where, "wrong") if "wrong" in obj else None
        pos = obj.get("answer_pos")
        if pos is not None and (not isinstance(pos, int) or not -len(clean) <= pos < len(clean)):
            raise ConfigError(f"{where}: answer_pos {pos!r} is not a position of a {len(clean)}-token prompt")
        rows.append((lineno, clean, corrupted, _token(obj["answer"], tok, where, "answer"), wrong,
                     None if pos is None else pos % len(clean)))
        if rows[0][1] and len(clean) != len(rows[0][1]):
            raise ConfigError(f"{where}: prompt has {len(clean)} tokens, line {rows[0][0]} has {len(rows[0][1])}; "
                              "all prompts must have the same length")
        if (wrong is None) != (rows[0][4] is None):
            raise ConfigError(f"{where}: 'wrong' must be given on every line or on none (line {rows[0][0]} differs)")
        if n is not None and len(rows) >= n:
            break
    if not rows:
        raise ConfigError(f"prompt file {str(path)!r} holds no prompt pairs")
    if model is not None:
        d_vocab = int(model.cfg.d_vocab)
        for lineno, clean, corrupted, answer, wrong, _p in rows:
            bad = [t for t in [*clean, *corrupted, answer, *([wrong] if wrong is not None else [])]
                   if not 0 <= t < d_vocab]
            if bad:
                raise ConfigError(f"{path.name} line {lineno}: token id {bad[0]} is outside the vocabulary [0, {d_vocab})")
    has_pos = any(r[5] is not None for r in rows)
    seq = len(rows[0][1])
    ds = PromptPairs(
        torch.tensor([r[1] for r in rows]), torch.tensor([r[2] for r in rows]), torch.tensor([r[3] for r in rows]),
        None if rows[0][4] is None else torch.tensor([r[4] for r in rows]),
        torch.tensor([seq - 1 if r[5] is None else r[5] for r in rows]) if has_pos else None,
        name=path.stem, meta={"task": "jsonl", "path": str(path), "n": len(rows)},
    )
    if model is not None:
        ds.check_model(int(model.cfg.d_vocab), int(model.cfg.n_ctx))
    return ds
