"""The logit lens: the unembedding of the residual stream at every layer, and of what each node of a graph writes.

Conventions (stated once):
- The *residual lens* (:func:`logit_lens`) reads ``blocks.{l}.hook_resid_pre`` before every layer and the last
  ``hook_resid_post`` after it, through the model's final LayerNorm and unembedding (row ``l``; the last row equals
  the model's logits).
- The *node lens* (:func:`node_lens`) of a residual-writing node (head, MLP, feature, error) is the unembedding of
  the vector it writes into the residual stream on the graph's prompt, at its position, through the final
  LayerNorm with its scale frozen at the clean value (centring and ``ln_final.w`` applied, no bias):
  ``lens[v] = ((x − mean x) / scale_p · w) · W_U[:, v]`` — the node's direct effect on every token's logit at its
  position (DLA per token). A head writes ``z[p, h] · W_O[h]``, an MLP ``hook_mlp_out[p]``, a feature
  ``a · W_dec[i]`` (its dictionary's output hook), an error node the dictionary's reconstruction error there.
  Component graphs without positions (several prompts) use the answer position of every attribution prompt and
  the mean over prompts.
- :func:`lens_labels` turns a lens into node labels (``lens: Mary +2.31 · John +1.05 · …``): the Browser caption
  and the store's ``label`` property, written with ``GraphStore.set_node_labels`` (:func:`label_stored_graph`);
  an existing label (a feature description) keeps its text and gets the lens after ``" | "``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

    from circuitdb.graph import AttributionGraph
    from circuitdb.store.base import GraphStore

log = logging.getLogger(__name__)

LENS_KINDS = ("head", "mlp", "feature", "error")
LENS_PREFIX = "lens: "
_KEY = re.compile(r"^(?:A(?P<al>\d+)\.(?P<ah>\d+)|M(?P<ml>\d+)|F(?P<fl>\d+):(?P<fi>\d+)|ERR(?P<el>\d+))"
                  r"(?:@(?P<pos>\d+))?(?:>.*)?$")


def logit_lens(model: "HookedTransformer", tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "layer batch seq vocab"]:
    """The unembedding (through the final LayerNorm) of the residual stream before every layer and after the last:
    row ``l`` reads ``blocks.{l}.hook_resid_pre``, the last row equals the model's logits."""
    tokens = tokens if tokens.ndim == 2 else tokens[None]
    L = model.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_pre" for l in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda n: n in names)
        resid = torch.stack([cache[n] for n in names])
        return model.unembed(model.ln_final(resid.flatten(0, 1))).reshape(len(names), *tokens.shape, -1)


def logit_lens_metric(model: "HookedTransformer", dataset: Any, metric: Any = None) -> Float[Tensor, " layer"]:
    """The task metric (mean over ``dataset``, default the dataset's metric) read from the logit lens before every
    layer and after the last: how far up the residual stream the answer is already decodable. The last entry equals
    the metric of the model's own logits."""
    from circuitdb.attribution.api import resolve_metric
    from circuitdb.attribution.eap_inputs import metric_values, prepared

    fn = prepared(resolve_metric(metric, dataset), model, dataset)
    lens = logit_lens(model, dataset.clean)
    return torch.stack([metric_values(fn, lg, dataset).mean() for lg in lens]).detach()


def parse_node_key(key: str) -> tuple[str, int, int, int | None] | None:
    """``(kind, layer, head / feature index (-1 for MLPs and errors), pos or None)`` of a residual-writing node's key
    (``A1.2``, ``A1.2@5``, ``A1.2@5>F2:3@7``, ``M0@5``, ``F1:37@5``, ``ERR1@5``), or None for any other key."""
    m = _KEY.match(str(key))
    if m is None:
        return None
    pos = None if m["pos"] is None else int(m["pos"])
    if m["al"] is not None:
        return "head", int(m["al"]), int(m["ah"]), pos
    if m["ml"] is not None:
        return "mlp", int(m["ml"]), -1, pos
    if m["fl"] is not None:
        return "feature", int(m["fl"]), int(m["fi"]), pos
    return "error", int(m["el"]), -1, pos


def _prompts(model: "HookedTransformer", graph: "AttributionGraph", dataset: Any) -> tuple[Tensor, Tensor]:
    """``(tokens [batch, seq], answer position [batch])`` of the graph's prompt(s)."""
    if dataset is None and graph.meta.get("tokens"):
        toks = torch.as_tensor(graph.meta["tokens"], dtype=torch.long)
        toks = toks if toks.ndim == 2 else toks.reshape(1, -1)
        return toks, torch.full((len(toks),), toks.shape[1] - 1)
    if dataset is None:
        from circuitdb.circuits.splits import in_sample

        dataset = in_sample(model, graph.meta)
    return dataset.clean, dataset.answer_pos.reshape(-1)


