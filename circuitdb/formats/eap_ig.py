"""EAP-IG / MIB circuit files (``Graph.to_json`` / ``Graph.to_pt`` of hannamw/EAP-IG), both ways.

Conventions (stated once):
- EAP-IG names nodes ``input``, ``a{l}.h{h}``, ``m{l}``, ``logits`` (circuitdb: ``E``, ``A{l}.{h}``, ``M{l}``,
  ``LOGITS``) and edges ``"{parent}->{child}"``, with ``<q>``/``<k>``/``<v>`` appended when the child is a head; each
  edge has ``score`` (circuitdb's ``weight``) and ``in_graph``; nodes have ``in_graph`` (and ``score`` when scored).
  ``cfg`` holds ``n_layers``, ``n_heads``, ``parallel_attn_mlp``, ``d_model``.
- A file describes every *real* edge of the model (each upstream source → each receiver). Export writes them all:
  edges the graph lacks get ``score 0.0``; ``in_graph`` marks the circuit (a :class:`Circuit`, or the whole graph).
  Import returns the graph (edges with a non-zero score or in the circuit; MLP nodes of attention-only models, which
  EAP-IG lists anyway, are dropped when nothing touches them) and the circuit of the ``in_graph`` edges.
- The ``.pt`` layout is EAP-IG's ``to_pt``: dense ``edges_scores`` / ``edges_in_graph`` ``[n_forward, n_backward]``
  with ``src_nodes`` (forward order: input, per layer heads then MLP) and ``dst_nodes`` (per layer q, k, v inputs of
  each head, then the MLP; last ``logits``), ``nodes_in_graph`` over the forward nodes.
- Component graphs per position (keys with ``@pos``) have no EAP-IG form: ConfigError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.formats._common import native_row, read_json, validation_message
from circuitdb.graph import CHANNELS, AttributionGraph


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class EAPConfig(_Strict):
    n_layers: int
    n_heads: int
    parallel_attn_mlp: StrictBool = False
    d_model: Optional[int] = None


class EAPNode(_Strict):
    in_graph: StrictBool
    score: Optional[float] = None


class EAPEdge(_Strict):
    score: float
    in_graph: StrictBool


class EAPFile(_Strict):
    cfg: EAPConfig
    nodes: dict[str, EAPNode]
    edges: dict[str, EAPEdge]


# ---------------------------------------------------------------------- names and the real-edge list
_TO_EAP = ((r"E", "input"), (r"LOGITS", "logits"), (r"A(\d+)\.(\d+)", "a{0}.h{1}"), (r"M(\d+)", "m{0}"))
_FROM_EAP = ((r"input", "E"), (r"logits", "LOGITS"), (r"a(\d+)\.h(\d+)", "A{0}.{1}"), (r"m(\d+)", "M{0}"))


def _rename(name: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, fmt in rules:
        m = re.fullmatch(pattern, name)
        if m:
            return fmt.format(*m.groups())
    return None


def eap_name(key: str) -> str:
    """circuitdb component key → EAP-IG node name."""
    out = _rename(key, _TO_EAP)
    if out is None:
        raise ConfigError(f"node {key!r} has no EAP-IG name (EAP-IG graphs hold E, A{{l}}.{{h}}, M{{l}}, LOGITS; "
                          "per-position and feature graphs can't be written)")
    return out


def circuitdb_key(name: str) -> str:
    """EAP-IG node name → circuitdb component key."""
    out = _rename(name, _FROM_EAP)
    if out is None:
        raise GraphValidationError(f"EAP-IG node name {name!r} is not input, logits, a{{l}}.h{{h}} or m{{l}}")
    return out


def forward_nodes(n_layers: int, n_heads: int) -> list[str]:
    out = ["input"]
    for l in range(n_layers):
        out += [f"a{l}.h{h}" for h in range(n_heads)] + [f"m{l}"]
    return out


def backward_nodes(n_layers: int, n_heads: int) -> list[str]:
    out = []
    for l in range(n_layers):
        out += [f"a{l}.h{h}<{q}>" for q in "qkv" for h in range(n_heads)] + [f"m{l}"]
    return out + ["logits"]


def real_edges(n_layers: int, n_heads: int, parallel_attn_mlp: bool = False) -> list[tuple[str, str, str]]:
    """EAP-IG's edge list ``(parent, child, qkv)`` in the order ``Graph.from_model`` adds them."""
    out: list[tuple[str, str, str]] = []
    stream = ["input"]
    for l in range(n_layers):
        heads = [f"a{l}.h{h}" for h in range(n_heads)]
        for p in stream:
            out += [(p, a, q) for a in heads for q in "qkv"]
            if parallel_attn_mlp:
                out.append((p, f"m{l}", ""))
        if not parallel_attn_mlp:
            out += [(p, f"m{l}", "") for p in stream + heads]
        stream = stream + heads + [f"m{l}"]
    return out + [(p, "logits", "") for p in stream]


