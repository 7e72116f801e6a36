"""The plain-file dictionary format: ``<name>.safetensors`` (tensors) next to ``<name>.json`` (config).

The JSON holds ``format: "circuitdb-dictionary"``, ``id``, ``kind``, ``hook_in``, ``hook_out``, ``activation``, ``k``,
the shapes, and free-form ``stats`` (e.g. the training FVE). The safetensors file holds ``W_enc [d_in, width]``,
``b_enc``, ``W_dec [width, d_out]``, ``b_dec`` and, when used, ``threshold``, ``input_bias``, ``W_skip`` and
``W_dec_later`` (a cross-layer transcoder's decoders into the following layers).
"""

from __future__ import annotations

import json
from pathlib import Path

from circuitdb.dictionaries.base import Dictionary
from circuitdb.errors import ConfigError

FORMAT = "circuitdb-dictionary"
_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "input_bias", "W_skip", "W_dec_later")


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p


def save_dictionary(d: Dictionary, path: str | Path, *, stats: dict | None = None) -> Path:
    """Write ``d`` as ``<path>.safetensors`` + ``<path>.json``; returns the JSON path."""
    from safetensors.torch import save_file

    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {n: getattr(d, n).detach().contiguous().cpu() for n in _TENSORS if getattr(d, n) is not None}
    save_file(tensors, str(stem.with_suffix(".safetensors")))
    cfg = {"format": FORMAT, **d.config(), "stats": stats or {}}
    stem.with_suffix(".json").write_text(json.dumps(cfg, indent=1, sort_keys=True))
    return stem.with_suffix(".json")


def _read_config(js: Path) -> dict:
    try:
        cfg = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"dictionary config {str(js)!r} is not readable JSON: {e}") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"dictionary config {str(js)!r} must hold a JSON object; got {type(cfg).__name__}")
    return cfg


def is_dictionary_file(path: str | Path, *, strict: bool = False) -> bool:
    """Whether ``path`` names a circuitdb ``.json`` + ``.safetensors`` pair; ``strict``: an unreadable JSON of a pair
    raises ConfigError instead of answering False."""
    stem = _stem(path)
    js = stem.with_suffix(".json")
    if not (js.is_file() and stem.with_suffix(".safetensors").is_file()):
        return False
    try:
        return _read_config(js).get("format") == FORMAT
    except ConfigError:
        if strict:
            raise
        return False


def load_dictionary_file(path: str | Path) -> Dictionary:
    """Read a dictionary written by :func:`save_dictionary` (``path`` = the stem, the .json or the .safetensors)."""
    stem = _stem(path)
    js, st = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    missing = [p.name for p in (js, st) if not p.is_file()]
    if missing:
        raise ConfigError(f"dictionary {stem}: missing file(s) {missing} (expected <name>.json + <name>.safetensors)")
    cfg = _read_config(js)
    if cfg.get("format") != FORMAT:
        raise ConfigError(f"{js} is not a circuitdb dictionary (format {cfg.get('format')!r}, expected {FORMAT!r})")
    tensors = read_tensors(st)
    need = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in tensors]
    if need:
        raise ConfigError(f"{st} lacks tensor(s) {need}")
    for key in ("kind", "hook_in", "hook_out", "activation"):
        if not isinstance(cfg.get(key, ""), str):
            raise ConfigError(f"dictionary config {str(js)!r}: {key} must be a string; got {cfg[key]!r}")
    return Dictionary(
        id=str(cfg.get("id") or stem.name), kind=cfg.get("kind", ""), hook_in=cfg.get("hook_in", ""),
        hook_out=cfg.get("hook_out", ""), activation=cfg.get("activation", "relu"), k=cfg.get("k"),
        ln_convention=cfg.get("ln_convention", "tl3"), **{n: tensors.get(n) for n in _TENSORS},
    )


def read_tensors(path: str | Path) -> dict:
    """All tensors of a safetensors file; a truncated or corrupt file raises ConfigError naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError / OSError / ValueError
        raise ConfigError(f"cannot read safetensors file {str(path)!r} (truncated or corrupt?): {e}") from e


def dictionary_stats(path: str | Path) -> dict:
    """The ``stats`` block of a dictionary's JSON (training FVE, L0, seed...)."""
    return dict(json.loads(_stem(path).with_suffix(".json").read_text()).get("stats", {}))
