"""A checkpoint sweep of toy-induction-2l: one graph per checkpoint, and the circuit_emergence query finds the step
where the previous-token → induction K-composition appears, checked against attention patterns of each checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import circuitdb
from circuitdb.ingest.runner import run_job
from circuitdb.ingest.spec import load_job
from circuitdb.models.attention_scores import induction_scores, prev_token_scores, repeated_random_tokens
from circuitdb.models.zoo import ZOO_DIR
from circuitdb.store.base import open_store

ROOT = Path(__file__).resolve().parents[2]
CKPT_DIR = ZOO_DIR / "toy-induction-2l" / "checkpoints"


def _attention_formation() -> tuple[list[int], np.ndarray, int | None]:
    """Per checkpoint (by step): prev-token score of A0.2 × induction score of A1.2 on fresh repeated random
    tokens, and the first step where A0.2 attends to the previous token (≥ 0.5) and A1.2 induces (≥ 0.2)."""
    steps, strength, first = [], [], None
    for folder in sorted(CKPT_DIR.glob("step-*")):
        m = circuitdb.load_model(folder)
        toks = repeated_random_tokens(m.cfg.d_vocab - 1, 32, 20, seed=7)
        prev, ind = float(prev_token_scores(m, toks)[0, 2]), float(induction_scores(m, toks)[1, 2])
        step = int(m.cfg.checkpoint_value)
        steps.append(step)
        strength.append(prev * ind)
        if first is None and prev >= 0.5 and ind >= 0.2:
            first = step
    return steps, np.asarray(strength), first


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"embedded:{tmp_path_factory.mktemp('sweep')}/st"
    s = run_job(load_job(ROOT / "ingest" / "toy-induction-checkpoints.toml"), store=uri,
                base_dir=ROOT / "ingest")
    assert s.written == len(list(CKPT_DIR.glob("step-*"))) >= 6
    return uri


def test_last_checkpoint_is_the_shipped_model() -> None:
    from safetensors.torch import load_file

    last = max(CKPT_DIR.glob("step-*"))
    a, b = load_file(str(last / "model.safetensors")), load_file(str(ZOO_DIR / "toy-induction-2l" / "model.safetensors"))
    assert set(a) == set(b) and all(bool((a[k] == b[k]).all()) for k in b)


def test_one_graph_per_checkpoint_with_its_step(sweep: str) -> None:
    with open_store(sweep) as st:
        graphs = [st.read_graph(g) for g in st.list_graphs()["id"]]
    steps = sorted(g.meta["checkpoint"]["value"] for g in graphs)
    assert steps == sorted(int(p.name.split("-")[1]) for p in CKPT_DIR.glob("step-*"))
    assert len({g.meta["model_id"] for g in graphs}) == len(graphs)  # each checkpoint is its own model identity


def test_circuit_emergence_matches_attention_patterns(sweep: str) -> None:
    steps, strength, first = _attention_formation()
    assert first is not None and steps[0] < first < steps[-1]  # the sweep brackets the formation
    with open_store(sweep) as st:
        q = circuitdb.query(st, "circuit_emergence", source="A0.2", target="A1.2", channel="k", threshold=0.5,
                            job="toy-induction-checkpoints")
        none = circuitdb.query(st, "circuit_emergence", source="A0.2", target="A1.2", threshold=1e6)
        other = circuitdb.query(st, "circuit_emergence", model="toy-ioi")
    assert q["step"].tolist() == steps
    assert set(q["first_step"]) == {first}
    assert q["passes"].tolist() == [s >= first for s in steps]  # monotone here: once formed it stays
    assert none["first_step"].isna().all() and len(none) == len(steps) and other.empty
    w = q["abs_weight"].to_numpy()
    rho = np.corrcoef(_ranks(w), _ranks(strength))[0, 1]  # Spearman: the edge grows with the attention patterns
    assert rho > 0.7, (w, strength)
