"""``load_dictionaries(spec, model)``: resolve a dictionary spec and check every dictionary against the model.

Spec forms: ``None`` (the zoo's shipped dictionaries, ``circuitdb/models/zoo/<model>/dictionaries/``), a directory
(circuitdb ``<name>.json``/``<name>.safetensors`` pairs and/or SAELens sub-directories, or itself a SAELens
directory), a comma list of such paths / files, ``saelens:RELEASE/ID,RELEASE/ID`` (``SAE.from_pretrained``; the
release is the text before the first ``/``), or already loaded :class:`Dictionary` / SAELens objects.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from circuitdb.dictionaries.base import (
    SAE_HOOKS, TRANSCODER_IN_HOOKS, TRANSCODER_OUT_HOOKS, Dictionary, parse_hook,
)
from circuitdb.dictionaries.saelens import from_pretrained, from_saelens, is_saelens_dir, load_saelens_dir
from circuitdb.dictionaries.safetensors import is_dictionary_file, load_dictionary_file
from circuitdb.errors import ConfigError


def zoo_dictionary_dir(model_name: str) -> Path:
    from circuitdb.models.zoo import ZOO_DIR

    return ZOO_DIR / model_name / "dictionaries"


def _load_path(p: Path) -> list[Dictionary]:
    if is_saelens_dir(p):
        return [load_saelens_dir(p)]
    if p.is_dir():
        out: list[Dictionary] = []
        for js in sorted(p.glob("*.json")):
            if is_dictionary_file(js):
                out.append(load_dictionary_file(js))
        for sub in sorted(q for q in p.iterdir() if q.is_dir()):
            if is_saelens_dir(sub):
                out.append(load_saelens_dir(sub))
        if not out:
            raise ConfigError(f"directory {str(p)!r} holds no dictionaries (circuitdb <name>.json + <name>.safetensors "
                              "pairs, or SAELens folders with cfg.json + sae_weights.safetensors)")
        return out
    if is_dictionary_file(p):
        return [load_dictionary_file(p)]
    raise ConfigError(f"dictionary path {str(p)!r} does not exist or is not a dictionary (a circuitdb .json/"
                      ".safetensors pair, a SAELens folder, or a folder of those)")


def resolve_spec(spec: Any, model_name: str = "") -> list[Dictionary]:
    """Load the dictionaries a spec names, without checking them against a model."""
    if spec is None:
        d = zoo_dictionary_dir(model_name)
        if not d.is_dir():
            raise ConfigError(f"model {model_name!r} ships no dictionaries (no folder {str(d)!r}); pass a dictionary "
                              "spec: a directory, a comma list of paths, or saelens:RELEASE/ID")
        return _load_path(d)
    if isinstance(spec, Dictionary):
        return [spec]
    if isinstance(spec, (str, Path)):
        text = str(spec).strip()
        if not text:
            raise ConfigError("empty dictionary spec; give a directory, a comma list of paths, or saelens:RELEASE/ID")
        if text.startswith("saelens:"):
            out = []
            for item in filter(None, (s.strip() for s in text[len("saelens:"):].split(","))):
                release, sep, sae_id = item.partition("/")
                if not sep or not release or not sae_id:
                    raise ConfigError(f"SAELens spec {item!r} is not RELEASE/ID (e.g. gpt2-small-res-jb/"
                                      "blocks.8.hook_resid_pre)")
                out.append(from_pretrained(release, sae_id))
            return out
        return [d for part in text.split(",") if part.strip() for d in _load_path(Path(part.strip()))]
    if isinstance(spec, Iterable):
        return [d for item in spec for d in resolve_spec(item, model_name)]
    if hasattr(spec, "W_enc") and hasattr(spec, "cfg"):
        return [from_saelens(spec)]
    raise ConfigError(f"cannot read a dictionary spec of type {type(spec).__name__}; give a path, a comma list, "
                      "saelens:RELEASE/ID, a Dictionary or a SAELens SAE")


def check_dictionaries(dicts: list[Dictionary], model: Any) -> None:
    """Raise ConfigError naming exactly what does not fit the model (hooks, layers, d_in / d_out, duplicates)."""
    cfg = model.cfg
    name = getattr(cfg, "model_name", "model")
    if not dicts:
        raise ConfigError(f"no dictionaries given for model {name!r}")
    hooks = model.hook_dict
    for d in dicts:
        for role, h in (("input", d.hook_in), ("output", d.hook_out)):
            layer, suffix = parse_hook(h)
            if layer >= cfg.n_layers:
                raise ConfigError(f"dictionary {d.id!r}: {role} hook {h!r} is at layer {layer}, but model {name!r} "
                                  f"has layers 0..{cfg.n_layers - 1}")
            if h not in hooks:
                raise ConfigError(f"dictionary {d.id!r}: {role} hook {h!r} is not a hook of model {name!r}"
                                  + (" (an attention-only model has no MLP hooks)" if cfg.attn_only else ""))
        lin, sin = parse_hook(d.hook_in)
        lout, sout = parse_hook(d.hook_out)
        if d.kind == "transcoder":
            if sin not in TRANSCODER_IN_HOOKS or sout not in TRANSCODER_OUT_HOOKS or lin != lout:
                raise ConfigError(
                    f"dictionary {d.id!r}: transcoder {d.hook_in!r} → {d.hook_out!r} is not supported; it must read "
                    f"blocks.L.{{{', '.join(TRANSCODER_IN_HOOKS)}}} and write blocks.L.hook_mlp_out of the same layer"
                )
        elif sin not in SAE_HOOKS:
            raise ConfigError(f"dictionary {d.id!r}: SAE hook {d.hook_in!r} is not supported; valid hooks: "
                              f"blocks.L.{{{', '.join(SAE_HOOKS)}}}")
        if d.d_in != cfg.d_model:
            raise ConfigError(f"dictionary {d.id!r}: d_in {d.d_in} does not match the model's d_model {cfg.d_model} "
                              f"at {d.hook_in!r}")
        if d.d_out != cfg.d_model:
            raise ConfigError(f"dictionary {d.id!r}: d_out {d.d_out} does not match the model's d_model "
                              f"{cfg.d_model} at {d.hook_out!r}")
    ids = Counter(d.id for d in dicts)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise ConfigError(f"dictionary ids must be unique; repeated: {dup}")
    sites = Counter(d.hook_out for d in dicts)
    dup = [h for h, c in sites.items() if c > 1]
    if dup:
        raise ConfigError(f"more than one dictionary writes {dup}; give at most one per hook")


def load_dictionaries(spec: Any, model: Any, *, dtype: Any = None) -> list[Dictionary]:
    """Resolve ``spec`` (see the module docstring), check it against ``model``, cast to ``dtype`` (default: the
    model's), and return the dictionaries sorted by layer."""
    dicts = resolve_spec(spec, str(getattr(model.cfg, "model_name", "")))
    check_dictionaries(dicts, model)
    dt = dtype or model.cfg.dtype
    return sorted((d.to(dtype=dt) for d in dicts), key=lambda d: (d.layer, d.hook_out))
