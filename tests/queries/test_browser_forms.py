"""The Browser form of every library query (``queries/browser/NAME.cypher``) on the live Neo4j server: it returns
only nodes, relationships and paths (so the Browser draws a graph, not a table), at most ``$limit`` of them, and
draws exactly what the named query answers (the same edges, paths, heads or units, in the same order), on the
library graphs of test_library.py with the parameter sets of test_parity.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from both_stores import cached_store
from test_library import fill_library
from test_parity import PARITY

from circuitdb.circuits.query import browser_form, get_query, list_queries, query


@pytest.fixture(scope="module")
def neo(request, tmp_path_factory):
    return cached_store("neo4j", request, "library", tmp_path_factory.mktemp("qlib-neo4j"), fill_library)


def test_every_query_has_a_browser_form_with_the_same_parameters():
    for name in list_queries():
        text = "\n".join(line for line in browser_form(name).splitlines() if not line.lstrip().startswith("//"))
        used = set(re.findall(r"\$([A-Za-z_]\w*)", text))
        assert used <= {p.name for p in get_query(name).params}, name
        assert "RETURN" in text and (name == "max_abs_weight" or "$limit" in text or name == "ioi_circuit"), name


def test_the_guide_shows_browser_forms_as_shipped():
    """The guide's slides for named queries carry their Browser form's text exactly (no drift)."""
    import html

    from circuitdb.cli.neo4j import GUIDE_FILE, files

    guide = files("circuitdb.neo4j_browser").joinpath(GUIDE_FILE).read_text(encoding="utf-8")
    blocks = [html.unescape(b).strip() for b in re.findall(r'<pre mode="cypher"[^>]*>(.*?)</pre>', guide, re.S)]
    shown = []
    for name in list_queries():
        text = "\n".join(line for line in browser_form(name).splitlines() if not line.lstrip().startswith("//"))
        if f"queries/browser/{name}.cypher" in guide:
            assert text.strip() in blocks, name
            shown.append(name)
    assert {"upstream", "paths_between", "feature_paths", "ioi_circuit"} <= set(shown)


def _run(neo, text: str, params: dict) -> list[list]:
    with neo._driver.session(default_access_mode="READ") as s:
        return s.execute_read(lambda tx: [list(r.values()) for r in tx.run(text, params)])


def _score(path, how: str = "product") -> float:
    w = [r["abs_weight"] for r in path.relationships]
    return min(w) if how == "min" else float(np.prod(w))


def _path_keys(path) -> tuple:
    return tuple(n["key"] for n in path.nodes), tuple(r["channel"] for r in path.relationships)


def _same_ranking(got: list, want: list, got_scores, want_scores) -> None:
    """Scores equal row by row; the items equal as sets above the score at the cut (ties there may differ)."""
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-9)
    cut = want_scores[-1] if len(want_scores) else None
    assert {g for g, s in zip(got, got_scores) if s > cut * (1 + 1e-9)} == \
        {w for w, s in zip(want, want_scores) if s > cut * (1 + 1e-9)}


@pytest.mark.neo4j
@pytest.mark.parametrize("name,params", [(n, p) for n, ps in PARITY.items() for p in ps],
                         ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()))
def test_browser_form_draws_what_the_named_query_answers(neo, name, params):
    from neo4j.graph import Node, Path, Relationship

    bound = get_query(name).bind(params)
    rows = _run(neo, browser_form(name), bound)
    assert rows and all(isinstance(v, (Node, Relationship, Path)) or (v is None and name == "circuit_edges")
                        for r in rows for v in r), "not a graph"
    df = query(neo, name, **params)
    limit = bound.get("limit")
    rels = [v for r in rows for v in r if isinstance(v, Relationship)]
    paths = [v for r in rows for v in r if isinstance(v, Path)]
    if name == "circuit_edges":  # the circuit's nodes, its edges first
        assert len(rows) <= limit and all(len(r) == 3 for r in rows)
        got = [(r[0]["key"], r[2]["key"], r[1]["channel"]) for r in rows if r[1] is not None]
        assert got == list(zip(df.source, df.target, df.channel))
        if limit > len(got):  # room left: the circuit's nodes without circuit edges out of them come next
            assert {r[0]["key"] for r in rows if r[1] is None} == ({"E"} | set(df.target)) - set(df.source)
    elif name in ("top_edges", "compare_graphs", "induction_pairs", "circuit_emergence", "max_abs_weight"):
        assert len(rows) == len(rels) <= (limit or 1)
        got = [(e.start_node["key"], e.end_node["key"], e["channel"]) for e in rels]
        if name == "max_abs_weight":
            assert rels[0]["abs_weight"] == pytest.approx(df["max_abs_weight"].iat[0])
        elif name == "induction_pairs":
            assert got == list(zip(df.prev_token_head, df.induction_head, ["k"] * len(df)))
        elif name == "circuit_emergence":
            np.testing.assert_allclose([e["weight"] for e in rels], df["weight"])
        else:
            assert got == list(zip(df.source, df.target, df.channel))
    elif name in ("upstream", "downstream"):
        assert len(paths) == len(rows) == len(df) <= limit
        ends = [p.start_node if name == "upstream" else p.end_node for p in paths]
        assert [(n["key"], len(p)) for n, p in zip(ends, paths)] == list(zip(df.key, df.depth))
        np.testing.assert_allclose([_score(p) for p in paths], df["strength"], rtol=1e-9)
    elif name in ("paths_between", "feature_paths"):
        assert len(paths) == len(rows) == len(df) <= limit
        how = bound.get("rank_by", "product")
        want_scores = df["score"] if name == "paths_between" else df["product"]
        _same_ranking([_path_keys(p) for p in paths], [(tuple(k), tuple(c)) for k, c in zip(df.path, df.channels)],
                      [_score(p, how) for p in paths], list(want_scores))
    elif name == "ioi_circuit":
        heads = {n["key"] for e in rels for n in (e.start_node, e.end_node) if n["kind"] == "head"}
        assert heads == set(df["head"])
        movers = set(df.loc[df.role == "name_mover", "head"])
        assert {e.start_node["key"] for e in rels if e.end_node["kind"] == "logit"} == movers
    elif name == "recurring_units":
        units = list(dict.fromkeys(r[0]["uid"] for r in rows))
        assert units == list(df["unit"]) and len(units) <= limit
        assert all(r[1].type == "INSTANCE_OF" for r in rows)
    else:  # pragma: no cover - a new query needs its check here
        pytest.fail(f"no check for the Browser form of {name!r}")