@torch.no_grad()
def node_lens(model: "HookedTransformer", graph: "AttributionGraph", *, dictionaries: Any = None,
              dataset: Any = None, kinds: tuple[str, ...] = LENS_KINDS) -> tuple[list[str], Float[Tensor, "node vocab"]]:
    """``(keys, lens)``: the node lens (module doc) of every node of ``graph`` whose kind is in ``kinds``.

    Per-position nodes read the graph's prompt (``meta["tokens"]``) at their position; position-less nodes
    (component graphs) the mean over ``dataset`` (default: the graph's attribution prompts) at the answer position.
    ``dictionaries`` (feature / error nodes; default the model's zoo dictionaries) must include the graph's."""
    from circuitdb.dictionaries.base import parse_hook

    nodes = graph.nodes
    keys = [k for k, kd in zip(graph.keys.tolist(), nodes["kind"].tolist()) if kd in kinds]
    parsed = [parse_node_key(k) for k in keys]
    bad = [k for k, p in zip(keys, parsed) if p is None]
    if bad:
        raise ConfigError(f"node(s) {bad[:5]} of kinds {kinds} have keys the logit lens cannot read")
    dicts: list = []
    if any(p[0] in ("feature", "error") for p in parsed):
        from circuitdb.dictionaries.load import load_dictionaries

        dicts = load_dictionaries(dictionaries, model, dtype=model.cfg.dtype)
    by_layer = {parse_hook(d.hook_in)[0]: d for d in dicts}
    tokens, ans = _prompts(model, graph, dataset)
    names = {"ln_final.hook_scale"} | {f"blocks.{p[1]}.attn.hook_z" for p in parsed if p[0] == "head"}
    names |= {f"blocks.{p[1]}.hook_mlp_out" for p in parsed if p[0] == "mlp"}
    for p in parsed:
        if p[0] in ("feature", "error"):
            if p[1] not in by_layer:
                raise ConfigError(f"no dictionary at layer {p[1]} for the graph's {p[0]} nodes; dictionaries are at "
                                  f"layers {sorted(by_layer)}")
            names |= {by_layer[p[1]].hook_in, by_layer[p[1]].hook_out}
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda n: n in names)
    rows = torch.arange(len(tokens))
    scale = cache["ln_final.hook_scale"] if "ln_final.hook_scale" in cache else None
    w = getattr(getattr(model, "ln_final", None), "w", None)
    acts = {la: d.encode(cache[d.hook_in]) for la, d in by_layer.items() if d.hook_in in cache}
    out = []
    for kind, layer, index, pos in parsed:
        if kind == "head":
            x = torch.einsum("bse,ed->bsd", cache[f"blocks.{layer}.attn.hook_z"][:, :, index],
                             model.blocks[layer].attn.W_O[index])
        elif kind == "mlp":
            x = cache[f"blocks.{layer}.hook_mlp_out"]
        elif kind == "feature":
            x = acts[layer][..., index, None] * by_layer[layer].W_dec[index]
        else:
            d = by_layer[layer]
            x = cache[d.hook_out] - d(cache[d.hook_in])  # what the replacement keeps as the error node
        at = ans if pos is None else torch.full_like(ans, pos)
        v = x[rows, at]  # batch d_model
        if model.cfg.normalization_type in ("LN", "LNPre"):
            v = v - v.mean(-1, keepdim=True)
        if scale is not None:
            v = v / scale[rows, at]
        if w is not None:
            v = v * w
        out.append((v @ model.W_U).mean(0))
    lens = torch.stack(out).float().cpu() if out else torch.zeros(0, model.cfg.d_vocab_out)
    return keys, lens


def lens_labels(model: "HookedTransformer", keys: list[str], lens: Tensor, *, k: int = 3,
                existing: dict[str, str] | None = None) -> dict[str, str]:
    """``{key: "lens: tok +v · tok +v · …"}``: the ``k`` tokens each node promotes most (value = logit change). An
    ``existing`` label keeps its text (minus an earlier lens part) and gets the lens after ``" | "``."""
    from circuitdb.models import detokenize

    words = detokenize(model, list(range(lens.shape[1]))) if len(keys) else []
    top = lens.topk(min(k, lens.shape[1]), dim=1) if len(keys) else None
    out = {}
    for i, key in enumerate(keys):
        text = LENS_PREFIX + " · ".join(f"{words[j].strip() or repr(words[j])} {float(v):+.2f}"
                                        for v, j in zip(top.values[i].tolist(), top.indices[i].tolist()))
        old = (existing or {}).get(key, "")
        old = old.split(" | " + LENS_PREFIX)[0] if not old.startswith(LENS_PREFIX) else ""
        out[key] = f"{old} | {text}" if old else text
    return out


def with_lens(model: "HookedTransformer", graph: "AttributionGraph", *, k: int = 3, **kwargs: Any) -> "AttributionGraph":
    """A copy of ``graph`` whose residual-writing nodes carry their lens label (module doc); ``kwargs`` go to
    :func:`node_lens`."""
    keys, lens = node_lens(model, graph, **kwargs)
    labels = graph.nodes.set_index("key")["label"].to_dict()
    new = lens_labels(model, keys, lens, k=k, existing=labels)
    nodes = graph.nodes.copy()
    nodes["label"] = [new.get(key, lab) for key, lab in zip(nodes["key"], nodes["label"])]
    return type(graph)(nodes, graph.src, graph.dst, graph.weight, graph.channel, dict(graph.meta))


def label_stored_graph(store: "GraphStore", graph_id: str, model: "HookedTransformer", *, k: int = 3,
                       **kwargs: Any) -> int:
    """Write the lens labels of stored graph ``graph_id`` into the store (``set_node_labels``: ``label`` and the
    Browser caption); returns how many nodes changed."""
    graph = store.read_graph(graph_id)
    keys, lens = node_lens(model, graph, **kwargs)
    labels = lens_labels(model, keys, lens, k=k, existing=graph.nodes.set_index("key")["label"].to_dict())
    n = store.set_node_labels(graph_id, labels)
    log.info("lens labels on %d nodes of graph %r", n, graph_id)
    return n
