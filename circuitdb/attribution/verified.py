"""``eap-ig+patching``: EAP-IG edge scores, verified by exact patching where the gradient cannot be trusted.

Conventions: edges, dense ``[n_rcv, n_src]`` score matrices and signs are those of
:mod:`circuitdb.attribution.components` / :mod:`circuitdb.attribution.eap` (weight ≈ metric(patched) − metric(clean)).

Why: a path gradient is exactly zero where attention stays saturated or uniform and an MLP is linear (or dead)
along the whole integration path — compiled (tracr) models are made of such parts, and trained models have them too.
EAP-IG then ties a real edge with every absent one, and more IG steps do not help. Exact patching has no such blind
spot, but costs one forward pass per edge. The verified method patches only the edges whose ranking the gradient
cannot decide:

1. EAP-IG scores ``s`` for every edge (``ig_steps + 1`` forward/backward passes per batch).
2. Candidates: every edge with ``|s| ≤ near_zero · max|s|`` (the gradient says nothing), plus, with ``top_k``, the
   edges ranked ``top_k // 2 … 2 · top_k`` by ``|s|`` (the boundary that decides a top-k circuit).
3. Each candidate is re-scored by exact patching (:func:`circuitdb.attribution.patching.exact_edge_scores`); the
   other edges keep their EAP-IG score (same units: both estimate ``M(edge patched) − M(clean)``).

Cost: EAP-IG plus one patched forward per candidate and batch; the graph's ``meta["scores"]`` records
``n_verified`` and ``verified_fraction``. bench/verified_bench.py measures it as a multiple of EAP's time.

Metrics and methods (what suits which):
- ``logit_diff`` / ``logprob``: a first-order signal at the clean point — every method works.
- ``kl``, ``l2`` / ``mse`` (distances to the clean output): their minimum IS the clean run, so the gradient there is zero and
  plain EAP scores every edge 0 (:func:`warn_if_all_zero` says so). EAP-IG integrates from the corrupted input
  and sees a signal; exact patching and ``eap-ig+patching`` are exact for any metric.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.tasks.base import PromptPairs

log = logging.getLogger(__name__)

VERIFIED_METHODS = ("eap-ig+patching",)
NEAR_ZERO = 1e-5
"""Default relative threshold below which a gradient score counts as "no signal" and is re-scored by patching."""
ALL_ZERO = 1e-7
"""A method's scores count as all (near) zero when max |score| ≤ ALL_ZERO · (1 + |clean metric|)."""


@dataclass(frozen=True)
class VerifiedConfig:
    """Parameters of the verified method (validated on construction)."""

    ig_steps: int = 5
    ablation: str = "patch"
    batch_size: int = 32
    near_zero: float = NEAR_ZERO
    top_k: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.near_zero < 1:
            raise ConfigError(f"near_zero must be in [0, 1), got {self.near_zero!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ConfigError(f"top_k must be a positive integer or None, got {self.top_k!r}")


@dataclass(frozen=True)
class VerifiedResult:
    """Dense verified scores, the EAP-IG scores they started from, and which edges were re-scored."""

    scores: Float[Tensor, "n_rcv n_src"]
    gradient: Float[Tensor, " n_edges"]
    verified: np.ndarray  # edge indices (component-graph edge order) re-scored by exact patching
    clean_metric: float
    baseline_metric: float | None
    n_edges: int

    def summary(self) -> dict[str, float]:
        out = {"clean_metric": self.clean_metric, "n_verified": int(self.verified.size),
               "verified_fraction": self.verified.size / max(self.n_edges, 1)}
        if self.baseline_metric is not None:
            out["corrupted_metric"] = self.baseline_metric
        return out


def candidates(gradient: np.ndarray, near_zero: float = NEAR_ZERO, top_k: int | None = None) -> np.ndarray:
    """Edge indices to re-score: near-zero gradient scores, plus the top-k boundary band (see module doc)."""
    a = np.abs(np.asarray(gradient, float))
    pick = a <= near_zero * (a.max() if a.size else 0.0)
    if top_k is not None:
        order = np.argsort(-a, kind="stable")
        pick[order[top_k // 2: 2 * top_k]] = True
    return np.flatnonzero(pick)


def verified_scores(model: "HookedTransformer", dataset: "PromptPairs", metric: Callable,
                    config: VerifiedConfig = VerifiedConfig()) -> VerifiedResult:
    """EAP-IG scores with the undecided edges re-scored by exact patching (module doc)."""
    from circuitdb.attribution.components import component_graph
    from circuitdb.attribution.eap import EAPConfig, eap_scores, scores_to_edges
    from circuitdb.attribution.patching import exact_edge_scores

    res = eap_scores(model, dataset, metric, EAPConfig(method="eap-ig", ig_steps=config.ig_steps,
                                                       ablation=config.ablation, batch_size=config.batch_size,
                                                       progress=config.progress))
    comp = component_graph(model)
    grad = scores_to_edges(comp, res.scores)
    idx = candidates(grad.numpy(), config.near_zero, config.top_k)
    dense = res.scores.clone()
    if idx.size:
        exact = exact_edge_scores(model, dataset, metric, ablation=config.ablation, edges=idx,
                                  batch_size=config.batch_size, progress=config.progress)
        rcv, src = torch.as_tensor(comp.edge_rcv[idx]), torch.as_tensor(comp.edge_src[idx])
        dense[rcv, src] = exact.to(dense.dtype)
    log.info("eap-ig+patching: %d of %d edges re-scored by exact patching", idx.size, comp.n_edges)
    return VerifiedResult(dense, grad, idx, res.clean_metric, res.baseline_metric, comp.n_edges)


def warn_if_all_zero(scores: np.ndarray, method: str, metric: str, clean_metric: float | None = None) -> bool:
    """Log a warning (and return True) when every score of ``method`` is (near) zero, naming the likely cause."""
    a = np.abs(np.asarray(scores, float))
    scale = 1.0 + abs(clean_metric or 0.0)
    if a.size == 0 or a.max() > ALL_ZERO * scale:
        return False
    if method == "eap":
        cause = (f"the gradient of metric {metric!r} vanishes at the clean run (KL / L2 / MSE to the clean output "
                 "have their minimum there); use logit_diff or logprob, or method 'eap-ig', 'patching' or "
                 "'eap-ig+patching'")
    else:
        cause = (f"patching an edge does not change metric {metric!r} (clean and corrupted prompts give the same "
                 "output, or the metric ignores it); check the dataset's corrupted prompts, the ablation and the "
                 "metric")
    log.warning("every %s edge score is (near) zero (max |score| = %.3g): %s", method, float(a.max()), cause)
    return True
