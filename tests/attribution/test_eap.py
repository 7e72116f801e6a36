"""EAP equals the first-order term of patching, computed independently; EAP-IG, ablations, batching, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitdb.attribution.components import component_graph
from circuitdb.attribution.eap import EAPConfig, eap_scores, scores_to_edges
from circuitdb.errors import ConfigError
from circuitdb.models import load_model
from circuitdb.tasks.base import PromptPairs
from circuitdb.tasks.metrics import get_metric, logit_diff


def random_pairs(model, n: int = 6, seq: int = 7, seed: int = 0) -> PromptPairs:  # noqa: ANN001
    g = torch.Generator().manual_seed(seed)
    V = model.cfg.d_vocab
    clean = torch.randint(0, V, (n, seq), generator=g)
    corrupted = clean.clone()
    corrupted[:, : seq - 2] = torch.randint(0, V, (n, seq - 2), generator=g)
    corrupted[:, -1] = torch.randint(0, V, (n,), generator=g)
    return PromptPairs(clean, corrupted, torch.randint(0, V, (n,), generator=g), torch.randint(0, V, (n,), generator=g))


def _outputs(model, tokens) -> list[torch.Tensor]:  # noqa: ANN001
    """Source outputs [batch, pos, d] in node order, read with TransformerLens' own cache (independent of the engine)."""
    model.set_use_attn_result(True)
    try:
        _, cache = model.run_with_cache(tokens)
    finally:
        model.set_use_attn_result(False)
    out = [cache["blocks.0.hook_resid_pre"]]
    for layer in range(model.cfg.n_layers):
        out += list(cache[f"blocks.{layer}.attn.hook_result"].unbind(2))
        if not model.cfg.attn_only:
            out.append(cache[f"blocks.{layer}.hook_mlp_out"])
    return out


def first_order_terms(model, ds: PromptPairs, metric, base: list[torch.Tensor]) -> torch.Tensor:  # noqa: ANN001
    """d/dε of mean M(clean with in_v += ε (z_u(base) − z_u(clean))) at ε = 0 for every (receiver, source) pair, via
    one scalar ε per pair added inside the receiver's hook (gradient at clean × activation difference, by autograd
    through separate hooks rather than the engine's receiver gradients)."""
    comp = component_graph(model)
    clean = _outputs(model, ds.clean)
    diff = torch.stack([b - c for b, c in zip(base, clean)], dim=2)  # batch pos src d
    eps = torch.zeros(comp.n_rcv, comp.n_src, dtype=diff.dtype, requires_grad=True)
    H = model.cfg.n_heads

    def add(t0: int, n: int):
        def hook(act, hook):  # noqa: ANN001, ANN202
            S = comp.rcv_n_upstream(t0)
            d = torch.einsum("ts,bpsd->bptd", eps[t0:t0 + n, :S], diff[:, :, :S])
            return act + (d[:, :, 0] if act.ndim == 3 else d)
        return hook

    hooks = []
    for layer in range(model.cfg.n_layers):
        for c in "qkv":
            hooks.append((f"blocks.{layer}.hook_{c}_input", add(comp.rcv_index(layer, c, 0), H)))
        if not model.cfg.attn_only:
            hooks.append((f"blocks.{layer}.hook_mlp_in", add(comp.rcv_index(layer, ""), 1)))
    hooks.append((f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", add(comp.n_rcv - 1, 1)))
    model.set_use_split_qkv_input(True)
    if not model.cfg.attn_only:
        model.set_use_hook_mlp_in(True)
    if model.cfg.n_key_value_heads is not None:
        model.set_ungroup_grouped_query_attention(True)
    try:
        with model.hooks(fwd_hooks=hooks):
            m = metric(model(ds.clean), ds).mean()
        (g,) = torch.autograd.grad(m, eps)
    finally:
        model.set_use_split_qkv_input(False)
        if not model.cfg.attn_only:
            model.set_use_hook_mlp_in(False)
        model.set_ungroup_grouped_query_attention(False)
    return g * torch.as_tensor(comp.allowed)


def make_model(name: str):  # noqa: ANN201
    """A zoo model, or ``norm-<TYPE>``: a 2-layer MLP model with that normalization (RMS, RMSPre, LNPre), float64."""
    if not name.startswith("norm-"):
        return load_model(name, dtype="float64")
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, n_ctx=16, d_vocab=30,
                                  act_fn="gelu", normalization_type=name[5:], dtype=torch.float64, seed=0,
                                  positional_embedding_type="rotary" if name.endswith("RMS") else "standard")
    return HookedTransformer(cfg)


@pytest.mark.parametrize("name", ["random-2l", "random-gqa", "random-parallel", "random-attn-1l", "norm-RMS",
                                  "norm-LNPre"])
@pytest.mark.parametrize("ablation", ["patch", "zero", "mean"])
def test_eap_equals_first_order_term(name: str, ablation: str) -> None:
    model = make_model(name)
    ds = random_pairs(model)
    if ablation == "patch":
        base = _outputs(model, ds.corrupted)
    elif ablation == "zero":
        base = [torch.zeros_like(t) for t in _outputs(model, ds.clean)]
    else:
        base = [t.mean(0, keepdim=True).expand_as(t) for t in _outputs(model, ds.clean)]
    expected = first_order_terms(model, ds, logit_diff, base)
    got = eap_scores(model, ds, logit_diff, EAPConfig(method="eap", ablation=ablation, batch_size=4, progress=False))
    assert got.scores.shape == expected.shape
    assert float(expected.abs().max()) > 1e-3  # not vacuous
    torch.testing.assert_close(got.scores, expected.detach(), atol=1e-5, rtol=0)


def test_eap_ig_one_step_is_eap_and_steps_change_scores() -> None:
    model = load_model("random-2l", dtype="float64")
    ds = random_pairs(model)
    eap = eap_scores(model, ds, logit_diff, EAPConfig(method="eap", progress=False)).scores
    ig1 = eap_scores(model, ds, logit_diff, EAPConfig(method="eap-ig", ig_steps=1, progress=False)).scores
    ig5 = eap_scores(model, ds, logit_diff, EAPConfig(method="eap-ig", ig_steps=5, progress=False)).scores
    torch.testing.assert_close(ig1, eap, atol=1e-12, rtol=0)
    assert float((ig5 - eap).abs().max()) > 1e-4


def test_eap_ig_equals_averaged_gradients_at_interpolated_inputs() -> None:
    """EAP-IG score = mean over k of the first-order term taken at input e_base + k/m (e_clean − e_base)."""
    model = load_model("random-attn-1l", dtype="float64")
    ds = random_pairs(model, n=4)
    m = 3
    comp = component_graph(model)
    clean, corr = _outputs(model, ds.clean), _outputs(model, ds.corrupted)
    diff = torch.stack([b - c for b, c in zip(corr, clean)], dim=2)
    total = torch.zeros(comp.n_rcv, comp.n_src, dtype=torch.float64)
    for k in range(1, m + 1):
        e = corr[0] + k / m * (clean[0] - corr[0])
        leaf = e.clone().requires_grad_(True)
        grads = {}

        def keep(act, hook):  # noqa: ANN001, ANN202
            act.retain_grad()
            grads[hook.name] = act

        model.set_use_split_qkv_input(True)
        try:
            with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda a, hook: leaf)]
                             + [(f"blocks.0.hook_{c}_input", keep) for c in "qkv"]
                             + [("blocks.0.hook_resid_post", keep)]):
                logit_diff(model(ds.clean), ds).mean().backward()
        finally:
            model.set_use_split_qkv_input(False)
        g = torch.cat([grads[f"blocks.0.hook_{c}_input"].grad for c in "qkv"]
                      + [grads["blocks.0.hook_resid_post"].grad[:, :, None]], dim=2)
        total += torch.einsum("bptd,bpsd->ts", g, diff)
    expected = total / m * torch.as_tensor(comp.allowed)
    got = eap_scores(model, ds, logit_diff, EAPConfig(method="eap-ig", ig_steps=m, progress=False)).scores
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=0)


