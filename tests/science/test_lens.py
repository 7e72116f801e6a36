"""The node logit lens: each node's direct effect on every token's logit, against the model run with the node's
vector added before the final LayerNorm (scale frozen) and against direct logit attribution; stored as labels."""

from __future__ import annotations

import pytest
import torch

import circuitdb
from circuitdb.attribution.head_stats import direct_logit_attribution
from circuitdb.lens import LENS_PREFIX, label_stored_graph, lens_labels, node_lens, with_lens
from circuitdb.store.base import open_store


@pytest.fixture(scope="module")
def ioi():
    torch.set_num_threads(1)
    model = circuitdb.load_model("toy-ioi").to(torch.float64)
    ds = circuitdb.load_task("ioi", model, n=4, seed=0)
    fg = circuitdb.attribute_features(model, ds.clean[0], prune=None, heads=False, progress=False, graph_id="fg-lens")
    return model, ds, fg


def _added_at_the_end(model, tokens: torch.Tensor, pos: int, x: torch.Tensor) -> torch.Tensor:
    """Logit change at ``pos`` when ``x`` is added to the last residual stream, the final LN scale held fixed."""
    L = model.cfg.n_layers
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == "ln_final.hook_scale")
        clean = model(tokens)
        scale = cache["ln_final.hook_scale"]

        def add(t, hook):  # noqa: ANN001, ANN202
            t = t.clone()
            t[:, pos] += x
            return t
        with model.hooks(fwd_hooks=[(f"blocks.{L - 1}.hook_resid_post", add),
                                    ("ln_final.hook_scale", lambda t, hook: scale)]):
            moved = model(tokens)
    return (moved - clean)[0, pos]


def test_node_lens_is_the_direct_effect_on_every_logit(ioi) -> None:
    model, ds, fg = ioi
    keys, lens = node_lens(model, fg)
    kinds = dict(zip(fg.keys.tolist(), fg.nodes["kind"]))
    assert {kinds[k] for k in keys} == {"feature", "error"} and lens.shape == (len(keys), model.cfg.d_vocab_out)
    from circuitdb.dictionaries.load import load_dictionaries

    dicts = {d.hook_in: d for d in load_dictionaries(None, model, dtype=torch.float64)}
    tokens = ds.clean[:1]
    _, cache = model.run_with_cache(tokens)
    checked = 0
    for i, key in enumerate(keys):
        if kinds[key] != "feature" or checked >= 5:
            continue
        layer, rest = key[1:].split(":")
        f, pos = (int(v) for v in rest.split("@"))
        d = dicts[f"blocks.{layer}.ln2.hook_normalized"]
        a = d.encode(cache[d.hook_in])[0, pos, f]
        want = _added_at_the_end(model, tokens, pos, a * d.W_dec[f])
        assert torch.allclose(lens[i].double(), want, atol=1e-5, rtol=1e-5), key
        checked += 1
    assert checked == 5
    # heads and MLPs of a per-position reading: the same construction from their outputs
    comp = circuitdb.attribute(model, ds.batch(slice(0, 1)), method="eap", progress=False, head_stats=False)
    hk, hl = node_lens(model, comp, dataset=ds.batch(slice(0, 1)))
    p = int(ds.answer_pos[0])
    z = cache["blocks.2.attn.hook_z"][0, p, 1] @ model.blocks[2].attn.W_O[1]
    assert torch.allclose(hl[hk.index("A2.1")].double(), _added_at_the_end(model, tokens, p, z), atol=1e-5)
    m = cache["blocks.0.hook_mlp_out"][0, p]
    assert torch.allclose(hl[hk.index("M0")].double(), _added_at_the_end(model, tokens, p, m), atol=1e-5)


def test_lens_of_the_answer_minus_wrong_is_direct_logit_attribution(ioi) -> None:
    model, ds, _ = ioi
    one = ds.batch(slice(1, 2))
    comp = circuitdb.attribute(model, one, method="eap", progress=False, head_stats=False)
    keys, lens = node_lens(model, comp, dataset=one)
    dla = direct_logit_attribution(model, one)
    a, w = int(one.answer.reshape(-1)[0]), int(one.wrong.reshape(-1)[0])
    for i, key in enumerate(keys):
        want = dla.heads[int(key[1]), int(key[3])] if key.startswith("A") else dla.mlps[int(key[1])]
        assert float(lens[i, a] - lens[i, w]) == pytest.approx(float(want), abs=1e-5), key


def test_lens_labels_in_the_store_keep_descriptions(ioi, tmp_path) -> None:
    model, _, fg = ioi
    keys, lens = node_lens(model, fg)
    feat = fg.nodes[fg.nodes.kind == "feature"].sort_values("influence").key.iloc[-1]
    with open_store(f"embedded:{tmp_path / 'db'}") as st:
        st.write_graph(fg)
        st.set_node_labels(fg.id, {feat: "says a name"})
        assert label_stored_graph(st, fg.id, model) == len(keys)
        assert label_stored_graph(st, fg.id, model) == len(keys)  # idempotent: the lens part is replaced
        back = st.read_graph(fg.id).nodes.set_index("key")["label"]
    top = circuitdb.detokenize(model, [int(lens[keys.index(feat)].argmax())])[0].strip()
    assert back[feat].startswith("says a name | " + LENS_PREFIX + top + " ")
    other = [k for k in keys if k != feat]
    assert all(back[k].startswith(LENS_PREFIX) and back[k].count(LENS_PREFIX) == 1 for k in other)
    logits = fg.keys[fg.nodes.kind.to_numpy() == "logit"]
    assert back[logits].tolist() == fg.nodes.set_index("key")["label"][logits].tolist()  # token labels untouched
    g2 = with_lens(model, fg, k=2)
    assert g2.nodes.set_index("key")["label"][feat].count("·") == 1
    assert lens_labels(model, [], lens[:0]) == {}


def test_lens_cli(ioi, tmp_path) -> None:
    from typer.testing import CliRunner

    from circuitdb.cli import app

    model, ds, _ = ioi
    comp = circuitdb.attribute(model, "ioi", method="eap", n=4, seed=0, progress=False, head_stats=False,
                               graph_id="comp-lens")
    uri = f"embedded:{tmp_path / 'db'}"
    with open_store(uri) as st:
        st.write_graph(comp)
    r = CliRunner().invoke(app, ["lens", comp.id, "-m", "toy-ioi", "--k", "2", "--store", uri])
    assert r.exit_code == 0, r.output
    n_nodes = int(comp.nodes.kind.isin(["head", "mlp"]).sum())
    assert f"lens labels on {n_nodes} node(s)" in r.output
    keys, lens = node_lens(model, comp)  # position-less nodes: the mean over the attribution prompts
    with open_store(uri) as st:
        back = st.read_graph(comp.id).nodes.set_index("key")["label"]
    top = circuitdb.detokenize(model, [int(lens[keys.index("A2.1")].argmax())])[0].strip()
    assert back["A2.1"].startswith(LENS_PREFIX + top + " ") and back["A2.1"].count("·") == 1
