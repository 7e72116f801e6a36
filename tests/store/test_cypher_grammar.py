"""Every Cypher statement circuitdb can send to Neo4j, checked with Neo4j's own grammar and semantic analysis.

Collected: (1) every statement Neo4jStore emits while :func:`neo4j_double.exercise` drives all its public methods on
the live server (plus whatever recorded tests that ran earlier in the session emitted), with the parameter names actually
passed, so a ``$param`` the code forgets to send is an error; (2) every statement in the ``portable reads`` and
``Neo4j`` sections of ``circuitdb/store/cypher.py`` and the ``read_subgraph_edges`` builder; (3) every
``queries/*.cypher`` file (with the ``@param`` names its header declares). They are linted in one batch by
``tools/cypher-lint/lint.mjs`` (npm ``@neo4j-cypher/language-support``, pinned) as Cypher 5, the language of Neo4j 5.26
LTS. Errors fail, and so do warnings that name a label or relationship type outside the store schema (typos).

Needs Node and ``npm ci --prefix tools/cypher-lint``; missing either FAILS, unless ``CIRCUITDB_SKIP_CYPHER_LINT=1``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from neo4j_double import EMITTED, EXERCISE_READ, EXERCISE_WRITE, exercise, live_driver

from circuitdb.store import cypher as cy
from circuitdb.store.neo4j import Neo4jStore

ROOT = Path(__file__).resolve().parents[2]
LINT_DIR = ROOT / "tools" / "cypher-lint"
SCHEMA = {
    "labels": ["Graph", "Node", "Unit", "Circuit", *cy.NEO4J_KIND_LABELS.values()],
    "relationshipTypes": ["ATTRIBUTES", "INSTANCE_OF", "INCLUDES"],
}
_SCHEMA_TYPO = re.compile(r"^(Label|Relationship type) \S+ is not present in the database")


def lint(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lint ``[{name, query, params}]`` with lint.mjs; its diagnostics. Fails (or skips, if allowed) without Node."""
    if os.environ.get("CIRCUITDB_SKIP_CYPHER_LINT") == "1":
        pytest.skip("CIRCUITDB_SKIP_CYPHER_LINT=1")
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: the Cypher grammar check needs it "
                    "(or set CIRCUITDB_SKIP_CYPHER_LINT=1)")
    if not (LINT_DIR / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        pytest.fail("the Cypher linter is not installed: run `npm ci --prefix tools/cypher-lint` "
                    "(or set CIRCUITDB_SKIP_CYPHER_LINT=1)")
    # long statements take seconds to parse: split the batch by length over (at most) two node processes
    shares: list[list[dict[str, Any]]] = [[] for _ in range(min(2, os.cpu_count() or 1))]
    sizes = [0] * len(shares)
    for st in sorted(statements, key=lambda st: -len(st["query"])):
        i = sizes.index(min(sizes))
        shares[i].append(st)
        sizes[i] += len(st["query"]) + 500  # + a per-statement overhead

    def run(share: list[dict[str, Any]]) -> subprocess.CompletedProcess:
        payload = json.dumps({"statements": share, "schema": SCHEMA, "versions": ["CYPHER 5"]})
        return subprocess.run([node, "lint.mjs"], input=payload, capture_output=True, text=True, cwd=LINT_DIR,
                              timeout=300)

    out: list[dict[str, Any]] = []
    with ThreadPoolExecutor(len(shares)) as pool:
        for proc in pool.map(run, [s for s in shares if s]):
            assert proc.returncode == 0, f"lint.mjs failed ({proc.returncode}): {proc.stderr}"
            out += json.loads(proc.stdout)
    return out


def problems(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in diagnostics if d["severity"] == 1 or _SCHEMA_TYPO.match(d["message"])]


def module_statements() -> list[dict[str, Any]]:
    """Statements assigned at top level of cypher.py after its ``portable reads`` header (portable + Neo4j)."""
    src = Path(cy.__file__).read_text()
    lines = src.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if re.match(r"#\s*=+\s*portable reads", line)), None)
    if start is None:
        start = next(i + 1 for i, line in enumerate(lines) if re.match(r"#\s*=+\s*Neo4j", line))
    out = []
    for node in ast.parse(src).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno > start:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out += _strings(t.id, getattr(cy, t.id, None))
    for combo in ((), ("kinds", "layers", "positions")):  # the portable statement builder: no filter / every filter
        out += _strings(f"read_subgraph_edges({','.join(combo)})", cy.read_subgraph_edges(combo))
    return out