def test_batching_per_position_and_float32() -> None:
    from circuitdb.attribution.api import resolve_model

    model32 = load_model("random-2l")
    model64 = resolve_model(model32, "float64")  # a float64 copy; model32 is left alone
    assert model32.cfg.dtype == torch.float32 and model64.W_Q.dtype == torch.float64
    ds = random_pairs(model64, n=7)
    cfg = dict(method="eap-ig", ig_steps=2, progress=False)
    a = eap_scores(model64, ds, logit_diff, EAPConfig(batch_size=7, **cfg)).scores
    b = eap_scores(model64, ds, logit_diff, EAPConfig(batch_size=3, **cfg)).scores
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    pp = eap_scores(model64, ds, logit_diff, EAPConfig(batch_size=3, per_position=True, **cfg)).scores
    assert pp.shape == (ds.seq_len,) + a.shape
    torch.testing.assert_close(pp.sum(0), a, atol=1e-12, rtol=0)
    c = eap_scores(model32, ds, logit_diff, EAPConfig(batch_size=7, **cfg)).scores
    assert c.dtype == torch.float64  # accumulated in float64
    torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-4)


def test_kl_metric_is_prepared_per_batch() -> None:
    model = load_model("random-2l", dtype="float64")
    ds = random_pairs(model, n=5)
    res = eap_scores(model, ds, get_metric("kl"), EAPConfig(method="eap-ig", ig_steps=3, batch_size=2,
                                                            progress=False))
    assert abs(res.clean_metric) < 1e-12  # KL of the clean run to itself
    assert res.baseline_metric < 0 and float(res.scores.abs().max()) > 0
    edges = scores_to_edges(component_graph(model), res.scores)
    assert edges.shape == (component_graph(model).n_edges,) and np.isfinite(edges.numpy()).all()


def test_config_validation_and_bad_metric() -> None:
    with pytest.raises(ConfigError, match="unknown EAP method 'eag'"):
        EAPConfig(method="eag")
    with pytest.raises(ConfigError, match="unknown ablation 'resample'.*mean, patch, zero"):
        EAPConfig(ablation="resample")
    with pytest.raises(ConfigError, match="ig_steps must be an integer >= 1"):
        EAPConfig(ig_steps=0)
    model = load_model("random-attn-1l")
    ds = random_pairs(model)
    with pytest.raises(ConfigError, match=r"expected one value per example, shape \(6,\)"):
        eap_scores(model, ds, lambda logits, batch: logits.sum(), EAPConfig(progress=False))
    assert not model.cfg.use_split_qkv_input and not any(hp._forward_hooks for hp in model.hook_dict.values())
