"""Fit small per-layer transcoders (``ln2.hook_normalized`` → ``hook_mlp_out``) and residual SAEs on a toy model.

SAELens 6 trains SAEs (``SAETrainer`` over a data provider) but has no *training* transcoder class, so both kinds use
this compact loop: ReLU dictionary, loss = MSE / Var(target) + ``l1`` · Σ_i a_i ‖W_dec[i]‖, Adam, seeded init,
decoder bias initialised at the target mean. Activations are collected once from the model (token batches in
memory), 10% are held out, and the held-out fraction of variance explained (FVE) is recorded in the file's stats.
Documented quality bar: held-out FVE ≥ 0.8 for every shipped dictionary.

Reproduce the zoo's files (seed 0): ``python -m circuitdb.dictionaries.train toy-ioi`` and ``... toy-ioi-circuit``
(transcoders, width 256) and ``python -m circuitdb.dictionaries.train toy-induction-2l --kind sae`` (residual SAEs
at ``hook_resid_post``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from circuitdb.dictionaries.base import Dictionary, fraction_variance_explained
from circuitdb.errors import ConfigError, one_of

log = logging.getLogger(__name__)
MIN_FVE = 0.8


@dataclass(frozen=True)
class TrainConfig:
    kind: str = "transcoder"  # "transcoder" | "sae"
    width: int = 256
    l1: float = 3e-3
    steps: int = 3000
    batch: int = 512
    lr: float = 3e-3
    seed: int = 0
    sae_hook: str = "hook_resid_post"  # for kind="sae"
    transcoder_in: str = "ln2.hook_normalized"

    def __post_init__(self) -> None:
        if self.kind not in ("transcoder", "sae"):
            raise ConfigError(one_of(self.kind, ("transcoder", "sae"), "dictionary kind"))


def collect(model, tokens: Int[Tensor, "batch seq"],  # noqa: ANN001
            hooks: list[str]) -> dict[str, Float[Tensor, "n d"]]:
    """Activations at ``hooks`` for every position of every sequence, flattened to ``[n, d]``."""
    out: dict[str, list[Tensor]] = {h: [] for h in hooks}
    with torch.no_grad():
        for chunk in tokens.split(256):
            _, cache = model.run_with_cache(chunk, names_filter=lambda n: n in hooks)
            for h in hooks:
                out[h].append(cache[h].reshape(-1, cache[h].shape[-1]).float())
    return {h: torch.cat(v) for h, v in out.items()}


def fit(x: Float[Tensor, "n d_in"], y: Float[Tensor, "n d_out"], cfg: TrainConfig, *, id: str, hook_in: str,
        hook_out: str, progress: bool = False) -> tuple[Dictionary, dict]:
    """Fit one ReLU dictionary mapping ``x`` → ``y`` (``x is y`` for an SAE); returns it and its stats."""
    g = torch.Generator().manual_seed(cfg.seed)
    n = len(x)
    perm = torch.randperm(n, generator=g)
    n_test = max(1, n // 10)
    test, train = perm[:n_test], perm[n_test:]
    d_in, d_out = x.shape[1], y.shape[1]
    var = (y[train] - y[train].mean(0)).pow(2).sum(1).mean()
    W_dec = torch.randn(cfg.width, d_out, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * 0.1
    W_enc = torch.randn(d_in, cfg.width, generator=g) / d_in ** 0.5
    params = {"W_enc": W_enc, "b_enc": torch.zeros(cfg.width), "W_dec": W_dec, "b_dec": y[train].mean(0).clone()}
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (cfg.steps - s) / (0.2 * cfg.steps)))
    for step in tqdm(range(cfg.steps), disable=not progress, desc=id):
        idx = train[torch.randint(0, len(train), (cfg.batch,), generator=g)]
        acts = torch.relu(x[idx] @ params["W_enc"] + params["b_enc"])
        recon = acts @ params["W_dec"] + params["b_dec"]
        mse = (recon - y[idx]).pow(2).sum(1).mean() / var
        l1 = (acts * params["W_dec"].norm(dim=1)).sum(1).mean()
        ramp = min(1.0, step / (0.1 * cfg.steps))  # L1 warm-up avoids early dead features
        loss = mse + cfg.l1 * ramp * l1
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    d = Dictionary(id=id, kind=cfg.kind, hook_in=hook_in, hook_out=hook_out, ln_convention="tl3",
                   **{k: v.detach().clone() for k, v in params.items()})
    with torch.no_grad():
        acts = d.encode(x[test])
        stats = {
            "fve": round(fraction_variance_explained(y[test], d.decode(acts)), 4),
            "l0": round(float((acts > 0).float().sum(1).mean()), 2),
            "dead_fraction": round(float((d.encode(x).amax(0) <= 0).float().mean()), 4),
            "n_train": len(train), "n_test": n_test, **{k: getattr(cfg, k) for k in ("width", "l1", "steps", "seed")},
        }
    return d, stats


def train_dictionaries(model, tokens: Int[Tensor, "batch seq"], cfg: TrainConfig = TrainConfig(), *,  # noqa: ANN001
                       layers: list[int] | None = None, progress: bool = False) -> list[tuple[Dictionary, dict]]:
    """One dictionary per layer (transcoders need MLPs), fitted on ``model``'s activations over ``tokens``."""
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else layers
    if cfg.kind == "transcoder" and model.cfg.attn_only:
        raise ConfigError(f"model {model.cfg.model_name!r} is attention-only: it has no MLPs to transcode; "
                          "train SAEs (kind='sae') instead")
    pairs = []
    for layer in layers:
        if cfg.kind == "transcoder":
            pairs.append((f"blocks.{layer}.{cfg.transcoder_in}", f"blocks.{layer}.hook_mlp_out"))
        else:
            pairs.append((f"blocks.{layer}.{cfg.sae_hook}",) * 2)
    acts = collect(model, tokens, sorted({h for p in pairs for h in p}))
    name = getattr(model.cfg, "model_name", "model")
    out = []
    for (hin, hout), layer in zip(pairs, layers):
        tag = "tc" if cfg.kind == "transcoder" else "sae"
        d, stats = fit(acts[hin], acts[hout], cfg, id=f"{name}/{tag}{layer}-w{cfg.width}", hook_in=hin,
                       hook_out=hout, progress=progress)
        log.info("%s: held-out FVE %.3f, L0 %.1f", d.id, stats["fve"], stats["l0"])
        out.append((d, stats))
    return out


