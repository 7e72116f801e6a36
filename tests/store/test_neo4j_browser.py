"""The Neo4j Browser (served by the local server at /browser/, the Maven artifact org.neo4j.client:neo4j-browser)
driven in headless Chromium: connect, apply ``circuitdb neo4j style``, run a query of one stored graph, and check
from the page that the graph was drawn with the style (colour by kind, ``name`` captions, weights on edges).

Set ``CIRCUITDB_BROWSER_SHOT=path.png`` to keep a screenshot (never committed)."""

from __future__ import annotations

import os
import re
import uuid

import pandas as pd
import pytest
from browser import CHROMIUM, FLAGS, require_chromium
from neo4j_double import sample_graph

from circuitdb.circuits.query import browser_form
from circuitdb.cli.neo4j import style_text
from circuitdb.store.cypher import NEO4J_KIND_LABELS
from circuitdb.store.neo4j import Neo4jStore

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def _colours() -> dict[str, str]:
    text = re.sub(r"\s+", " ", style_text())
    return {label: re.search(rf"node\.{label} \{{[^}}]*?color: (#[0-9A-F]{{6}})", text).group(1)
            for label in NEO4J_KIND_LABELS.values()}


def _serve_guide():
    """``circuitdb neo4j guide``'s server, on a free port, in a thread."""
    import functools
    import http.server
    import threading

    from circuitdb.cli.neo4j import GuideHandler, files

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(GuideHandler, directory=str(files("circuitdb.neo4j_browser"))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _drawn_frame(page, min_nodes: int) -> dict:  # noqa: ANN001
    """The node captions and relationship captions of the newest result frame, once it draws ``min_nodes`` nodes
    (waits up to 30 s, then 1.5 s more for the layout to settle)."""
    newest = "document.querySelector('[data-testid=frame]')"
    for _ in range(60):
        if page.evaluate(f"() => {newest}.querySelectorAll('svg g.node').length") >= min_nodes:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)
    return page.evaluate(f"""() => ({{
        nodes: [...{newest}.querySelectorAll('svg g.node')].map(g => g.textContent),
        rels: [...{newest}.querySelectorAll('svg g.relationship text')].map(t => t.textContent)}})""")


