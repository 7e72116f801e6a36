"""The component graph of a TransformerLens ``HookedTransformer``, and the hook wiring every component method shares.

Conventions (stated once for ``components.py``, ``eap.py`` and ``patching.py``):

- **Components** (node order): ``E`` (token + positional embedding = ``blocks.0.hook_resid_pre``), then for each layer
  ``l``: heads ``A{l}.0 … A{l}.{H-1}`` then ``M{l}`` (absent in attention-only models), then ``LOGITS``.
- **Sources** are every component except ``LOGITS``; source index ``s`` equals the component's position in node order.
  A source's *output* is what it adds to the residual stream: ``E`` its embedding, a head ``z_h W_O[h]`` (what
  ``attn.hook_result`` would hold, without ``b_O``; computed from ``attn.hook_z`` by one einsum, because
  TransformerLens' ``use_attn_result`` path is ~5× slower), an MLP ``hook_mlp_out``.
- **Receivers** are the inputs of components: per layer the q inputs of its ``H`` heads, then their k inputs, then their
  v inputs (``hook_q_input``/``hook_k_input``/``hook_v_input``, one residual copy per head, under :func:`split_qkv`;
  EAP reaches their gradients without splitting, see :func:`circuitdb.attribution.eap.grad_pass`), then the MLP input
  (``hook_mlp_in``); last the ``LOGITS`` input (``blocks.{L-1}.hook_resid_post``, before the final LayerNorm).
  A receiver's input is the sum of the outputs of the sources upstream of it plus constant biases, so an edge
  ``u → v`` is "the term ``z_u`` inside ``in_v``".
- **Matrices are row = receiver (target), column = source**: ``scores[t, s]``; per-position mode adds a leading
  position axis ``scores[p, t, s]`` (an edge ``u@p → v@p``: the residual stream only connects equal positions; moving
  information across positions happens inside heads, from their k/v inputs at one position to their output at another).
- **Upstream** (which source feeds which receiver): sources of layers ``< l`` and ``E`` feed layer ``l``'s head
  inputs; an MLP also reads its own layer's heads, except in parallel attention/MLP models (GPT-J, NeoX) where the MLP
  reads ``resid_pre`` like the heads do; ``LOGITS`` reads everything.
- **Grouped-query attention**: the engine runs the model with ``ungroup_grouped_query_attention`` so every query head
  has its own k and v input (TransformerLens repeats the group's ``W_K``/``W_V`` per head, which computes the same
  function). An edge ``u → A{l}.{h}`` on channel k/v is then the part of the group's shared k/v input that head ``h``
  reads: patching it changes head ``h``'s keys/values only, and the group's total effect is the sum over its heads.
- Unsupported (ConfigError): ``shortformer`` positional embeddings, post-norm blocks and
  ``use_normalization_before_and_after`` (a head's result is not then an additive term of the residual stream).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd
from einops import einsum
from jaxtyping import Bool, Int

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

CHANNEL_CODE = {"": 0, "q": 1, "k": 2, "v": 3}
"""Channel codes, the same as :data:`circuitdb.graph.CHANNELS`."""


@dataclass(frozen=True)
class ComponentGraph:
    """The nodes, sources, receivers and allowed edges of one model's component graph (one position).

    Edges are listed receiver-major: ``edge_rcv[i], edge_src[i]`` index ``scores[t, s]``; :meth:`edge_mask_matrix`
    turns a per-edge mask into the dense ``[n_rcv, n_src]`` form the patching engine uses.
    """

    n_layers: int
    n_heads: int
    attn_only: bool
    parallel: bool

    # ---------------------------------------------------------------- components (node order)
    @cached_property
    def keys(self) -> tuple[str, ...]:
        out = ["E"]
        for layer in range(self.n_layers):
            out += [f"A{layer}.{h}" for h in range(self.n_heads)]
            if not self.attn_only:
                out.append(f"M{layer}")
        return tuple(out + ["LOGITS"])

    @property
    def n_nodes(self) -> int:
        return len(self.keys)

    @property
    def n_src(self) -> int:
        return self.n_nodes - 1

    @property
    def per_layer(self) -> int:
        """Sources per layer (heads + MLP)."""
        return self.n_heads + (0 if self.attn_only else 1)

    def head_index(self, layer: int, head: int) -> int:
        return 1 + layer * self.per_layer + head

    def mlp_index(self, layer: int) -> int:
        if self.attn_only:
            raise ConfigError(f"attention-only model has no MLP {layer}")
        return 1 + layer * self.per_layer + self.n_heads

    @property
    def logits_index(self) -> int:
        return self.n_nodes - 1

    @cached_property
    def node_frame(self) -> pd.DataFrame:
        """Node table (key, kind, layer, head); embed layer -1, logits layer n_layers, "none" = -1."""
        kind, layer, head = ["embed"], [-1], [-1]
        for lay in range(self.n_layers):
            kind += ["head"] * self.n_heads
            layer += [lay] * self.n_heads
            head += list(range(self.n_heads))
            if not self.attn_only:
                kind.append("mlp")
                layer.append(lay)
                head.append(-1)
        kind.append("logit")
        layer.append(self.n_layers)
        head.append(-1)
        return pd.DataFrame({"key": list(self.keys), "kind": kind, "layer": layer, "head": head})

    # ---------------------------------------------------------------- receivers
    @property
    def rcv_per_layer(self) -> int:
        return 3 * self.n_heads + (0 if self.attn_only else 1)

    @property
    def n_rcv(self) -> int:
        return self.n_layers * self.rcv_per_layer + 1

    def rcv_index(self, layer: int, channel: str, head: int = -1) -> int:
        """Receiver slot of head ``head``'s ``channel`` (q/k/v) input, or of the MLP (channel "") of ``layer``."""
        base = layer * self.rcv_per_layer
        if channel in ("q", "k", "v"):
            return base + "qkv".index(channel) * self.n_heads + head
        if channel == "" and not self.attn_only:
            return base + 3 * self.n_heads
        raise ConfigError(f"no receiver for channel {channel!r} at layer {layer}; valid channels: q, k, v"
                          + ("" if self.attn_only else ", '' (MLP)"))

    @cached_property
    def rcv_node(self) -> Int[np.ndarray, " n_rcv"]:
        """Node index of each receiver slot."""
        out = []
        for layer in range(self.n_layers):
            for _c in "qkv":
                out += [self.head_index(layer, h) for h in range(self.n_heads)]
            if not self.attn_only:
                out.append(self.mlp_index(layer))
        out.append(self.logits_index)
        return np.asarray(out, dtype=np.int64)

    @cached_property
    def rcv_channel(self) -> Int[np.ndarray, " n_rcv"]:
        """Channel code (:data:`CHANNEL_CODE`) of each receiver slot."""
        per = [CHANNEL_CODE[c] for c in "qkv" for _ in range(self.n_heads)] + ([] if self.attn_only else [0])
        return np.asarray(per * self.n_layers + [0], dtype=np.int8)

    def rcv_n_upstream(self, t: int) -> int:
        """Number of sources feeding receiver ``t``; they are always the prefix ``[0, n)`` of the sources."""
        if t == self.n_rcv - 1:
            return self.n_src
        layer, slot = divmod(t, self.rcv_per_layer)
        before = 1 + layer * self.per_layer  # E and every source of earlier layers
        if slot == 3 * self.n_heads and not self.parallel:  # MLP input reads resid_mid
            return before + self.n_heads
        return before

    # ---------------------------------------------------------------- edges
    @cached_property
    def allowed(self) -> Bool[np.ndarray, "n_rcv n_src"]:
        """``allowed[t, s]``: source ``s`` is upstream of receiver ``t``."""
        m = np.zeros((self.n_rcv, self.n_src), dtype=bool)
        for t in range(self.n_rcv):
            m[t, : self.rcv_n_upstream(t)] = True
        return m

    @cached_property
    def edge_rcv(self) -> Int[np.ndarray, " n_edges"]:
        return np.nonzero(self.allowed)[0].astype(np.int64)

    @cached_property
    def edge_src(self) -> Int[np.ndarray, " n_edges"]:
        return np.nonzero(self.allowed)[1].astype(np.int64)

    @property
    def n_edges(self) -> int:
        return len(self.edge_src)

    def edge_index(self, src_key: str, dst_key: str, channel: str = "") -> int:
        """Position of edge ``src_key → dst_key`` (channel q/k/v for heads) in the edge list."""
        keys = {k: i for i, k in enumerate(self.keys)}
        for k in (src_key, dst_key):
            if k not in keys:
                raise ConfigError(f"unknown component {k!r}; components are E, A{{l}}.{{h}}, M{{l}}, LOGITS")
        s, d = keys[src_key], keys[dst_key]
        hits = np.flatnonzero((self.edge_src == s) & (self.rcv_node[self.edge_rcv] == d)
                              & (self.rcv_channel[self.edge_rcv] == CHANNEL_CODE.get(channel, -1)))
        if len(hits) != 1:
            raise ConfigError(f"no edge {src_key} -> {dst_key} on channel {channel!r} in this model "
                              "(edges run downstream only; heads take channel q, k or v, MLPs and LOGITS '')")
        return int(hits[0])

    def edge_mask_matrix(self, edge_mask: Bool[np.ndarray, "*k n_edges"]) -> Bool[np.ndarray, "*k n_rcv n_src"]:
        """Per-edge boolean mask (edge-list order) → dense ``[..., n_rcv, n_src]`` mask."""
        edge_mask = np.asarray(edge_mask, dtype=bool)
        if edge_mask.shape[-1] != self.n_edges:
            raise ConfigError(f"edge mask has {edge_mask.shape[-1]} entries, this model's component graph has "
                              f"{self.n_edges} edges")
        out = np.zeros(edge_mask.shape[:-1] + (self.n_rcv, self.n_src), dtype=bool)
        out[..., self.edge_rcv, self.edge_src] = edge_mask
        return out

    # ---------------------------------------------------------------- per-position expansion
    def frames(self, scores: np.ndarray, positions: int | None = None,
               tokens: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Node and edge frames of :class:`~circuitdb.graph.AttributionGraph` from dense scores.

        ``scores`` is ``[n_rcv, n_src]``, or ``[pos, n_rcv, n_src]`` with ``positions`` set (per-position mode:
        node ``c@p`` has row ``p * n_nodes + c``). ``tokens[p]`` (optional, -1 = varies) labels the ``E@p`` nodes.
        """
        base = self.node_frame
        dst_node = self.rcv_node[self.edge_rcv]
        chan = self.rcv_channel[self.edge_rcv]
        if positions is None:
            w = scores[self.edge_rcv, self.edge_src]
            edges = pd.DataFrame({"source": self.edge_src, "target": dst_node, "weight": w, "channel": chan})
            return base.copy(), edges
        n, m = self.n_nodes, self.n_edges
        nodes = pd.concat([base.assign(key=base["key"] + f"@{p}", pos=p) for p in range(positions)], ignore_index=True)
        if tokens is not None:
            tok = np.full(len(nodes), -1, dtype=np.int64)
            tok[np.arange(positions) * n] = tokens
            nodes["token"] = tok
        off = np.repeat(np.arange(positions) * n, m)
        edges = pd.DataFrame({
            "source": np.tile(self.edge_src, positions) + off,
            "target": np.tile(dst_node, positions) + off,
            "weight": scores[:, self.edge_rcv, self.edge_src].reshape(-1),
            "channel": np.tile(chan, positions),
        })
        return nodes, edges


def component_graph(model: "HookedTransformer") -> ComponentGraph:
    """The component graph of ``model``; raises ConfigError for architectures the engine cannot split."""
    cfg = model.cfg
    if cfg.positional_embedding_type == "shortformer":
        raise ConfigError("positional_embedding_type 'shortformer' is not supported by the component engine; "
                          "supported: standard, rotary, alibi")
    if getattr(cfg, "use_normalization_before_and_after", False) or "Olmo2" in str(cfg.original_architecture or ""):
        raise ConfigError(f"model {cfg.model_name!r} normalises block outputs (post-norm); head outputs are not "
                          "additive residual terms there, so component edges are undefined")
    return ComponentGraph(cfg.n_layers, cfg.n_heads, bool(cfg.attn_only), bool(cfg.parallel_attn_mlp))


# -------------------------------------------------------------------- hook wiring shared by eap.py / patching.py
EMBED_HOOK = "blocks.0.hook_resid_pre"


def source_hooks(comp: ComponentGraph) -> list[tuple[str, int, int]]:
    """(hook name, first source index, layer of a head hook or -1) of every source hook, in forward order.

    A head hook (``attn.hook_z``) spans ``n_heads`` sources; turn its activation into outputs with
    :func:`source_slots`."""
    out = [(EMBED_HOOK, 0, -1)]
    for layer in range(comp.n_layers):
        out.append((f"blocks.{layer}.attn.hook_z", comp.head_index(layer, 0), layer))
        if not comp.attn_only:
            out.append((f"blocks.{layer}.hook_mlp_out", comp.mlp_index(layer), -1))
    return out


def source_slots(model: "HookedTransformer", act, layer: int):  # noqa: ANN001, ANN201
    """A source hook's activation as outputs ``[batch, pos, slots, d_model]`` (heads: ``z_h W_O[h]``)."""
    if layer < 0:
        return act.unsqueeze(2)
    return einsum(act, model.blocks[layer].attn.W_O, "b p h e, h e d -> b p h d")


def receiver_hooks(comp: ComponentGraph) -> list[tuple[str, int, int]]:
    """(hook name, first receiver slot, number of slots) of every receiver hook, in receiver-slot order."""
    out = []
    H = comp.n_heads
    for layer in range(comp.n_layers):
        for c in "qkv":
            out.append((f"blocks.{layer}.hook_{c}_input", comp.rcv_index(layer, c, 0), H))
        if not comp.attn_only:
            out.append((f"blocks.{layer}.hook_mlp_in", comp.rcv_index(layer, ""), 1))
    out.append((f"blocks.{comp.n_layers - 1}.hook_resid_post", comp.n_rcv - 1, 1))
    return out


@contextlib.contextmanager
def engine_mode(model: "HookedTransformer") -> Iterator[ComponentGraph]:
    """Turn on the hooks the engine needs (MLP-input hook, ungrouped GQA; per-head results off) for the duration of
    the block, restoring the model's settings afterwards. Yields the component graph. Split q/k/v inputs (needed
    only to *patch* per-head inputs) are switched on locally with :func:`split_qkv`."""
    comp = component_graph(model)
    cfg = model.cfg
    names = ["use_split_qkv_input", "use_attn_result", "use_hook_mlp_in", "ungroup_grouped_query_attention"]
    saved = {nm: getattr(cfg, nm, False) for nm in names}
    try:
        cfg.use_split_qkv_input = False
        cfg.use_attn_result = False
        cfg.use_hook_mlp_in = not cfg.attn_only
        if getattr(cfg, "n_key_value_heads", None) is not None:
            cfg.ungroup_grouped_query_attention = True
        yield comp
    finally:
        for nm, v in saved.items():
            setattr(cfg, nm, v)


@contextlib.contextmanager
def split_qkv(model: "HookedTransformer", on: bool = True) -> Iterator[None]:
    """Within the block, run attention with one residual copy per head and q/k/v channel (``hook_{q,k,v}_input``)."""
    saved = model.cfg.use_split_qkv_input
    model.cfg.use_split_qkv_input = on
    try:
        yield
    finally:
        model.cfg.use_split_qkv_input = saved

