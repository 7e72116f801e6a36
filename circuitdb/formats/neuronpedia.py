"""Neuronpedia / circuit-tracer attribution-graph JSON, both ways.

Conventions (stated once):
- The layout is the one circuit-tracer's ``create_graph_files`` writes and Neuronpedia's graph viewer reads
  (``metadata``, ``qParams``, ``nodes``, ``links``), checked in the tests against Neuronpedia's published
  ``graph-schema.json``. Node ids follow circuit-tracer: features ``{layer}_{index}_{pos}``, embeddings
  ``E_{token}_{pos}``, logits ``{n_layers + 1}_{token}_{pos}`` (clerp ``Output "tok" (p=0.123)``, which the viewer
  parses); errors ``{layer}_error_mlp_{pos}`` as Neuronpedia's own converter writes them (circuit-tracer's
  ``0_{layer}_{pos}`` collides with layer-0 feature ids). Frozen MLPs (``kind="mlp"``) are written as errors.
- ``influence`` is circuit-tracer's cumulative score (a node's share of total influence counting every node at least
  as influential), computed on ``reference`` (the unpruned graph, when a circuit is exported) from circuitdb's raw
  ``influence`` column, or from the edges (circuit-tracer's formula) when that column is empty. Logits carry none.
- Head nodes (feature graphs with ``heads=True``): ``heads="collapse"`` (default) folds them back into plain feature
  edges (:func:`~circuitdb.attribution.feature_heads.collapse_heads`), the viewer's own shape; ``heads="carry"``
  keeps them as ``feature_type "attention head"`` nodes with unique negative ``feature`` numbers (the viewer drops
  nodes whose ``layer_feature_ctx`` repeats) and ``channel`` on their links.
- Every exported node also carries ``circuitdb`` (its native row, non-default columns only), links carry
  ``channel`` when it is not empty, and ``metadata.circuitdb`` holds the graph's meta: a circuitdb export reads back
  exactly; a foreign file reads back by ``feature_type``/``layer``/``ctx_idx`` with keys ``F{l}:{i}@{p}``,
  ``ERR{l}@{p}``, ``E@{p}``, ``L:{token}@{p}`` and ``influence`` = the share of total influence recovered from the
  cumulative scores (exact for unpruned files).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from circuitdb.errors import ConfigError, GraphValidationError, one_of
from circuitdb.formats._common import (
    cumulative_scores, finite_or_none, graph_influence, native_row, read_json, validation_message,
)
from circuitdb.graph import CHANNELS, AttributionGraph, encode_channels

FEATURE_TYPES = {"feature": "cross layer transcoder", "error": "mlp reconstruction error",
                 "mlp": "mlp reconstruction error", "embed": "embedding", "logit": "logit", "head": "attention head"}
HEAD_MODES = ("collapse", "carry")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class NPMetadata(_Strict):
    slug: str
    scan: str
    prompt_tokens: list[str]
    prompt: str
    transcoder_list: list[str] = []
    node_threshold: Optional[float] = None
    pruning_settings: Optional[dict[str, Any]] = None
    circuitdb: Optional[dict[str, Any]] = None


class NPQParams(_Strict):
    pinnedIds: list[str] = []
    supernodes: list[Any] = []
    linkType: str = "both"
    clickedId: str = ""
    sg_pos: str = ""


class NPNode(_Strict):
    node_id: str
    feature: Optional[int]
    layer: Union[str, int]
    ctx_idx: int
    feature_type: str
    jsNodeId: str
    clerp: str
    influence: Optional[float] = None
    activation: Optional[float] = None
    token_prob: float = 0.0
    is_target_logit: bool = False
    run_idx: int = 0
    reverse_ctx_idx: int = 0
    circuitdb: Optional[dict[str, Any]] = None


class NPLink(_Strict):
    source: str
    target: str
    weight: float
    channel: Optional[Literal["", "q", "k", "v"]] = None


class NPGraph(_Strict):
    """A Neuronpedia / circuit-tracer graph file."""

    metadata: NPMetadata
    qParams: NPQParams
    nodes: list[NPNode]
    links: list[NPLink]


# ====================================================================== export
def to_neuronpedia(graph: Any, *, slug: str | None = None, scan: str | None = None,
                   reference: AttributionGraph | None = None, heads: str = "collapse",
                   node_threshold: float | None = None, edge_threshold: float | None = None) -> dict[str, Any]:
    """The Neuronpedia graph JSON (a dict) of a feature graph or a :class:`~circuitdb.circuits.circuit.Circuit`."""
    params: dict[str, Any] = {}
    if hasattr(graph, "graph") and hasattr(graph, "source_graph_id"):  # a Circuit
        params = dict(graph.params)
        graph = graph.graph
    if heads not in HEAD_MODES:
        raise ConfigError(one_of(heads, HEAD_MODES, "heads mode"))
    kinds = set(graph.nodes["kind"])
    if graph.meta.get("granularity") == "component" or ("head" in kinds and not kinds & {"feature", "error"}):
        raise ConfigError(f"graph {graph.id!r} is a component graph; Neuronpedia files hold feature graphs "
                          "(export component graphs with --format eap-ig)")
    if heads == "collapse" and "head" in kinds:
        from circuitdb.attribution.feature_heads import collapse_heads

        graph = collapse_heads(graph)
        if reference is not None and "head" in set(reference.nodes["kind"]):
            reference = collapse_heads(reference)
    nodes = graph.nodes
    cum = _cumulative(graph, reference)
    n_layers = _n_layers(graph)
    ids = _node_ids(nodes, n_layers)
    tokens = _prompt_tokens(graph)
    logit_order = _logit_order(nodes)
    out_nodes = []
    head_no = 0
    for i, rec in enumerate(nodes.to_dict("records")):
        kind, layer, pos = rec["kind"], int(rec["layer"]), int(rec["pos"])
        n: dict[str, Any] = {"node_id": ids[i], "feature": None, "layer": str(layer), "ctx_idx": max(pos, 0),
                             "feature_type": FEATURE_TYPES[kind], "jsNodeId": ids[i], "clerp": str(rec["label"]),
                             "influence": finite_or_none(cum[i]), "activation": finite_or_none(rec["activation"])}
        if kind == "feature":
            n["feature"] = int(rec["feature"])
            n["jsNodeId"] = f"{layer}_{int(rec['feature'])}-0"
        elif kind in ("error", "mlp"):
            n["feature"] = -1
        elif kind == "embed":
            n.update(feature=pos, layer="E", clerp="")
        elif kind == "logit":
            p = finite_or_none(rec["probability"]) or 0.0
            n.update(feature=int(rec["token"]), layer=str(n_layers + 1), token_prob=p, influence=None,
                     is_target_logit=bool(logit_order.get(i) == 0), jsNodeId=f"L_{int(rec['token'])}-{pos}",
                     clerp=f'Output "{_pp(rec["label"])}" (p={p:.3f})')
        elif kind == "head":
            head_no += 1
            n["feature"] = -1 - head_no
        n["circuitdb"] = native_row(rec)
        out_nodes.append(n)
    links = []
    for s, t, w, c in zip(graph.src.tolist(), graph.dst.tolist(), graph.weight.tolist(), graph.channel.tolist()):
        link = {"source": ids[s], "target": ids[t], "weight": w}
        if c:
            link["channel"] = CHANNELS[c]
        links.append(link)
    nt = node_threshold if node_threshold is not None else params.get("node_threshold")
    et = edge_threshold if edge_threshold is not None else params.get("edge_threshold")
    meta = graph.meta
    metadata: dict[str, Any] = {
        "slug": slug or _slug(meta.get("id", "graph")), "scan": scan or str(meta.get("model", "unknown")),
        "transcoder_list": [str(d) for d in meta.get("dictionaries") or []],
        "prompt_tokens": tokens, "prompt": _prompt_text(meta.get("prompt"), tokens),
        "node_threshold": float(nt) if nt is not None else 0.8,
        "info": {"generator": {"name": "circuitdb", "version": str(meta.get("circuitdb_version", ""))}},
        "circuitdb": meta,
    }
    if nt is not None or et is not None:
        metadata["pruning_settings"] = {k: float(v) for k, v in (("node_threshold", nt), ("edge_threshold", et))
                                        if v is not None}
    return {"metadata": metadata,
            "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
            "nodes": out_nodes, "links": links}


def write_neuronpedia(graph: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`to_neuronpedia` to ``path`` (strict JSON: no NaN)."""
    import json

    path = Path(path)
    path.write_text(json.dumps(to_neuronpedia(graph, **kwargs), allow_nan=False))
    return path