def test_browser_draws_a_styled_graph(neo4j_server) -> None:
    require_chromium()
    http = neo4j_server.get("CIRCUITDB_NEO4J_HTTP")
    if not http:
        pytest.skip("CIRCUITDB_NEO4J_HTTP is not set (an outside server): the Browser's address is unknown")
    from playwright.sync_api import sync_playwright

    gid = f"circuitdb-test-{uuid.uuid4().hex[:10]}"
    g = sample_graph(gid)
    circuit = "path"
    with Neo4jStore() as store:
        store.write_graph(g)
        store.save_circuit(circuit, gid, ["E@1", "A0.1@1", "A1.0@1", "L:5@1"], method="m", params={}, scores={},
                           edges=pd.DataFrame({"source": ["E@1", "A0.1@1", "A1.0@1"],
                                               "target": ["A0.1@1", "A1.0@1", "L:5@1"], "channel": ["q", "q", ""]}))
        bolt = neo4j_server["CIRCUITDB_NEO4J_URI"].split("://", 1)[1]
        query = ("MATCH (g:Graph {id: $graph_id, current: true}) MATCH (a:Node {sid: g.sid})-[e:ATTRIBUTES]->(b:Node) "
                 "RETURN a, e, b ORDER BY e.abs_weight DESC LIMIT 50")
        guide = _serve_guide()
        guide_port = guide.server_address[1]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=[f for f in FLAGS if f != "--headless"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{http}/browser/?dbms=bolt://{neo4j_server['CIRCUITDB_NEO4J_USER']}@{bolt}"
                          "&preselectAuthMethod=NATIVE", timeout=120_000)
                page.wait_for_selector("[data-testid=password]", timeout=120_000)
                page.fill("[data-testid=password]", neo4j_server["CIRCUITDB_NEO4J_PASSWORD"])
                page.click("[data-testid=connect]")
                page.wait_for_selector("[data-testid=frame]", timeout=60_000)
                page.wait_for_timeout(3000)  # the connection frame settles

                def run(text: str) -> None:  # type into the editor, run, wait for the command's frame
                    frames = page.locator("[data-testid=frame]").count()
                    page.click("[data-testid=activeEditor]")
                    page.keyboard.insert_text(text)
                    page.click("[data-testid=editor-Run]")
                    for _ in range(60):
                        if page.locator("[data-testid=frame]").count() > frames:
                            break
                        page.wait_for_timeout(250)
                    page.wait_for_timeout(1000)

                run(f":play http://localhost:{guide_port}/guide.html")  # the shipped guide, served as the CLI does
                guide_shown = page.locator("text=circuitdb: attribution graphs in Neo4j").count() > 0
                run(f":param graph_id => '{gid}'")
                run(":style " + re.sub(r"\s+", " ", style_text()).strip())
                run(query)
                for _ in range(120):  # (the page's CSP forbids wait_for_function's eval)
                    if page.evaluate("() => document.querySelectorAll('svg g.node').length") >= g.n_nodes:
                        break
                    page.wait_for_timeout(500)
                page.wait_for_timeout(2000)
                nodes = page.evaluate("""() => [...document.querySelectorAll('svg g.node')].map(g => ({
                    fill: (g.querySelector('circle.b-outline') || g.querySelector('circle')).getAttribute('fill'),
                    text: [...g.querySelectorAll('text')].map(t => t.textContent).join('')}))""")
                weights = page.evaluate(
                    "() => [...document.querySelectorAll('svg g.relationship text')].map(t => t.textContent)")
                # a named query's Browser form, pasted as shipped: paths_between's two best E@1 → L:5@1 paths
                for k, v in {"source": "'E@1'", "target": "'L:5@1'", "max_hops": "3", "min_weight": "0.0",
                             "rank_by": "'product'", "limit": "2"}.items():
                    run(f":param {k} => {v}")
                run(browser_form("paths_between"))
                drawn = _drawn_frame(page, min_nodes=4)
                # a saved circuit, drawn by circuit_edges' Browser form with "Connect result nodes" off: its nodes
                # and exactly its edges (E@1 → L:5@1 joins two of its nodes but is not one of its edges)
                run(":config autoComplete: false")
                run(f":param name => '{circuit}'")
                run(":param limit => 50")
                run(browser_form("circuit_edges"))
                drawn_circuit = _drawn_frame(page, min_nodes=4)
                if os.environ.get("CIRCUITDB_BROWSER_SHOT"):
                    page.screenshot(path=os.environ["CIRCUITDB_BROWSER_SHOT"])
                browser.close()
        finally:
            guide.shutdown()
            store.delete_graph(gid)
    assert guide_shown
    assert len(nodes) == g.n_nodes and len(weights) == g.n_edges
    colours = _colours()
    by_kind = {c: sum(n["fill"] == colours[label] for n in nodes) for c, label in NEO4J_KIND_LABELS.items()}
    assert by_kind == g.nodes["kind"].value_counts().reindex(list(NEO4J_KIND_LABELS), fill_value=0).to_dict()
    captions = " ".join(n["text"] for n in nodes)
    assert "A1.0@1" in captions and "L:' France'@1" in captions  # the name property, not the Browser's default
    assert sorted(float(w) for w in weights) == sorted(round(float(x), 6) for x in g.weight)
    # the form drew the 3-hop path E@1 → A0.1@1 → A1.0@1 → L:5@1 (|0.9 · 1.1 · 2.5|) and the direct edge (0.02)
    assert sorted(t.strip() for t in drawn["nodes"]) == ["A0.1@1", "A1.0@1", "E@1 'cat'", "L:' France'@1"], drawn
    assert sorted(float(w) for w in drawn["rels"]) == [-1.1, -0.02, 0.9, 2.5], drawn
    assert sorted(t.strip() for t in drawn_circuit["nodes"]) == ["A0.1@1", "A1.0@1", "E@1 'cat'", "L:' France'@1"]
    assert sorted(float(w) for w in drawn_circuit["rels"]) == [-1.1, 0.9, 2.5], drawn_circuit


def guide_blocks() -> tuple[dict, list[str]]:
    """The guide's ``:param`` values and its Cypher blocks."""
    import html

    from circuitdb.cli.neo4j import GUIDE_FILE
    from circuitdb.cli.neo4j import files as _files

    text = _files("circuitdb.neo4j_browser").joinpath(GUIDE_FILE).read_text(encoding="utf-8")
    blocks = [html.unescape(b).strip() for b in re.findall(r'<pre mode="cypher"[^>]*>(.*?)</pre>', text, re.S)]
    params = {}
    for b in blocks:
        m = re.fullmatch(r":param (\w+) => (.+)", b)
        if m:
            params[m.group(1)] = eval(m.group(2), {"true": True, "false": False, "null": None})  # noqa: S307
    return params, [b for b in blocks if not b.startswith(":")]


def test_every_guide_query_runs_and_finds_the_graph(neo4j_server) -> None:
    params, queries = guide_blocks()
    assert len(queries) >= 6 and {"graph_id", "limit", "min_weight"} <= set(params)
    gid = f"circuitdb-test-{uuid.uuid4().hex[:10]}"
    with Neo4jStore() as store:
        store.write_graph(sample_graph(gid))
        store.save_circuit("c", gid, ["A0.1@1", "A1.0@1", "L:5@1"], method="m", params={}, scores={})
        try:
            keys = {"node": "L:5@1", "source": "E@1", "target": "L:5@1", "name": "c"}  # the guide: a component graph
            rows = [store.run(q, {**params, "graph_id": gid, "min_weight": 0.0, **keys}) for q in queries]
        finally:
            store.delete_graph(gid)
    assert gid in rows[0]["id"].tolist()
    found = {q: len(r) for q, r in zip(queries[1:], rows[1:])}
    k_composition = [k for k in found if "channel: 'k'" in k]
    assert len(k_composition) == 1 and found.pop(k_composition[0]) == 0  # the sample graph has no head→head k edge
    assert all(found.values()), found  # every other query finds something in the sample graph
