"""``load_dictionaries(spec, model)``: resolve a dictionary spec and check every dictionary against the model.

Spec forms: ``None`` (the zoo's shipped dictionaries, ``circuitdb/models/zoo/<model>/dictionaries/``), a
circuit-tracer transcoder-set ``.yaml`` or cross-layer transcoder folder (:mod:`.circuit_tracer`), a directory
(circuitdb ``<name>.json``/``<name>.safetensors`` pairs and/or SAELens sub-directories, or itself a SAELens
directory), a comma list of such paths / files, ``saelens:RELEASE/ID,RELEASE/ID`` (``SAE.from_pretrained``; the
release is the text before the first ``/``), or already loaded :class:`Dictionary` / SAELens objects.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import torch

from circuitdb.dictionaries.base import (
    SAE_HOOKS, TRANSCODER_IN_HOOKS, TRANSCODER_OUT_HOOKS, Dictionary, parse_hook,
)
from circuitdb.dictionaries.circuit_tracer import is_clt_dir, is_transcoder_set, load_clt_dir, load_transcoder_set
from circuitdb.dictionaries.saelens import from_pretrained, from_saelens, is_saelens_dir, load_saelens_dir
from circuitdb.dictionaries.safetensors import is_dictionary_file, load_dictionary_file
from circuitdb.errors import ConfigError


def zoo_dictionary_dir(model_name: str) -> Path:
    from circuitdb.models.zoo import ZOO_DIR

    return ZOO_DIR / model_name / "dictionaries"


def _load_path(p: Path) -> list[Dictionary]:
    if is_transcoder_set(p):
        return load_transcoder_set(p)
    if is_clt_dir(p):
        return load_clt_dir(p)
    if is_saelens_dir(p):
        return [load_saelens_dir(p)]
    if p.is_dir():
        out: list[Dictionary] = []
        for js in sorted(p.glob("*.json")):
            if js.with_suffix(".safetensors").is_file():  # a pair: unreadable JSON is an error, not a skip
                if is_dictionary_file(js, strict=True):
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
    if _is_saelens(spec):  # before the Iterable test: a SAELens SAE's __iter__ yields the SAE itself
        return [from_saelens(spec)]
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
    if isinstance(spec, (list, tuple)) or (isinstance(spec, Iterable) and not hasattr(spec, "W_enc")
                                            and not hasattr(spec, "shape")):  # arrays are no lists of specs
        items = list(spec)
        if any(item is spec for item in items):
            raise ConfigError(f"dictionary spec of type {type(spec).__name__} contains itself")
        return [d for item in items for d in resolve_spec(item, model_name)]
    raise ConfigError(f"cannot read a dictionary spec of type {type(spec).__name__}; give a path, a comma list, "
                      "saelens:RELEASE/ID, a Dictionary or a SAELens SAE")


def _is_saelens(obj: Any) -> bool:
    return hasattr(obj, "W_enc") and hasattr(obj, "cfg") and hasattr(getattr(obj, "cfg"), "architecture")


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
    written = {d.hook_out for d in dicts}
    for d in dicts:
        for j in range(1, d.n_later + 1):
            target = f"blocks.{d.layer + j}.hook_mlp_out"
            if d.layer + j >= cfg.n_layers:
                raise ConfigError(f"dictionary {d.id!r} (cross-layer, layer {d.layer}) writes {d.n_later} later "
                                  f"layer(s), but model {name!r} has layers 0..{cfg.n_layers - 1}")
            if target not in written:
                raise ConfigError(f"dictionary {d.id!r} (cross-layer) writes {target!r}, which no transcoder of the "
                                  "set replaces; give the cross-layer transcoder's every layer (the replacement MLP "
                                  "output there is the sum of all decoders into it plus that layer's error)")
    ids = Counter(d.id for d in dicts)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise ConfigError(f"dictionary ids must be unique; repeated: {dup}")
    sites = Counter(d.hook_out for d in dicts)
    dup = [h for h, c in sites.items() if c > 1]
    if dup:
        raise ConfigError(f"more than one dictionary writes {dup}; give at most one per hook")


def fold_ln_convention(d: Dictionary, model: Any) -> Dictionary:
    """A transcoder reading ``blocks.L.ln2.hook_normalized`` as this engine reads it (TransformerLens 3.x: without the
    LayerNorm weight / bias). A ``tl2`` dictionary (trained where the hook included them: TransformerLens 2.x,
    circuit-tracer) gets them folded into its encoder (and skip path) exactly; an unknown convention is refused when
    the model's LayerNorm has a weight or bias that is not the identity (there the two readings differ)."""
    if not d.hook_in.endswith("ln2.hook_normalized") or d.ln_convention == "tl3":
        return d
    ln = model.blocks[d.layer].ln2
    w, b = getattr(ln, "w", None), getattr(ln, "b", None)
    identity = (w is None or bool((w == 1).all())) and (b is None or bool((b == 0).all()))
    if identity:
        return dataclasses.replace(d, ln_convention="tl3")
    if d.ln_convention is None:
        raise ConfigError(
            f"dictionary {d.id!r} reads {d.hook_in!r} but does not say whether that hook included the LayerNorm weight "
            "and bias when it was trained (TransformerLens 2.x and circuit-tracer: included; 3.x: not); the graph "
            "would be plausible but wrong. Set ln_convention='tl2' or 'tl3' "
            "(dataclasses.replace(d, ln_convention=...)) or give the JSON an \"ln_convention\" field")
    w = torch.ones(d.d_in, dtype=d.dtype, device=d.W_enc.device) if w is None else w.detach().to(d.W_enc)
    b = torch.zeros(d.d_in, dtype=d.dtype, device=d.W_enc.device) if b is None else b.detach().to(d.W_enc)
    shift = b - (d.input_bias if d.input_bias is not None else 0)  # x_tl2 - input_bias = x_tl3 * w + shift
    return dataclasses.replace(
        d, W_enc=w[:, None] * d.W_enc, b_enc=d.b_enc + shift @ d.W_enc, input_bias=None, ln_convention="tl3",
        W_skip=None if d.W_skip is None else w[:, None] * d.W_skip,
        b_dec=d.b_dec if d.W_skip is None else d.b_dec + b @ d.W_skip)


def load_dictionaries(spec: Any, model: Any, *, dtype: Any = None, device: Any = None) -> list[Dictionary]:
    """Resolve ``spec`` (see the module docstring), check it against ``model``, fold the LayerNorm convention
    (:func:`fold_ln_convention`), move to ``device`` and cast to ``dtype`` (defaults: the model's), and return the
    dictionaries sorted by layer."""
    dicts = resolve_spec(spec, str(getattr(model.cfg, "model_name", "")))
    check_dictionaries(dicts, model)
    dt = dtype or model.cfg.dtype
    dev = device if device is not None else next((p.device for p in model.parameters()), None)
    dicts = [fold_ln_convention(d.to(dtype=dt, device=dev), model) for d in dicts]
    return sorted(dicts, key=lambda d: (d.layer, d.hook_out))