def _cumulative(graph: AttributionGraph, reference: AttributionGraph | None) -> np.ndarray:
    ref = reference if reference is not None else graph
    infl = ref.nodes["influence"].to_numpy(dtype=np.float64)
    non_logit = (ref.nodes["kind"] != "logit").to_numpy()
    if not np.isfinite(infl[non_logit]).any():
        infl = graph_influence(ref)
    cum = pd.Series(cumulative_scores(infl), index=ref.keys)
    return cum.reindex(graph.keys).to_numpy()


def _n_layers(graph: AttributionGraph) -> int:
    layers = graph.nodes["layer"].to_numpy()
    logit = (graph.nodes["kind"] == "logit").to_numpy()
    if logit.any():
        return int(layers[logit].max())
    return int(layers.max()) + 1 if len(layers) else 0


def _node_ids(nodes: pd.DataFrame, n_layers: int) -> list[str]:
    ids = []
    for k, l, p, f, t in nodes[["kind", "layer", "pos", "feature", "token"]].itertuples(index=False):
        p = max(int(p), 0)
        ids.append({"feature": f"{l}_{f}_{p}", "error": f"{l}_error_mlp_{p}", "mlp": f"{l}_error_mlp_{p}",
                    "embed": f"E_{t}_{p}", "logit": f"{n_layers + 1}_{t}_{p}"}.get(k, ""))
    for i, k in enumerate(nodes["key"]):
        if not ids[i]:
            ids[i] = "H_" + re.sub(r"[^A-Za-z0-9.:@>_-]", "_", str(k))
    seen: dict[str, int] = {}
    for i, nid in enumerate(ids):
        if nid in seen:
            raise ConfigError(f"nodes {nodes['key'].iat[seen[nid]]!r} and {nodes['key'].iat[i]!r} both map to "
                              f"Neuronpedia node_id {nid!r} (two dictionaries at one layer?)")
        seen[nid] = i
    return ids