def random_dictionaries(model, kind: str = "transcoder", width: int = 64, seed: int = 0, *,  # noqa: ANN001
                        layers: list[int] | None = None, sae_hook: str = "hook_resid_post",
                        transcoder_in: str = "ln2.hook_normalized", bias: float = -0.5,
                        cross_layer: bool = False) -> list[Dictionary]:
    """Untrained, seeded dictionaries (Gaussian weights, negative encoder bias): fixtures for tests and benchmarks.
    ``cross_layer``: a cross-layer transcoder (every layer's features also decode into every later layer)."""
    g = torch.Generator().manual_seed(seed)
    d, L = model.cfg.d_model, model.cfg.n_layers
    out = []
    for layer in range(L) if layers is None else layers:
        hin = f"blocks.{layer}.{transcoder_in if kind == 'transcoder' else sae_hook}"
        hout = f"blocks.{layer}.hook_mlp_out" if kind == "transcoder" else hin
        W_enc, W_dec = torch.randn(d, width, generator=g) / d ** 0.5, torch.randn(width, d, generator=g) / width ** 0.5
        later = None
        if cross_layer and layer < L - 1:
            later = torch.randn(width, L - 1 - layer, d, generator=g) / width ** 0.5
        out.append(Dictionary(
            id=f"random-{'clt' if cross_layer else kind}{layer}-w{width}", kind=kind, hook_in=hin, hook_out=hout,
            ln_convention="tl3", W_enc=W_enc, b_enc=torch.full((width,), bias), W_dec=W_dec,
            b_dec=torch.randn(d, generator=g) * 0.1, W_dec_later=later,
        ).to(dtype=model.cfg.dtype))
    return out


def zoo_tokens(model, n: int, seed: int) -> Int[Tensor, "n seq"]:  # noqa: ANN001
    """Training text for a zoo model: its task distribution for ``toy-ioi`` / ``toy-ioi-circuit`` /
    ``toy-induction-2l`` (clean and corrupted induction prompts), random tokens otherwise."""
    from circuitdb.models.train import RECIPES

    g = torch.Generator().manual_seed(seed)
    name = getattr(model.cfg, "model_name", "")
    if name.startswith("toy-ioi") and name in RECIPES:
        from circuitdb.models.train_ioi import IOIData

        data = IOIData(**RECIPES[name].data)  # the distribution the model was trained on
        if not data.fillers_max:  # fixed positions: the shipped transcoders' text (IOIData's defaults)
            return IOIData().batch(g, n)[0]
        # one filler count per batch: batches of 64, right-padded with random words to the longest
        chunks = [data.batch(g, 64)[0] for _ in range((n + 63) // 64)]
        width = max(c.shape[1] for c in chunks)
        pad = lambda c: torch.cat([c, torch.randint(1, model.cfg.d_vocab, (len(c), width - c.shape[1]),  # noqa: E731
                                                    generator=g)], dim=1)
        return torch.cat([pad(c) for c in chunks])[:n]
    if name == "toy-induction-2l":
        from circuitdb.tasks.induction import induction_task

        task = induction_task(model, n=(n + 1) // 2, seed=seed, half_len=16)
        return torch.cat([task.clean, task.corrupted])[:n]
    seq = min(model.cfg.n_ctx, 32)
    toks = torch.randint(1, model.cfg.d_vocab, (n, seq), generator=g)
    toks[:, 0] = 0
    return toks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--kind", default="transcoder", choices=("transcoder", "sae"))
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--l1", type=float, default=2e-2)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--sequences", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default: the zoo's dictionaries/ folder)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    from circuitdb.dictionaries.load import zoo_dictionary_dir
    from circuitdb.dictionaries.safetensors import save_dictionary
    from circuitdb.models import load_model

    model = load_model(a.model)
    cfg = TrainConfig(kind=a.kind, width=a.width, l1=a.l1, steps=a.steps, seed=a.seed)
    out = Path(a.out) if a.out else zoo_dictionary_dir(a.model)
    weights = zoo_dictionary_dir(a.model).parent / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else ""
    for d, stats in train_dictionaries(model, zoo_tokens(model, a.sequences, a.seed), cfg, progress=True):
        if stats["fve"] < MIN_FVE:
            log.warning("%s: FVE %.3f is below the documented %.2f", d.id, stats["fve"], MIN_FVE)
        save_dictionary(d, out / d.id.split("/")[-1], stats={**stats, "sequences": a.sequences,
                                                                    "model_sha256": digest})
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