def edge_name(parent: str, child: str, qkv: str) -> str:
    return f"{parent}->{child}" + (f"<{qkv}>" if qkv else "")


# ---------------------------------------------------------------------- export
def to_eap_ig(graph: Any, *, circuit: Any = None, d_model: int | None = None,
              parallel_attn_mlp: bool | None = None) -> dict[str, Any]:
    """EAP-IG's JSON dict for a component graph (``in_graph`` = ``circuit``'s edges, or all edges if None). A
    :class:`Circuit` passed as ``graph`` marks its own edges and takes its scores from itself."""
    if hasattr(graph, "graph") and hasattr(graph, "source_graph_id"):
        circuit, graph = graph, graph.graph
    cfg = _config(graph, d_model, parallel_attn_mlp)
    names = [eap_name(k) for k in graph.keys]
    scores = {edge_name(names[s], names[t], CHANNELS[c]): w
              for s, t, w, c in zip(graph.src.tolist(), graph.dst.tolist(), graph.weight.tolist(),
                                    graph.channel.tolist())}
    if circuit is None:
        in_edges, in_nodes = set(scores), set(names)
    else:
        cg = circuit.graph
        cn = [eap_name(k) for k in cg.keys]
        in_edges = {edge_name(cn[s], cn[t], CHANNELS[c])
                    for s, t, c in zip(cg.src.tolist(), cg.dst.tolist(), cg.channel.tolist())}
        in_nodes = set(cn)
    edges = real_edges(cfg["n_layers"], cfg["n_heads"], cfg["parallel_attn_mlp"])
    known = {edge_name(*e) for e in edges}
    extra = sorted(set(scores) - known)
    if extra:
        raise ConfigError(f"edge(s) {extra[:3]} are not edges of an EAP-IG graph with cfg {cfg}")
    nodes = {n: {"in_graph": n in in_nodes or n == "logits"} for n in forward_nodes(cfg["n_layers"], cfg["n_heads"])}
    nodes["logits"] = {"in_graph": True}
    infl = dict(zip(names, graph.nodes["influence"].tolist()))
    if all(np.isfinite(infl.get(n, np.nan)) for n in nodes if n != "logits"):  # node scores (EAP-IG node_scores)
        for n in nodes:
            if n != "logits":
                nodes[n]["score"] = float(infl[n])
    out_edges = {}
    for e in edges:
        name = edge_name(*e)
        out_edges[name] = {"score": float(scores.get(name, 0.0)), "in_graph": name in in_edges}
    out = {"cfg": cfg, "nodes": nodes, "edges": out_edges}
    if "eap_ig_cfg" not in graph.meta:  # a circuitdb graph: carry what EAP-IG has no field for (EAP-IG ignores it)
        extras = {n: native_row(r, skip=("key", "kind", "layer", "head"))
                  for n, r in zip(names, graph.nodes.to_dict("records"))}
        out["circuitdb"] = {"meta": graph.meta, "nodes": {n: e for n, e in extras.items() if e}}
    return out


