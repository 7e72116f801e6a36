"""The model registry: trained toy models shipped with the package, random-init configs, pretrained names.

Resolution order of :func:`load_model` ``(name_or_dir)``:
1. a trained zoo name (``toy-induction-2l``, ``toy-ioi``) → the folder ``circuitdb/models/zoo/<name>/``;
2. a random-init name (``random-*``) → a model built on the fly with a seeded init (no weight files);
3. an existing local directory holding a TransformerLens ``config.json`` and weights, with an optional tokenizer
   (see :mod:`circuitdb.models.folder`);
4. a TransformerLens official model name or alias (``gpt2``, ``pythia-70m``, ...) → ``HookedTransformer.from_pretrained``
   (needs the Hugging Face hub or its local cache).
Anything else raises ConfigError listing the zoo names.

Model construction never changes the global torch RNG state: seeded inits run inside ``torch.random.fork_rng``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from circuitdb.errors import ConfigError
from circuitdb.models.build import OFF_FLAGS, build_model, torch_dtype_or_float32  # noqa: F401 - OFF_FLAGS re-exported

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)

ZOO_DIR = Path(__file__).parent / "zoo"
_build = build_model  # the historical private name (tests use it)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    config: dict = field(default_factory=dict)  # random-init entries only
    seed: int = 0

    @property
    def trained(self) -> bool:
        return not self.config


_MLP = dict(act_fn="gelu", normalization_type="LN", attn_only=False)
ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("toy-induction-2l", "trained 2-layer attention-only model (4 heads/layer, d_model 64, 64-token "
             "vocabulary): previous-token head 0.2 → induction head 1.2; the other six heads are distractors"),
    ZooEntry("toy-ioi", "trained 3-layer model with MLPs and LayerNorm on a word-level toy IOI task "
             "(vocab.json: names, places, objects, verbs, fillers; some names held out of IOI training)"),
    ZooEntry("toy-ioi-circuit", "toy-ioi's vocabulary and size, trained on variable-position IOI prompts with one "
             "head per role guided: the full IOI circuit, duplicate-token A0.0 → S-inhibition A1.0, A1.2 → name "
             "movers A2.0, A2.2, A2.3 (docs/design.md)"),
    ZooEntry("random-attn-1l", "random init: 1 layer, 4 heads, attention-only, no LayerNorm, d_model 32, vocab 50",
             dict(n_layers=1, n_heads=4, d_model=32, d_head=8, n_ctx=32, d_vocab=50, attn_only=True,
                  normalization_type=None, act_fn="gelu")),
    ZooEntry("random-2l", "random init: 2 layers, 4 heads, MLPs, LayerNorm, d_model 32, vocab 50",
             dict(n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=128, n_ctx=32, d_vocab=50, **_MLP)),
    ZooEntry("random-4l", "random init: 4 layers, 4 heads, MLPs, LayerNorm, d_model 64, n_ctx 64, vocab 128 "
             "(benchmarks)",
             dict(n_layers=4, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=64, d_vocab=128, **_MLP)),
    ZooEntry("random-gqa", "random init: 2 layers, grouped-query attention (4 query heads, 2 key/value heads), "
             "MLPs, LayerNorm, d_model 32",
             dict(n_layers=2, n_heads=4, n_key_value_heads=2, d_model=32, d_head=8, d_mlp=128, n_ctx=32,
                  d_vocab=50, **_MLP)),
    ZooEntry("random-parallel", "random init: 2 layers, parallel attention + MLP blocks (GPT-J style), LayerNorm, "
             "d_model 32",
             dict(n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=128, n_ctx=32, d_vocab=50,
                  parallel_attn_mlp=True, **_MLP)),
]}


def list_models() -> dict[str, str]:
    """Every zoo name with a one-line description (pretrained TransformerLens names are accepted too)."""
    return {name: e.description for name, e in ZOO.items()}


def load_model(name_or_dir: str | Path, *, device: str = "cpu", dtype: "torch.dtype | str" = "float32",
               keep_hook_flags: bool = False) -> "HookedTransformer":
    """A ``HookedTransformer`` for a zoo name, a random-init name, a local folder, or a pretrained name (see module
    doc). Hook flags that only slow the model down are off unless ``keep_hook_flags``."""
    from circuitdb.models.folder import load_dir
    dt = torch_dtype_or_float32(dtype)
    key = str(name_or_dir)
    if key in ZOO:
        e = ZOO[key]
        if e.trained:
            folder = ZOO_DIR / key
            if not folder.is_dir():
                raise ConfigError(f"zoo model {key!r} has no weights in {str(folder)!r}; retrain with "
                                  f"`python -m circuitdb.models.train {key}`")
            return load_dir(folder, device=device, dtype=dt, name=key)
        return build_model(dict(e.config), key, device, dt, seed=e.seed)
    if Path(key).is_dir():
        return load_dir(key, device=device, dtype=dt, keep_hook_flags=keep_hook_flags)
    import transformer_lens.loading_from_pretrained as tl_loading

    try:
        official = tl_loading.get_official_model_name(key)
    except ValueError:
        raise ConfigError(f"unknown model {key!r}: not a local folder with config.json + model.safetensors, not a "
                          f"TransformerLens pretrained name; zoo models: {', '.join(ZOO)}") from None
    from transformer_lens import HookedTransformer

    log.info("loading pretrained %s (%s) via HookedTransformer.from_pretrained", key, official)
    try:
        return HookedTransformer.from_pretrained(key, device=device, dtype=dt)
    except OSError as e:
        raise ConfigError(f"could not load pretrained model {key!r} (is the Hugging Face hub reachable?): {e}") from e


def hub_reachable(timeout: float = 2.0, host: str = "huggingface.co") -> bool:
    """True if an HTTPS connection to the Hugging Face hub opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
