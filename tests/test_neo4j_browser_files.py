"""The shipped Neo4j Browser style (GraSS) and the ``circuitdb neo4j`` commands that need no server."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from circuitdb.cli import app
from circuitdb.cli.neo4j import style_text
from circuitdb.store.cypher import NEO4J_KIND_LABELS


def grass_rules(text: str) -> dict[str, dict[str, str]]:
    """selector → {property: value}; fails on anything that is not ``selector { prop: value; ... }``."""
    rules: dict[str, dict[str, str]] = {}
    body = re.sub(r"\s+", " ", text).strip()
    rule = r'([\w.]+) \{((?:[^}"]|"[^"]*")*)\}'
    for m in re.finditer(rule, body):
        props = dict(tuple(x.strip() for x in p.split(":", 1)) for p in m.group(2).split(";") if p.strip())
        rules[m.group(1)] = props
    assert re.sub(rule, "", body).strip() == "", "stray text outside GraSS rules"
    return rules


def test_style_colours_every_kind_captions_name_and_styles_edges() -> None:
    rules = grass_rules(style_text())
    colours = {}
    for label in NEO4J_KIND_LABELS.values():
        rule = rules[f"node.{label}"]
        assert rule["caption"] == '"{name}"'
        assert re.fullmatch(r"#[0-9A-F]{6}", rule["color"])
        colours[label] = rule["color"]
    assert len(set(colours.values())) == len(colours)  # one colour per kind
    assert rules["relationship.ATTRIBUTES"]["caption"] == '"{weight}"'
    assert {"node", "relationship", "node.Graph", "node.Circuit", "node.Unit"} <= set(rules)


def test_style_command_prints_one_browser_command() -> None:
    out = CliRunner().invoke(app, ["neo4j", "style"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("//") and lines[1].startswith(":style node {")
    assert "\n".join(lines[1:])[len(":style "):].strip() == style_text().strip()
    raw = CliRunner().invoke(app, ["neo4j", "style", "--raw"])
    assert raw.output == style_text()


def test_init_and_gc_refuse_an_embedded_store(tmp_path) -> None:
    out = CliRunner().invoke(app, ["neo4j", "gc", "--store", f"embedded:{tmp_path / 'db'}"])
    assert out.exit_code != 0 and "not a Neo4j store" in str(out.exception)
