"""Small feature and component graphs for the format tests (every node kind, labels, NaNs, q/k/v channels)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitdb.graph import AttributionGraph


def feature_graph(*, n_layers: int = 2, n_pos: int = 4, n_feat: int = 3, seed: int = 0,
                  heads: bool = False) -> AttributionGraph:
    """A layered feature DAG: embeddings → features/errors by layer → two logits (with probabilities)."""
    rng = np.random.default_rng(seed)
    rows = [dict(key=f"E@{p}", kind="embed", layer=-1, pos=p, token=10 + p, label=f" tok{p}", activation=1.0 + p)
            for p in range(n_pos)]
    for l in range(n_layers):
        for p in range(n_pos):
            rows.append(dict(key=f"ERR{l}@{p}", kind="error", layer=l, pos=p, activation=float(rng.random())))
            for f in range(n_feat):
                i = 100 * l + 7 * f
                rows.append(dict(key=f"F{l}:{i}@{p}", kind="feature", layer=l, pos=p, feature=i, dictionary=f"tc-L{l}",
                                 activation=float(rng.random() + 0.1), label="the word 'cat'" if f == 0 else "",
                                 direct_logit=float(rng.normal())))
    rows += [dict(key="L:5@3", kind="logit", layer=n_layers, pos=n_pos - 1, token=5, label=" Paris", probability=0.6,
                  activation=2.0),
             dict(key="L:9@3", kind="logit", layer=n_layers, pos=n_pos - 1, token=9, label="\n", probability=0.3,
                  activation=1.0)]
    nodes = pd.DataFrame(rows)
    lay = nodes["layer"].to_numpy()
    src, dst = [], []
    for t in range(len(nodes)):
        for s in range(len(nodes)):
            if lay[s] < lay[t] and nodes["kind"].iat[s] != "logit" and rng.random() < 0.5:
                src.append(s)
                dst.append(t)
    w = rng.normal(size=len(src))
    g = AttributionGraph(nodes, np.array(src), np.array(dst), w, None,
                         {"id": "g-feat", "model": "toy-2l", "granularity": "feature", "method": "replacement",
                          "metric": "logit", "prompt": "a b c d", "tokens": [10, 11, 12, 13],
                          "dictionaries": [f"tc-L{l}" for l in range(n_layers)], "created_at": "2026-01-01T00:00:00"})
    from circuitdb.formats._common import graph_influence

    infl = graph_influence(g)
    infl[(g.nodes["kind"] == "logit").to_numpy()] = np.nan
    g.nodes["influence"] = infl
    return g


def component_graph(*, n_layers: int = 2, n_heads: int = 2, attn_only: bool = False, seed: int = 0,
                    drop: float = 0.0) -> AttributionGraph:
    """A whole EAP-style component graph: every upstream edge, heads with q/k/v channels."""
    rng = np.random.default_rng(seed)
    rows = [dict(key="E", kind="embed", layer=-1)]
    for l in range(n_layers):
        rows += [dict(key=f"A{l}.{h}", kind="head", layer=l, head=h, prev_token_score=0.25 * h)
                 for h in range(n_heads)]
        if not attn_only:
            rows.append(dict(key=f"M{l}", kind="mlp", layer=l))
    rows.append(dict(key="LOGITS", kind="logit", layer=n_layers))
    nodes = pd.DataFrame(rows)
    kind, lay = nodes["kind"].to_numpy(), nodes["layer"].to_numpy()
    src, dst, ch = [], [], []
    for t in range(len(nodes)):
        for s in range(len(nodes)):
            if kind[s] == "logit" or kind[t] == "embed":
                continue
            up = lay[s] < lay[t] or (kind[t] in ("mlp",) and kind[s] == "head" and lay[s] == lay[t]) \
                or kind[t] == "logit"
            if not up or s == t:
                continue
            for c in ((1, 2, 3) if kind[t] == "head" else (0,)):
                if rng.random() >= drop:
                    src.append(s); dst.append(t); ch.append(c)
    w = rng.normal(size=len(src)).round(6)
    return AttributionGraph(nodes, np.array(src), np.array(dst), w, np.array(ch),
                            {"id": "g-comp", "model": "toy-2l", "granularity": "component", "method": "eap",
                             "metric": "logit_diff", "created_at": "2026-01-01T00:00:00"})


def assert_import_refused(tmp_path, path, words) -> None:  # noqa: ANN001
    """Importing ``path`` raises GraphValidationError naming every one of ``words`` and leaves the store empty."""
    import pytest

    from circuitdb.errors import GraphValidationError
    from circuitdb.formats import import_file
    from circuitdb.store.embedded import EmbeddedStore

    with EmbeddedStore(tmp_path / "db") as s:
        with pytest.raises(GraphValidationError) as ei:
            import_file(s, path)
        assert len(s.list_graphs()) == 0
    for w in words:
        assert w in str(ei.value), (w, str(ei.value))