def _logit_order(nodes: pd.DataFrame) -> dict[int, int]:
    logit = np.flatnonzero((nodes["kind"] == "logit").to_numpy())
    prob = np.nan_to_num(nodes["probability"].to_numpy(dtype=np.float64)[logit], nan=-1.0)
    return {int(logit[j]): r for r, j in enumerate(np.argsort(-prob, kind="stable"))}


def _prompt_tokens(graph: AttributionGraph) -> list[str]:
    emb = graph.nodes[graph.nodes["kind"] == "embed"].sort_values("pos")
    n_pos = int(graph.nodes["pos"].max()) + 1 if graph.n_nodes else 0
    toks = [""] * max(n_pos, 0)
    for p, lab, t in emb[["pos", "label", "token"]].itertuples(index=False):
        if 0 <= p < len(toks):
            toks[p] = _pp(lab) if lab else f"#{t}"
    return toks


def _prompt_text(prompt: Any, tokens: list[str]) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(x, str) for x in prompt):
        return " ".join(prompt)
    return "".join(tokens)


def _pp(token: Any) -> str:
    return str(token).replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", str(s).lower()).strip("-") or "graph"


# ====================================================================== import
def parse_neuronpedia(path_or_obj: Any) -> NPGraph:
    """Validate a Neuronpedia graph file; errors name the field and the node (``nodes[3] (node_id '1_2_3')``)."""
    raw = read_json(path_or_obj, "Neuronpedia graph")
    try:
        g = NPGraph.model_validate(raw)
    except ValidationError as e:
        raise GraphValidationError(validation_message(e, raw, "Neuronpedia graph",
                                                      id_field={"nodes": "node_id", "links": "source"})) from None
    first: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        if n.node_id in first:
            raise GraphValidationError(f"Neuronpedia graph nodes[{i}]: duplicate node_id {n.node_id!r} "
                                       f"(first at nodes[{first[n.node_id]}])")
        first[n.node_id] = i
        if n.feature_type == "logit" or n.layer == "E":
            continue
        try:
            int(n.layer)
        except ValueError:
            raise GraphValidationError(f"Neuronpedia graph nodes[{i}] (node_id {n.node_id!r}): field 'layer': "
                                       f"{n.layer!r} is neither 'E' nor a layer number") from None
    for j, link in enumerate(g.links):
        for end in ("source", "target"):
            if getattr(link, end) not in first:
                raise GraphValidationError(f"Neuronpedia graph links[{j}]: field {end!r}: {getattr(link, end)!r} "
                                           "is not the node_id of any node")
    return g


def read_neuronpedia(path_or_obj: Any) -> AttributionGraph:
    """An :class:`AttributionGraph` from a Neuronpedia / circuit-tracer graph file (path or parsed JSON)."""
    g = parse_neuronpedia(path_or_obj)
    if all(n.circuitdb is not None for n in g.nodes) and g.metadata.circuitdb is not None:
        nodes = pd.DataFrame([n.circuitdb for n in g.nodes])
        meta = dict(g.metadata.circuitdb)
    else:
        nodes, meta = _foreign_nodes(g), _foreign_meta(g)
    pos_of = {n.node_id: i for i, n in enumerate(g.nodes)}
    src = np.array([pos_of[x.source] for x in g.links], dtype=np.int64)
    dst = np.array([pos_of[x.target] for x in g.links], dtype=np.int64)
    w = np.array([x.weight for x in g.links], dtype=np.float64)
    ch = encode_channels([x.channel or "" for x in g.links]) if g.links else np.zeros(0, np.int8)
    return AttributionGraph(nodes, src, dst, w, ch, meta)


