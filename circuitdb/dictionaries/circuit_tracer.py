"""circuit-tracer's transcoder files (the layouts of ``circuit_tracer/transcoder/*.py``, read without circuit-tracer).

- A transcoder set: a YAML file with ``model_name``, ``feature_input_hook`` (e.g. ``ln2.hook_normalized``,
  ``hook_resid_mid``), ``feature_output_hook`` (``hook_mlp_out``, or circuit-tracer's ``mlp.hook_out``, the same
  tensor) and ``transcoders: [{id, layer, filepath}]``; local files only (``hf://`` paths: download them first).
- Per-layer ReLU transcoders (``.safetensors``; ``load_relu_transcoder``): ``W_enc [d_sae, d_model]``, ``W_dec
  [d_model, d_sae]`` (both transposed relative to ours), ``b_enc``, ``b_dec``, optional ``W_skip [d_model, d_model]``
  applied as ``x @ W_skip.T`` (a skip transcoder); a ``log_thresholds`` tensor is refused, as circuit-tracer does.
- Gemma Scope transcoders (``.npz``; ``load_gemma_scope_transcoder``): ``W_enc [d_model, d_sae]``, ``W_dec [d_sae,
  d_model]``, ``b_enc``, ``b_dec``, ``threshold`` (JumpReLU).
- Cross-layer transcoders (``CrossLayerTranscoder.to_safetensors`` / ``load_clt``): a folder with, per layer ``i`` of
  ``n`` layers, ``W_enc_{i}.safetensors`` holding ``W_enc_{i} [d_sae, d_model]``, ``b_enc_{i}``, ``b_dec_{i}`` (the
  output bias of layer ``i``) and optionally ``threshold_{i}`` (JumpReLU), and ``W_dec_{i}.safetensors`` holding
  ``W_dec_{i} [d_sae, n - i, d_model]`` (the decoders into layers ``i .. n-1``). Hooks default to circuit-tracer's
  (``hook_resid_mid`` → ``hook_mlp_out``); each layer becomes one transcoder with ``W_dec_later`` (see
  :mod:`.base`).

circuit-tracer runs TransformerLens 2.x, whose ``ln2.hook_normalized`` includes the LayerNorm weight and bias, so
these dictionaries are marked ``ln_convention="tl2"`` and the loader folds that convention
(:func:`circuitdb.dictionaries.load.fold_ln_convention`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from circuitdb.dictionaries.base import Dictionary
from circuitdb.dictionaries.safetensors import read_tensors
from circuitdb.errors import ConfigError

OUTPUT_HOOKS = {"hook_mlp_out": "hook_mlp_out", "mlp.hook_out": "hook_mlp_out"}


def is_clt_dir(path: Path) -> bool:
    return path.is_dir() and (path / "W_enc_0.safetensors").is_file()


def is_transcoder_set(path: Path) -> bool:
    return path.is_file() and path.suffix in (".yaml", ".yml")


def load_clt_dir(path: str | Path, feature_input_hook: str = "hook_resid_mid",
                 feature_output_hook: str = "hook_mlp_out", id: str | None = None) -> list[Dictionary]:
    """A circuit-tracer cross-layer transcoder folder (module docstring) as one transcoder per layer."""
    p = Path(path)
    n = len(list(p.glob("W_enc_*.safetensors")))
    name = str(id or p.name)
    out = []
    for i in range(n):
        enc_f, dec_f = p / f"W_enc_{i}.safetensors", p / f"W_dec_{i}.safetensors"
        for f in (enc_f, dec_f):
            if not f.is_file():
                raise ConfigError(f"cross-layer transcoder {str(p)!r} has {n} W_enc_<i> files but lacks {f.name!r} "
                                  f"(expected W_enc_0..W_enc_{n - 1} and W_dec_0..W_dec_{n - 1})")
        enc, dec = read_tensors(enc_f), read_tensors(dec_f)
        _need(enc, (f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}"), enc_f)
        _need(dec, (f"W_dec_{i}",), dec_f)
        W_dec = dec[f"W_dec_{i}"]
        if W_dec.dim() != 3 or W_dec.shape[1] != n - i:
            raise ConfigError(f"{str(dec_f)!r}: W_dec_{i} has shape {tuple(W_dec.shape)}; expected (d_sae, {n - i}, "
                              f"d_model): the decoders into layers {i}..{n - 1}")
        threshold = enc.get(f"threshold_{i}")
        kw = {"activation": "jumprelu", "threshold": threshold.reshape(-1)} if threshold is not None else {}
        out.append(_dictionary(p, f"{name}-{i}", i, feature_input_hook, feature_output_hook,
                               W_enc=enc[f"W_enc_{i}"].T.contiguous(), b_enc=enc[f"b_enc_{i}"],
                               W_dec=W_dec[:, 0].contiguous(), b_dec=enc[f"b_dec_{i}"],
                               W_dec_later=W_dec[:, 1:].contiguous() if n - i > 1 else None, **kw))
    return out


def _need(t: dict, names: tuple[str, ...], path: Path) -> None:
    missing = [n for n in names if n not in t]
    if missing:
        raise ConfigError(f"transcoder file {str(path)!r} lacks tensor(s) {missing}; found {sorted(t)}")


def load_relu_file(path: str | Path, layer: int, hook_in: str, hook_out: str, id: str | None = None) -> Dictionary:
    """A circuit-tracer per-layer ReLU (optionally skip) transcoder ``.safetensors`` file (module docstring)."""
    p = Path(path)
    t = read_tensors(p)
    _need(t, ("W_enc", "W_dec", "b_enc", "b_dec"), p)
    if t.get("log_thresholds") is not None:
        raise ConfigError(f"transcoder file {str(p)!r} has log_thresholds: circuit-tracer reads these files as ReLU "
                          "transcoders and refuses thresholds too")
    skip = t.get("W_skip")
    return _dictionary(p, id, layer, hook_in, hook_out, W_enc=t["W_enc"].T.contiguous(), b_enc=t["b_enc"],
                       W_dec=t["W_dec"].T.contiguous(), b_dec=t["b_dec"],
                       W_skip=None if skip is None else skip.T.contiguous())


def load_gemma_scope_file(path: str | Path, layer: int, hook_in: str, hook_out: str,
                          id: str | None = None) -> Dictionary:
    """A Gemma Scope JumpReLU transcoder ``params.npz`` (module docstring)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            t = {k: torch.from_numpy(np.array(z[k])) for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ConfigError(f"cannot read transcoder file {str(p)!r} (truncated or not an .npz?): {e}") from e
    _need(t, ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"), p)
    return _dictionary(p, id, layer, hook_in, hook_out, activation="jumprelu", threshold=t["threshold"],
                       **{k: t[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")})


def _dictionary(p: Path, id: str | None, layer: int, hook_in: str, hook_out: str, **kw) -> Dictionary:  # noqa: ANN003
    if hook_out not in OUTPUT_HOOKS:
        raise ConfigError(f"transcoder {str(p)!r}: output hook {hook_out!r} is not supported; valid: "
                          f"{', '.join(OUTPUT_HOOKS)}")
    convention = "tl2" if hook_in == "ln2.hook_normalized" else "tl3"
    return Dictionary(id=str(id or p.stem), kind="transcoder", hook_in=f"blocks.{layer}.{hook_in}",
                      hook_out=f"blocks.{layer}.{OUTPUT_HOOKS[hook_out]}", ln_convention=convention, **kw)


def load_transcoder_set(path: str | Path) -> list[Dictionary]:
    """Every transcoder of a circuit-tracer YAML transcoder set (module docstring); relative paths are relative to
    the YAML file."""
    import yaml

    p = Path(path)
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read circuit-tracer transcoder set {str(p)!r}: {e}") from e
    if not isinstance(cfg, dict) or not isinstance(cfg.get("transcoders"), list):
        raise ConfigError(f"{str(p)!r} is not a circuit-tracer transcoder set (needs feature_input_hook, "
                          "feature_output_hook and a transcoders list)")
    hin, hout = cfg.get("feature_input_hook"), cfg.get("feature_output_hook")
    if not isinstance(hin, str) or not isinstance(hout, str):
        raise ConfigError(f"{str(p)!r}: feature_input_hook and feature_output_hook must be strings; got {hin!r}, "
                          f"{hout!r}")
    out = []
    for i, tc in enumerate(cfg["transcoders"]):
        if not isinstance(tc, dict) or not isinstance(tc.get("layer"), int) or not isinstance(tc.get("filepath"), str):
            raise ConfigError(f"{str(p)!r}: transcoder #{i} needs an integer layer and a filepath; got {tc!r}")
        fp = tc["filepath"]
        if fp.startswith("hf://"):
            raise ConfigError(f"{str(p)!r}: transcoder #{i} is on the Hugging Face hub ({fp}); download it and give "
                              "a local filepath")
        f = Path(fp) if Path(fp).is_absolute() else p.parent / fp
        if not f.is_file():
            raise ConfigError(f"{str(p)!r}: transcoder #{i} file {str(f)!r} does not exist")
        load = load_gemma_scope_file if f.suffix == ".npz" else load_relu_file
        out.append(load(f, tc["layer"], hin, hout, id=tc.get("id")))
    return out