def _strings(name: str, value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"name": f"cypher.{name}", "query": value, "params": None}] if _looks_like_cypher(value) else []
    if isinstance(value, (tuple, list)):
        return [s for i, v in enumerate(value) for s in _strings(f"{name}[{i}]", v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(f"{name}[{k!r}]", v)]
    return []


def _looks_like_cypher(text: str) -> bool:
    return bool(re.match(r"\s*(MATCH|OPTIONAL|UNWIND|WITH|RETURN|CREATE|MERGE|CALL|DROP|SHOW)\b", text, re.I))


def emitted_statements(neo4j_server: dict[str, str]) -> list[dict[str, Any]]:
    driver = live_driver(neo4j_server)
    exercise(Neo4jStore(driver=driver, batch_size=3).connect())
    seen: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for query, params in [(c.query, c.params) for c in driver.calls] + EMITTED:
        key = (query, tuple(sorted(params)))
        seen.setdefault(key, {"name": f"emitted #{len(seen)}", "query": query, "params": sorted(params)})
    return list(seen.values())


def query_files() -> list[dict[str, Any]]:
    """``queries/*.cypher`` and their Browser forms ``queries/browser/*.cypher``; a file whose header declares
    ``// @param name: ...`` must use no other ``$param`` (a Browser form: none its named query lacks)."""
    out = []
    for p in sorted((ROOT / "queries").glob("*.cypher")) + sorted((ROOT / "queries" / "browser").glob("*.cypher")):
        text = p.read_text()
        header = text if p.parent.name != "browser" else (ROOT / "queries" / p.name).read_text()
        declared = re.findall(r"^\s*//\s*@param\s+(\w+)", header, re.M)
        out.append({"name": str(p.relative_to(ROOT)), "query": text, "params": declared or None})
    return out


#: statements the linter must flag (name → why), linted in the same batch as the real ones
CANARIES = [
    {"name": "canary: unclosed", "query": "MATCH (n RETURN n", "params": None},
    {"name": "canary: typo param", "query": "MATCH (n:Node {uid: $uidd}) RETURN n", "params": ["uid"]},
    {"name": "canary: typo label", "query": "MATCH (n:Nod) RETURN n", "params": None},
    {"name": "canary: typo type", "query": "MATCH (:Node)-[:ATTRIBUTE]->(:Node) RETURN 1", "params": None},
    {"name": "canary: unbound", "query": "MATCH (n:Node) RETURN m", "params": None},
    {"name": "canary: fine", "query": "MATCH (n:Node:Head {uid: $uid}) RETURN n.key AS key", "params": ["uid"]},
]


@pytest.fixture(scope="module")
def linted(neo4j_server) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(statements, diagnostics): everything collected plus the canaries, linted in ONE node run."""
    emitted = emitted_statements(neo4j_server)
    sent = {s["query"] for s in emitted}  # a statement sent with its parameters is checked that (stricter) way only
    statements = emitted + [s for s in module_statements() if s["query"] not in sent] + query_files()
    return statements, lint(statements + CANARIES)


def test_every_statement_passes_neo4j_grammar(linted) -> None:
    statements, diags = linted
    found = [d for d in problems(diags) if not d["name"].startswith("canary:")]
    by_name = {s["name"]: s["query"] for s in statements}
    report = "\n\n".join(f"{d['name']} ({d['version']}, line {d['line']}:{d['character']}): {d['message']}\n"
                         f"    {by_name[d['name']]!s}" for d in found)
    assert not found, f"{len(found)} Cypher problem(s) found by Neo4j's grammar:\n\n{report}"
    assert len(statements) > 30  # the collection itself works


def test_lint_catches_broken_statements(linted) -> None:
    diags = [d for d in linted[1] if d["name"].startswith("canary:")]
    flagged = {d["name"] for d in problems(diags)}
    assert flagged == {c["name"] for c in CANARIES} - {"canary: fine"}, diags
    assert "Invalid input" in next(d["message"] for d in diags if d["name"] == "canary: unclosed")


@pytest.mark.neo4j
def test_exercise_emits_every_neo4j_statement(neo4j_server) -> None:
    """The exercise (and so the lint above) covers every NEO4J_* statement, and the store sends no other text."""
    known = {s["query"] for s in module_statements()}
    known |= {cy.neo4j_columnar_edges(q) for q in known}  # the edge reads, as one record of lists
    driver = live_driver(neo4j_server)
    exercise(Neo4jStore(driver=driver).connect())
    sent = {c.query for c in driver.calls}
    neo4j_only = {s["query"] for s in module_statements() if s["name"].startswith("cypher.NEO4J_")}
    assert neo4j_only - sent == set(), "statements never emitted: " + "; ".join(sorted(neo4j_only - sent))
    assert {q for q in sent if q not in known} == {EXERCISE_READ, EXERCISE_WRITE}  # run()'s texts, nothing else
    assert len(neo4j_only) > 20


def test_missing_linter_fails_not_skips(monkeypatch) -> None:
    """Without node (and without the opt-out) the grammar check fails loudly instead of skipping."""
    monkeypatch.delenv("CIRCUITDB_SKIP_CYPHER_LINT", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="Node.js is not installed"):
        lint([{"name": "x", "query": "RETURN 1", "params": None}])
