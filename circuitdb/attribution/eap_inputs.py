"""The inputs of the component engines (EAP, EAP-IG, exact patching): ablation / batch-size / dataset checks, the
batches of a dataset, and the metric called on a batch (prepared where it needs the clean logits, checked for one value
per example, and checked to be per-example separable where per-example scores are asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from circuitdb.errors import AttributionError, ConfigError, one_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs

ABLATIONS = ("patch", "zero", "mean")


def check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise ConfigError(one_of(ablation, ABLATIONS, "ablation"))


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def check_dataset(model: "HookedTransformer", dataset: "PromptPairs") -> None:
    """ConfigError if ``dataset`` does not fit the model (vocabulary, context, answer positions)."""
    dataset.check_fits(model)
    pos = dataset.answer_pos
    if int(pos.min()) < 0 or int(pos.max()) >= dataset.seq_len:
        raise ConfigError(f"dataset {dataset.name!r}: answer_pos {int(pos.max())} outside the prompt length "
                          f"{dataset.seq_len}")


def batches(dataset: "PromptPairs", batch_size: int, progress: bool, desc: str):  # noqa: ANN201
    """Yield sub-datasets of ``batch_size`` examples, with a tqdm progress bar unless ``progress`` is False."""
    n = len(dataset)
    starts = range(0, n, batch_size)
    for s in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2, leave=False):
        yield dataset.batch(slice(s, min(n, s + batch_size)))


def metric_values(metric: Callable, logits: Tensor, batch: "PromptPairs") -> Float[Tensor, " batch"]:
    """Call the metric and check it returned one value per example (ConfigError naming the shape otherwise)."""
    out = metric(logits, batch)
    if not isinstance(out, Tensor) or tuple(out.shape) != (len(batch),):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(f"metric {getattr(metric, '__name__', metric)!r} returned {shape}; expected one value per "
                          f"example, shape ({len(batch)},)")
    return out


def prepared(metric: Callable, model: "HookedTransformer", batch: "PromptPairs") -> Callable:
    """The metric ready for this batch: metrics with ``needs_clean`` are prepared on a clean no-grad forward."""
    if not getattr(metric, "needs_clean", False):
        return metric
    with torch.no_grad():
        logits = model(batch.clean.to(model.cfg.device))
    return metric.prepare(logits, batch)


# ------------------------------------------------------------------------------------------------ forward passes


def check_separable(model: "HookedTransformer", batch: "PromptPairs", metric: Callable, values: Tensor,
                    rtol: float = 1e-4) -> None:
    """AttributionError if the metric's value for the batch's first example differs from its value with that example
    run alone: per-example scores need a metric of each example's own logits (one extra forward of one prompt)."""
    one = batch.batch(slice(0, 1))
    with torch.no_grad():  # called inside engine_mode
        alone = float(metric_values(prepared(metric, model, one), model(one.clean.to(model.cfg.device)), one)[0])
    got = float(values[0])
    scale = max(abs(alone), abs(got), 1e-6)
    if not abs(alone - got) <= rtol * scale + 1e-6:
        raise AttributionError(
            f"metric {getattr(metric, '__name__', metric)!r} couples the examples of a batch: example 0 gives "
            f"{got:.6g} inside a batch of {len(batch)} and {alone:.6g} alone, so per-example scores are undefined; "
            "use a metric of each example's own logits (logit_diff, logprob, kl), or one prompt per batch")