def _config(graph: AttributionGraph, d_model: int | None, parallel: bool | None) -> dict[str, Any]:
    nodes = graph.nodes
    if (nodes["pos"] >= 0).any() or not set(nodes["kind"]) <= {"embed", "head", "mlp", "logit"}:
        raise ConfigError(f"graph {graph.id!r} is not a whole-prompt component graph; EAP-IG files hold only those")
    heads = nodes[nodes["kind"] == "head"]
    saved = graph.meta.get("eap_ig_cfg") or {}
    params = graph.meta.get("params") or {}
    n_layers = int(nodes.loc[nodes["kind"] == "logit", "layer"].max()) if (nodes["kind"] == "logit").any() \
        else int(nodes["layer"].max()) + 1
    n_heads = int(heads["head"].max()) + 1 if len(heads) else int(saved.get("n_heads", 0))
    if parallel is None:
        parallel = bool(saved.get("parallel_attn_mlp", params.get("parallel_attn_mlp", False)))
    d = d_model if d_model is not None else saved.get("d_model", params.get("d_model"))
    cfg = {**saved, "n_layers": n_layers, "n_heads": n_heads, "parallel_attn_mlp": parallel}
    if d is not None:
        cfg["d_model"] = int(d)
    return cfg


def write_eap_ig(graph: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write EAP-IG's JSON (``.json``) or ``.pt`` layout, chosen by the suffix."""
    path = Path(path)
    d = to_eap_ig(graph, **kwargs)
    if path.suffix == ".pt":
        _write_pt(d, path)
    else:
        path.write_text(json.dumps(d, allow_nan=False))
    return path


def _write_pt(d: dict[str, Any], path: Path) -> None:
    import torch

    L, H = d["cfg"]["n_layers"], d["cfg"]["n_heads"]
    fw, bw = forward_nodes(L, H), backward_nodes(L, H)
    fi, bi = {n: i for i, n in enumerate(fw)}, {n: i for i, n in enumerate(bw)}
    scores = torch.zeros(len(fw), len(bw))
    in_graph = torch.zeros(len(fw), len(bw), dtype=torch.bool)
    for name, e in d["edges"].items():
        p, c = name.split("->")
        scores[fi[p], bi[c]] = e["score"]
        in_graph[fi[p], bi[c]] = e["in_graph"]
    torch.save({"cfg": d["cfg"], "src_nodes": fw, "dst_nodes": bw, "edges_scores": scores,
                "edges_in_graph": in_graph,
                "nodes_in_graph": torch.tensor([d["nodes"][n]["in_graph"] for n in fw], dtype=torch.bool),
                **({"circuitdb": json.dumps(d["circuitdb"])} if "circuitdb" in d else {})}, path)


# ---------------------------------------------------------------------- import
def parse_eap_ig(path_or_obj: Any) -> EAPFile:
    """Validate an EAP-IG JSON file (or a ``.pt`` file, converted); errors name the node or edge."""
    if isinstance(path_or_obj, (str, Path)) and Path(path_or_obj).suffix == ".pt":
        raw: Any = _read_pt(Path(path_or_obj))
    else:
        raw = read_json(path_or_obj, "EAP-IG graph")
    try:
        f = EAPFile.model_validate(raw)
    except ValidationError as e:
        raise GraphValidationError(validation_message(e, raw, "EAP-IG graph")) from None
    known = {edge_name(*e) for e in real_edges(f.cfg.n_layers, f.cfg.n_heads, f.cfg.parallel_attn_mlp)}
    nodes = set(forward_nodes(f.cfg.n_layers, f.cfg.n_heads)) | {"logits"}
    bad = sorted(set(f.nodes) - nodes)
    if bad:
        raise GraphValidationError(f"EAP-IG graph nodes: {bad[0]!r} is not a node of a model with cfg "
                                   f"n_layers={f.cfg.n_layers}, n_heads={f.cfg.n_heads}")
    bad = sorted(set(f.edges) - known)
    if bad:
        raise GraphValidationError(f"EAP-IG graph edges: {bad[0]!r} is not an edge of a model with cfg "
                                   f"n_layers={f.cfg.n_layers}, n_heads={f.cfg.n_heads} (edge to an unknown node, "
                                   "or against the model's order)")
    return f


def _read_pt(path: Path) -> dict[str, Any]:
    import torch

    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise GraphValidationError(f"{path} is not an EAP-IG .pt file torch can load safely: {e}") from e
    missing = [k for k in ("cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph")
               if k not in d]
    if missing:
        raise GraphValidationError(f"{path} lacks EAP-IG field(s) {missing}")
    scores, in_graph = d["edges_scores"], d["edges_in_graph"]
    fi = {n: i for i, n in enumerate(d["src_nodes"])}
    bi = {n: i for i, n in enumerate(d["dst_nodes"])}
    cfg = dict(d["cfg"])
    edges = {}
    for p, c, q in real_edges(cfg["n_layers"], cfg["n_heads"], bool(cfg.get("parallel_attn_mlp", False))):
        child = f"{c}<{q}>" if q else c
        i, j = fi[p], bi[child]
        edges[edge_name(p, c, q)] = {"score": float(scores[i, j]), "in_graph": bool(in_graph[i, j])}
    nodes = {n: {"in_graph": bool(v)} for n, v in zip(d["src_nodes"], d["nodes_in_graph"].tolist())}
    nodes["logits"] = {"in_graph": True}
    out = {"cfg": cfg, "nodes": nodes, "edges": edges}
    if isinstance(d.get("circuitdb"), str):
        out["circuitdb"] = json.loads(d["circuitdb"])
    return out


def read_eap_ig(path_or_obj: Any, *, meta: dict[str, Any] | None = None) -> tuple[AttributionGraph, Any]:
    """``(graph, circuit)`` from an EAP-IG file: the graph of the scored edges and the circuit of ``in_graph``."""
    from circuitdb.circuits.circuit import Circuit

    f = parse_eap_ig(path_or_obj)
    ext = (f.model_extra or {}).get("circuitdb") or {}
    if not isinstance(ext, dict):
        raise GraphValidationError("EAP-IG graph field 'circuitdb' is not an object")
    L, H = f.cfg.n_layers, f.cfg.n_heads
    triples = []
    for name, e in f.edges.items():
        p, rest = name.split("->")
        c, q = (rest[:-3], rest[-2]) if rest.endswith(">") else (rest, "")
        if e.score != 0.0 or e.in_graph:
            triples.append((p, c, q, e.score, e.in_graph))
    touched = {x for p, c, *_ in triples for x in (p, c)}
    names = [n for n in forward_nodes(L, H) + ["logits"]
             if not n.startswith("m") or n in touched or f.nodes.get(n, EAPNode(in_graph=False)).in_graph]
    idx = {n: i for i, n in enumerate(names)}
    rows = []
    for n in names:
        key = circuitdb_key(n)
        kind = {"E": "embed", "LOGITS": "logit"}.get(key) or ("head" if key.startswith("A") else "mlp")
        layer = -1 if kind == "embed" else L if kind == "logit" else int(re.match(r"[AM](\d+)", key).group(1))
        head = int(key.split(".")[1]) if kind == "head" else -1
        score = f.nodes[n].score if n in f.nodes else None
        rows.append({"key": key, "kind": kind, "layer": layer, "head": head,
                     "influence": np.nan if score is None else score, **ext.get("nodes", {}).get(n, {})})
    src = np.array([idx[p] for p, *_ in triples], dtype=np.int64)
    dst = np.array([idx[c] for _, c, *_ in triples], dtype=np.int64)
    w = np.array([t[3] for t in triples], dtype=np.float64)
    ch = np.array([CHANNELS.index(t[2]) for t in triples], dtype=np.int8)
    m = dict(ext["meta"]) if "meta" in ext else {
        "model": "unknown", "granularity": "component", "method": "eap-ig-import", "metric": "",
        **(meta or {}), "eap_ig_cfg": f.cfg.model_dump()}
    graph = AttributionGraph(pd.DataFrame(rows), src, dst, w, ch, m)
    in_e = np.array([t[4] for t in triples], dtype=bool)
    in_n = np.array([n == "logits" or (n in f.nodes and f.nodes[n].in_graph) for n in names], dtype=bool)
    in_n[src[in_e]] = True
    in_n[dst[in_e]] = True
    sub = graph.subgraph(in_e, in_n)
    circuit = Circuit(sub, source_graph_id=graph.id, method="eap-ig-file", params={},
                      scores={"n_nodes": sub.n_nodes, "n_edges": sub.n_edges,
                              "edge_fraction": sub.n_edges / max(graph.n_edges, 1)}, name="eap-ig")
    return graph, circuit