_TYPE_KIND = {"cross layer transcoder": "feature", "embedding": "embed", "logit": "logit",
              "attention head": "head", "lorsa": "feature"}


def _foreign_nodes(g: NPGraph) -> pd.DataFrame:
    logit_layers = [int(n.layer) for n in g.nodes if n.feature_type == "logit"]
    n_layers = (max(logit_layers) - 1) if logit_layers else (
        max((int(n.layer) for n in g.nodes if n.layer != "E"), default=-1) + 1)
    cum = np.array([np.nan if n.influence is None else n.influence for n in g.nodes])
    share = _shares(cum)
    src_set = (g.metadata.model_extra or {}).get("feature_details", {}) or {}
    source_set = src_set.get("neuronpedia_source_set") if isinstance(src_set, dict) else None
    rows = []
    for i, n in enumerate(g.nodes):
        kind = "error" if "error" in n.feature_type else _TYPE_KIND.get(n.feature_type)
        if kind is None:
            raise GraphValidationError(f"Neuronpedia graph nodes[{i}] (node_id {n.node_id!r}): field 'feature_type': "
                                       + one_of(n.feature_type, sorted(set(_TYPE_KIND) | {'mlp reconstruction error'}),
                                                "feature_type"))
        p = n.ctx_idx
        r: dict[str, Any] = {"kind": kind, "pos": p, "activation": n.activation, "influence": share[i]}
        if kind == "embed":
            m = re.fullmatch(r"E_(-?\d+)_(\d+)", n.node_id)
            tok = g.metadata.prompt_tokens[p] if 0 <= p < len(g.metadata.prompt_tokens) else ""
            r.update(key=f"E@{p}", layer=-1, token=int(m.group(1)) if m else -1, label=tok)
        elif kind == "logit":
            m = re.fullmatch(r'Output "(.*)" \(p=[^)]*\)', n.clerp, flags=re.S)
            r.update(key=f"L:{n.feature}@{p}", layer=n_layers, token=n.feature, probability=n.token_prob,
                     label=m.group(1) if m else n.clerp, influence=np.nan)
        else:
            layer = int(n.layer)
            r["layer"] = layer
            if kind == "feature":
                m = re.fullmatch(rf"{layer}_(?:[a-z]+_)?(\d+)_{p}", n.node_id)
                idx = int(m.group(1)) if m else int(n.feature if n.feature is not None else -1)
                lst = g.metadata.transcoder_list
                dic = lst[layer] if len(lst) > layer >= 0 else f"{source_set or g.metadata.scan}/L{layer}"
                r.update(key=f"F{layer}:{idx}@{p}", feature=idx, dictionary=dic, label=n.clerp)
            elif kind == "error":
                r.update(key=f"ERR{layer}@{p}")
            else:
                r.update(key=f"H{i}:{n.node_id}", label=n.clerp)
        rows.append(r)
    return pd.DataFrame(rows)


def _shares(cum: np.ndarray) -> np.ndarray:
    """Each node's share of total influence, from the cumulative scores (differences in rank order)."""
    out = np.full(len(cum), np.nan)
    ok = np.flatnonzero(np.isfinite(cum))
    order = ok[np.argsort(cum[ok], kind="stable")]
    c = cum[order]
    out[order] = np.diff(np.concatenate([[0.0], c]))
    return out


def _foreign_meta(g: NPGraph) -> dict[str, Any]:
    md = g.metadata
    toks = sorted((n.ctx_idx, n.node_id) for n in g.nodes if n.feature_type == "embedding")
    ids = []
    for _, nid in toks:
        m = re.fullmatch(r"E_(-?\d+)_(\d+)", nid)
        ids.append(int(m.group(1)) if m else -1)
    params = {"slug": md.slug, "node_threshold": md.node_threshold, **(md.pruning_settings or {})}
    gen = (md.model_extra or {}).get("generation_settings")
    if isinstance(gen, dict):
        params.update(gen)
    return {"model": md.scan, "granularity": "feature", "method": "neuronpedia-import", "metric": "logit",
            "prompt": md.prompt, "tokens": ids, "params": params, "dictionaries": list(md.transcoder_list)}
