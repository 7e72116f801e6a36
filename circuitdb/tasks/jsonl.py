"""User prompt pairs from JSONL: one ``{"clean": ..., "corrupted": ..., "answer": ..., "wrong": ...}`` per line.

``clean`` / ``corrupted`` are text (tokenized with the model's tokenizer, BOS prepended) or lists of token ids (used
as given). ``answer`` / ``wrong`` (both optional: metrics such as ``kl`` or ``l2`` need neither) are a token id, a
text that is exactly one token (``" Mary"`` for GPT-2, ``"Mary"`` for toy vocabularies), or a list of those (several
acceptable answers; the same count on every line); each must be on every line or on none. Optional ``answer_pos``
(int, negative counts from the end; default: the last position). All prompts must have one common length. Prompts
longer than the model's ``n_ctx`` are an error unless ``truncate=True``, which keeps the last ``n_ctx`` tokens.
The file must be UTF-8. Errors name the file and line number. Blank lines are skipped. Rows are validated by a
pydantic model (the boundary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

from circuitdb.errors import ConfigError
from circuitdb.tasks.base import PromptPairs

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

ALLOWED = ("clean", "corrupted", "answer", "wrong", "answer_pos")


def _row_model():  # noqa: ANN202 - pydantic imported on first use
    from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

    Token = Union[StrictInt, StrictStr]

    class Row(BaseModel):
        model_config = ConfigDict(extra="forbid")
        clean: Union[StrictStr, list[StrictInt]]
        corrupted: Union[StrictStr, list[StrictInt]]
        answer: Optional[Union[Token, list[Token]]] = None
        wrong: Optional[Union[Token, list[Token]]] = None
        answer_pos: Optional[StrictInt] = None

    return Row


def _validation_message(e: Any) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()) if not str(x).startswith(("str", "list", "int", "union")))
    if err.get("type") == "extra_forbidden":
        return f"unknown key {loc!r}; allowed keys: {list(ALLOWED)}"
    if err.get("type") == "missing":
        return f"missing key {loc!r} (clean and corrupted are required)"
    return f"{loc or 'value'}: {err.get('msg')} (got {err.get('input')!r:.60})"


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
    if not value:
        raise ConfigError(f"{where}: {field} is an empty list of token ids")
    return list(value)


def _token(value: Any, tok, where: str, field: str) -> int:  # noqa: ANN001
    if isinstance(value, int):
        return value
    if tok is None:
        raise ConfigError(f"{where}: {field} is text but the model has no tokenizer; give a token id")
    ids = tok(value, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or (getattr(tok, "circuitdb_toy_vocab", False) and ids[0] == tok.unk_token_id):
        raise ConfigError(f"{where}: {field} {value!r} is not exactly one known token (got {len(ids)} tokens)")
    return int(ids[0])


def _tokens(value: Any, tok, where: str, field: str) -> list[int] | None:  # noqa: ANN001
    if value is None:
        return None
    vals = value if isinstance(value, list) else [value]
    if not vals:
        raise ConfigError(f"{where}: {field} is an empty list")
    return [_token(v, tok, where, field) for v in vals]


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read prompt file {str(path)!r}: {e}") from e
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"prompt file {str(path)!r} is not UTF-8 text (line {line}, byte {e.start}: "
                          f"{data[e.start:e.start + 1]!r})") from None


def _check_ids(rows: list[dict[str, Any]], model: "HookedTransformer", path: Path) -> None:
    d_in = int(model.cfg.d_vocab)
    d_out = int(getattr(model.cfg, "d_vocab_out", -1) or -1)
    d_out = d_in if d_out <= 0 else d_out
    for r in rows:
        for key, hi, what in (("clean", d_in, "input"), ("corrupted", d_in, "input"), ("answer", d_out, "output"),
                              ("wrong", d_out, "output")):
            bad = [t for t in r[key] or () if not 0 <= t < hi]
            if bad:
                raise ConfigError(f"{path.name} line {r['line']}: {key} token id {bad[0]} is outside the vocabulary "
                                  f"[0, {hi}) (the model's {what} vocabulary)")


def jsonl_task(model: "HookedTransformer | None" = None, *, path: str | Path, n: int | None = None,
               tokenizer=None, truncate: bool = False) -> PromptPairs:  # noqa: ANN001
    """Read prompt pairs from ``path`` (the first ``n`` lines when given); see module doc."""
    from pydantic import ValidationError

    path = Path(path)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"n must be a positive integer or None, got {n!r}")
    Row = _row_model()
    tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object with keys {list(ALLOWED)}")
        try:
            r = Row.model_validate(obj)
        except ValidationError as e:
            raise ConfigError(f"{where}: {_validation_message(e)}") from None
        clean = _prompt(r.clean, tok, where, "clean")
        corrupted = _prompt(r.corrupted, tok, where, "corrupted")
        if len(clean) != len(corrupted):
            raise ConfigError(f"{where}: clean has {len(clean)} tokens, corrupted has {len(corrupted)}; they must match")
        pos = r.answer_pos
        if pos is not None and not -len(clean) <= pos < len(clean):
            raise ConfigError(f"{where}: answer_pos {pos!r} is not a position of a {len(clean)}-token prompt")
        row = {"line": lineno, "clean": clean, "corrupted": corrupted, "pos": None if pos is None else pos % len(clean),
               "answer": _tokens(r.answer, tok, where, "answer"), "wrong": _tokens(r.wrong, tok, where, "wrong")}
        if rows:
            first = rows[0]
            if len(clean) != len(first["clean"]):
                raise ConfigError(f"{where}: prompt has {len(clean)} tokens, line {first['line']} has "
                                  f"{len(first['clean'])}; all prompts must have the same length")
            for key in ("answer", "wrong"):
                if (row[key] is None) != (first[key] is None):
                    raise ConfigError(f"{where}: {key!r} must be given on every line or on none "
                                      f"(line {first['line']} differs)")
                if row[key] is not None and len(row[key]) != len(first[key]):
                    raise ConfigError(f"{where}: {len(row[key])} {key} token(s), line {first['line']} has "
                                      f"{len(first[key])}; give the same number on every line")
        rows.append(row)
        if n is not None and len(rows) >= n:
            break
    if not rows:
        raise ConfigError(f"prompt file {str(path)!r} holds no prompt pairs")
    if model is not None:
        _check_ids(rows, model, path)
    seq = len(rows[0]["clean"])
    clean = torch.tensor([r["clean"] for r in rows])
    corrupted = torch.tensor([r["corrupted"] for r in rows])
    pos = torch.tensor([seq - 1 if r["pos"] is None else r["pos"] for r in rows])
    ctx = int(model.cfg.n_ctx) if model is not None else None
    if ctx is not None and seq > ctx and truncate:
        cut = seq - ctx
        if int(pos.min()) < cut:
            raise ConfigError(f"{path.name}: truncate=True keeps the last {ctx} tokens, but an answer_pos lies in the "
                              "cut-off start")
        clean, corrupted, pos = clean[:, cut:], corrupted[:, cut:], pos - cut
    pick = lambda key: None if rows[0][key] is None else torch.tensor(  # noqa: E731
        [r[key][0] if len(rows[0][key]) == 1 else r[key] for r in rows])
    has_pos = any(r["pos"] is not None for r in rows) or truncate
    ds = PromptPairs(clean, corrupted, pick("answer"), pick("wrong"), pos if has_pos else None,
                     name=path.stem, meta={"task": "jsonl", "path": str(path), "n": len(rows),
                                           **({"truncated_to": ctx} if truncate and ctx and seq > ctx else {})})
    if model is not None:
        ds.check_fits(model)
    return ds
