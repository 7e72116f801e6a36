"""Shared pytest configuration: quiet TransformerLens warnings, one torch thread, offline by default."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*HookedTransformer.*")


def pytest_configure(config) -> None:
    try:
        import torch

        torch.set_num_threads(1)  # tiny models: threads cost more than they give
    except ImportError:  # pragma: no cover
        pass
