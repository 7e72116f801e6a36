"""Retrain a toy zoo model from its seed: ``python -m circuitdb.models.train toy-induction-2l [--out DIR]``.

Training runs on the CPU with ``torch.set_num_threads(1)`` and a seeded generator for data and init, so a rerun on
the same torch version reproduces the shipped weights (the train_log.json records the torch version, seed, steps and
the final scores). Writes ``config.json``, ``model.safetensors``, ``train_log.json`` (and ``vocab.json``) to
``--out`` (default: the zoo folder inside the package).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from circuitdb.models.train_induction import save_checkpoint
from circuitdb.models.zoo import OFF_FLAGS, ZOO_DIR

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Recipe:
    name: str
    config: dict
    steps: int
    batch: int
    lr: float
    seed: int = 0
    weight_decay: float = 0.0
    warmup: int = 100
    data: dict = field(default_factory=dict)
    model_name: str | None = None  # config.json's model_name (default: name); toy-ioi-v2 is a drop-in toy-ioi
    eval: dict = field(default_factory=dict)  # keyword arguments of the recipe's evaluate()


RECIPES: dict[str, Recipe] = {
    "toy-induction-2l": Recipe(
        name="toy-induction-2l",
        config=dict(n_layers=2, n_heads=4, d_model=64, d_head=16, n_ctx=64, d_vocab=64, attn_only=True,
                    normalization_type=None, act_fn="gelu", positional_embedding_type="standard"),
        steps=6000, batch=32, lr=3e-3, seed=0, weight_decay=0.0,
        data=dict(n_topics=8, topic_size=40, min_rep=8, max_rep=28, p_repeat=0.9, p_topic=1.0),
    ),
    "toy-ioi": Recipe(
        name="toy-ioi",
        config=dict(n_layers=3, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=32, attn_only=False,
                    normalization_type="LN", act_fn="gelu", positional_embedding_type="standard"),
        steps=4000, batch=64, lr=1e-3, seed=0, weight_decay=0.1, data=dict(p_plain=0.5),
    ),
    # toy-ioi with variable name positions and BBAA prompts, so that the repeated name must be found by matching
    # tokens (duplicate-token → S-inhibition → name-mover circuit); a candidate replacement of toy-ioi.
    "toy-ioi-v2": Recipe(
        name="toy-ioi-v2",
        config=dict(n_layers=3, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=32, attn_only=False,
                    normalization_type="LN", act_fn="gelu", positional_embedding_type="standard"),
        steps=8000, batch=64, lr=1e-3, seed=0, weight_decay=0.1,
        data=dict(p_plain=0.5, fillers_max=6, order="mixed3", plain_copy=0.5, name_next=True), model_name="toy-ioi",
        eval=dict(fillers=6, order="mixed3"),
    ),
    # toy-ioi with 1-2 more pairs of names mentioned once that are not the answer (60% of batches) and random
    # fillers, which "copy every name, suppress S" cannot solve; a candidate replacement of toy-ioi (docs/design.md:
    # it did not grow the duplicate-token → S-inhibition → name-mover circuit either).
    "toy-ioi-v3": Recipe(
        name="toy-ioi-v3",
        config=dict(n_layers=3, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=40, attn_only=False,
                    normalization_type="LN", act_fn="gelu", positional_embedding_type="standard"),
        steps=4000, batch=64, lr=1e-3, seed=0, weight_decay=0.1,
        data=dict(p_plain=0.5, fillers_max=3, second_pair=0.6, pairs_max=2), model_name="toy-ioi",
        eval=dict(second_pair=2),
    ),
    # toy-ioi-v2's data (variable positions, BBAA prompts) plus the cross-entropy of one head per IOI role's attention
    # at the role's positions (train_ioi.GUIDE_ROLES; InterpBench-style, docs/design.md): A0.0 S2→S1, A1.0 END→S2,
    # A2.0 END→IO. The other heads are free; the zoo's toy-ioi-circuit (the full duplicate-token → S-inhibition →
    # name-mover circuit, found from attention in tests/circuits/test_ioi_full_circuit.py).
    "toy-ioi-circuit": Recipe(
        name="toy-ioi-circuit",
        config=dict(n_layers=3, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=32, attn_only=False,
                    normalization_type="LN", act_fn="gelu", positional_embedding_type="standard"),
        steps=4000, batch=64, lr=1e-3, seed=0, weight_decay=0.1,
        data=dict(p_plain=0.5, fillers_max=6, order="mixed3", plain_copy=0.5, name_next=True,
                  guide={"duplicate_token": [[0, 0]], "s_inhibition": [[1, 0]], "name_mover": [[2, 0]]}),
        eval=dict(fillers=6, order="mixed3"),
    ),
}


def build_config(recipe: Recipe) -> dict:
    """The saved config.json (HookedTransformerConfig fields)."""
    from circuitdb.models.vocab import INDUCTION_WORDS, IOI_WORDS

    cfg = dict(recipe.config)
    if recipe.name.startswith("toy-ioi"):
        cfg["d_vocab"] = len(IOI_WORDS)
    elif recipe.name == "toy-induction-2l":
        cfg["d_vocab"] = len(INDUCTION_WORDS)
    cfg.update(OFF_FLAGS, model_name=recipe.model_name or recipe.name, default_prepend_bos=True)
    return cfg


def train(recipe: Recipe, out: Path, checkpoints: tuple[int, ...] = (), checkpoint_dir: Path | None = None) -> dict:
    """Train ``recipe`` and write the model folder; returns the train log. ``checkpoints``: steps (0 = the init)
    whose weights are also saved, each as a loadable model folder ``checkpoint_dir/step-NNNNNN`` (default
    ``out/checkpoints``), see :func:`circuitdb.models.train_induction.save_checkpoint`."""
    from safetensors.torch import save_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuitdb.models import vocab as V

    torch.set_num_threads(1)
    torch.manual_seed(recipe.seed)
    cfg_dict = build_config(recipe)
    words = V.INDUCTION_WORDS if recipe.name == "toy-induction-2l" else V.IOI_WORDS
    model = HookedTransformer(HookedTransformerConfig(**cfg_dict), tokenizer=V.build_tokenizer(words, recipe.name))
    g = torch.Generator().manual_seed(recipe.seed + 1)
    if recipe.name == "toy-induction-2l":
        from circuitdb.models.train_induction import InductionData, evaluate, loss_fn

        data = InductionData(**recipe.data)
        sets = data.topic_sets(recipe.seed)
        next_batch = lambda: data.batch(g, recipe.batch, sets)  # noqa: E731
    else:
        from circuitdb.models.train_ioi import IOIData, evaluate, loss_fn

        data = IOIData(**recipe.data)
        next_batch = lambda: data.batch(g, recipe.batch)  # noqa: E731
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / recipe.warmup))
    t0 = time.time()
    losses = []
    ck_steps = sorted(set(checkpoints))
    for step in range(recipe.steps):
        if step in ck_steps:
            save_checkpoint(model, cfg_dict, words, checkpoint_dir or out / "checkpoints", step, ck_steps.index(step))
        loss = loss_fn(model, next_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 500 == 0 or step == recipe.steps - 1:
            log.info("%s step %d loss %.4f (%.0fs)", recipe.name, step, loss.item(), time.time() - t0)
    if recipe.steps in ck_steps:
        save_checkpoint(model, cfg_dict, words, checkpoint_dir or out / "checkpoints", recipe.steps,
                        ck_steps.index(recipe.steps))
    model.eval()
    scores = evaluate(model, **recipe.eval)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "model.safetensors").chmod(0o644)
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=1) + "\n")
    V.save_vocab(words, out / "vocab.json")
    tail = losses[-100:]
    train_log = {
        "name": recipe.name, "seed": recipe.seed, "steps": recipe.steps, "batch": recipe.batch, "lr": recipe.lr,
        "weight_decay": recipe.weight_decay, "data": recipe.data, "torch": torch.__version__,
        "final_loss": round(sum(tail) / len(tail), 4), "train_seconds": round(time.time() - t0, 1),
        "retrain": f"python -m circuitdb.models.train {recipe.name}", "scores": scores,
    }
    (out / "train_log.json").write_text(json.dumps(train_log, indent=1) + "\n")
    return train_log


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the packaged zoo folder)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--checkpoints", default="", metavar="S1,S2,...",
                   help="also save the weights after these steps (0 = init) under OUT/checkpoints/step-NNNNNN")
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="where the checkpoints go")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a config field (cfg.KEY), a data field (data.KEY) or a recipe field (KEY)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    r = RECIPES[a.name]
    if a.seed is not None:
        r = replace(r, seed=a.seed)
    if a.steps is not None:
        r = replace(r, steps=a.steps)
    for kv in a.set:
        k, v = kv.split("=", 1)
        v = json.loads(v)
        if k.startswith("cfg."):
            r = replace(r, config={**r.config, k[4:]: v})
        elif k.startswith("data."):
            r = replace(r, data={**r.data, k[5:]: v})
        else:
            r = replace(r, **{k: v})
    steps = tuple(int(x) for x in a.checkpoints.split(",") if x.strip())
    res = train(r, a.out or ZOO_DIR / r.name, steps, a.checkpoint_dir)
    sys.stdout.write(json.dumps(res, indent=1) + "\n")  # the script's output


if __name__ == "__main__":
    main()
