"""Every queries/*.cypher returns the same rows on Neo4j as on the embedded store, for the same fixture graphs
(test_library.py's), within float tolerance and in the same order. Both stores are queried through
``circuitdb.query`` (the same client path users take); a query file without parameter sets here fails the test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from both_stores import cached_store
from test_library import fill_library

from circuitdb.circuits.query import get_query, list_queries, query

pytestmark = pytest.mark.neo4j

#: query → parameter sets, chosen so that every one returns many rows (checked below) on the library graphs
PARITY: dict[str, list[dict]] = {
    "top_edges": [dict(graph_id="big", limit=300), dict(graph_id="big", limit=40, source_kind="head", channel="k",
                                                         layer=2)],
    "max_abs_weight": [dict(graph_id="big"), dict(graph_id="feat-0")],
    "upstream": [dict(graph_id="big", node="LOGITS", depth=3, min_weight=1.5, limit=10_000),
                 dict(graph_id="big", node="LOGITS", depth=2, min_weight=0.5, limit=50)],
    "downstream": [dict(graph_id="big", node="A0.3", depth=3, min_weight=1.5, limit=10_000),
                   dict(graph_id="feat-0", node="E@1", depth=4, min_weight=0.05, limit=60)],
    "paths_between": [dict(graph_id="big", source="E", target="LOGITS", max_hops=3, min_weight=0.8, limit=200),
                      dict(graph_id="big", source="E", target="LOGITS", max_hops=3, min_weight=0.8, rank_by="min",
                           limit=200),
                      dict(graph_id="big", source="A4.0", target="LOGITS", max_hops=4, limit=30)],
    "feature_paths": [dict(graph_id="feat-0", max_hops=3, min_weight=0.05, limit=100_000),
                      dict(graph_id="feat-0", max_hops=3, min_weight=0.05, through_heads=True, limit=40)],
    "induction_pairs": [dict(graph_id="big", min_prev_token_score=0.1, min_induction_score=0.1, limit=50)],
    "ioi_circuit": [dict(graph_id="ioi"), dict(graph_id="big", n_name_movers=4, n_s_inhibition=2, n_feeders=3,
                                               feeder_channel="v")],
    "recurring_units": [dict(min_weight=2.5, kind="head", limit=1000), dict(min_weight=0.5, min_graphs=3, limit=80)],
    "compare_graphs": [dict(graph_a="big", graph_b="big2", min_weight=1.0, max_ratio=0.5, limit=100_000)],
    "circuit_edges": [dict(graph_id="big", name="top40"), dict(graph_id="big", name="top40", limit=12)],
    "circuit_emergence": [dict(source="A0.1", target="A1.1", channel="k", threshold=1.0),
                          dict(source="A0.3", target="A1.1", channel="v", threshold=10.0, job="sweep-")],
}


#: list columns that are sets (a ``collect()`` without order): compared sorted
UNORDERED = {("ioi_circuit", "via")}


def test_every_library_query_has_parameter_sets():
    assert set(PARITY) == set(list_queries())


@pytest.fixture(scope="module")
def both(request, tmp_path_factory):
    """(embedded, neo4j) holding the same library graphs."""
    return tuple(cached_store(kind, request, "library", tmp_path_factory.mktemp(f"qlib-{kind}"),
                              fill_library) for kind in ("embedded", "neo4j"))


def _cells(df: pd.DataFrame) -> list[list]:
    """Rows as plain values: lists as tuples, NaN / None as None, numpy scalars as Python ones."""
    def plain(v):
        if isinstance(v, (list, tuple, np.ndarray)):
            return tuple(plain(x) for x in v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v
    return [[plain(v) for v in row] for row in df.itertuples(index=False)]


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9,
                                                                                            abs_tol=1e-12)
    return a == b


def _groups(rows: list[list], cols: list[str], order: list[str]) -> list[list[list]]:
    """Consecutive rows with the same values in the ``order`` columns (ties), each group sorted canonically."""
    idx = [cols.index(c) for c in order]
    out: list[list[list]] = []
    for row in rows:
        if out and all(_same(out[-1][0][i], row[i]) for i in idx):
            out[-1].append(row)
        else:
            out.append([row])
    return [sorted(g, key=repr) for g in out]


@pytest.mark.parametrize("name,params", [(n, p) for n, ps in PARITY.items() for p in ps],
                         ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()))
def test_same_rows_on_both_stores(both, name, params):
    """Same columns, same number of rows, and row by row the same values. Where the query's order has ties (its
    ``@sort`` keys: e.g. paths_between ranked by the bottleneck |weight| that many paths share), the ordering
    keys must agree row by row and each group of tied rows must hold the same rows — except the group cut by
    ``limit``, where the stores may keep different members of the tie."""
    embedded, neo = (query(s, name, **params) for s in both)
    cols = list(embedded.columns)
    assert cols == list(neo.columns)
    assert len(embedded) == len(neo) >= 1
    rows_e, rows_n = _cells(embedded), _cells(neo)
    for c in [cols.index(c) for q, c in UNORDERED if q == name]:
        for r in rows_e + rows_n:
            r[c] = tuple(sorted(r[c]))
    order = [c for c, _ in get_query(name).sort if c in cols]
    if order:
        keys = [cols.index(c) for c in order]
        assert _same(tuple(tuple(r[i] for i in keys) for r in rows_e),
                     tuple(tuple(r[i] for i in keys) for r in rows_n)), "the ordering keys differ"
        ge, gn = _groups(rows_e, cols, order), _groups(rows_n, cols, order)
        if len(rows_e) == params.get("limit"):  # the last group of ties may be cut by the limit
            ge, gn = ge[:-1], gn[:-1]
        rows_e, rows_n = [r for g in ge for r in g], [r for g in gn for r in g]
    diff = [(i, e, n) for i, (e, n) in enumerate(zip(rows_e, rows_n)) if not _same(tuple(e), tuple(n))]
    assert not diff, f"{len(diff)} of {len(rows_e)} rows differ, first: {diff[:3]}"
