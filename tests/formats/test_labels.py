"""Feature labels from CSV / Neuronpedia files, onto graphs in memory and in the store; used by exports and pictures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.formats.labels import apply_labels, label_stored_graph, read_labels
from circuitdb.formats.neuronpedia import to_neuronpedia

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import feature_graph  # noqa: E402

CSV = 'dictionary,index,description\ntc-L1,107,"numbers, ""quoted"""\ntc-L0,14,Paris\ntc-L9,1,unused\n'


def test_csv_onto_graph_and_into_exports(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text(CSV)
    labels = read_labels(p)
    assert labels.to_dict("records")[0] == {"dictionary": "tc-L1", "feature": 107, "label": 'numbers, "quoted"'}
    g = apply_labels(feature_graph(), labels)
    lab = g.nodes.set_index("key")["label"]
    assert (lab[[f"F1:107@{p}" for p in range(4)]] == 'numbers, "quoted"').all()
    assert lab["F0:14@2"] == "Paris" and lab["F0:7@2"] == ""
    clerps = {n["node_id"]: n["clerp"] for n in to_neuronpedia(g)["nodes"]}
    assert clerps["1_107_3"] == 'numbers, "quoted"'


def test_neuronpedia_sources(tmp_path):
    doc = to_neuronpedia(feature_graph())
    for n in doc["nodes"]:
        n.pop("circuitdb")
    doc["metadata"].pop("circuitdb")
    labels = read_labels(doc)
    assert set(labels["label"]) == {"the word 'cat'"} and set(labels["feature"]) == {0, 100}
    exp = [{"modelId": "toy", "layer": "6-res-jb", "index": "3", "description": "dogs"}]
    p = tmp_path / "exp.json"
    p.write_text(json.dumps(exp))
    assert read_labels(p).to_dict("records") == [{"dictionary": "6-res-jb", "feature": 3, "label": "dogs"}]
    assert read_labels(p, dictionary="tc-L0").iloc[0]["dictionary"] == "tc-L0"


@pytest.mark.parametrize("text,words", [
    ("index,label\n3,x\n", ["row 1", "dictionary"]),
    ("dictionary,index,label\nd,three,x\n", ["row 1", "feature", "integer"]),
    ("dictionary,index,label\nd,3,x\nd,3,y\n", ["labelled twice", "rows [1, 2]"]),
    ("dictionary,index,label\nd,3,\n", ["row 1", "label"]),
])
def test_bad_label_files(tmp_path, text, words):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(GraphValidationError) as ei:
        read_labels(p)
    for w in words:
        assert w in str(ei.value), str(ei.value)


def test_store_labels_and_cli(tmp_path):
    from circuitdb.cli import app
    from circuitdb.store.embedded import EmbeddedStore

    p = tmp_path / "labels.csv"
    p.write_text(CSV)
    with EmbeddedStore(tmp_path / "db") as s:
        s.write_graph(feature_graph())
        n, unused = label_stored_graph(s, "g-feat", read_labels(p))
        assert (n, unused) == (8, 1)
        lab = s.read_graph("g-feat").nodes.set_index("key")["label"]
        assert lab["F1:107@0"] == 'numbers, "quoted"' and lab["F0:0@0"] == "the word 'cat'"
        names = s.run("MATCH (n:Node) WHERE n.key = $k RETURN n.name AS name", {"k": "F0:14@2"})["name"].tolist()
        assert names and set(names) == {'F0:14@2 "Paris"'}  # the Browser caption follows the label
        with pytest.raises(ConfigError, match="no node"):
            s.set_node_labels("g-feat", {"F0:0@0": "x", "nope": "y"})
        assert s.read_graph("g-feat").nodes.set_index("key")["label"]["F0:0@0"] == "the word 'cat'"
    (tmp_path / "l2.csv").write_text("index,label\n7,seven\n")
    r = CliRunner().invoke(app, ["label", "g-feat", str(tmp_path / "l2.csv"), "-d", "tc-L0",
                                 "--store", f"embedded:{tmp_path / 'db'}"])
    assert r.exit_code == 0, r.output
    assert "labelled 4 feature node(s)" in r.output
    with EmbeddedStore(tmp_path / "db") as s:
        assert s.read_graph("g-feat").nodes.set_index("key")["label"]["F0:7@3"] == "seven"


@pytest.mark.neo4j
def test_labels_on_live_neo4j(neo4j_server, tmp_path):
    import uuid

    from circuitdb.store.neo4j import Neo4jStore

    g = feature_graph()
    gid = f"circuitdb-labels-{uuid.uuid4().hex[:8]}"
    p = tmp_path / "labels.csv"
    p.write_text(CSV)
    with Neo4jStore().connect() as s:
        try:
            s.write_graph(g, graph_id=gid)
            assert label_stored_graph(s, gid, read_labels(p)) == (8, 1)
            lab = s.read_graph(gid).nodes.set_index("key")["label"]
            assert lab["F1:107@2"] == 'numbers, "quoted"' and lab["F0:14@0"] == "Paris"
            with pytest.raises(ConfigError, match="no node"):
                s.set_node_labels(gid, {"nope": "y"})
        finally:
            s.delete_graph(gid)
