"""AttributionGraph: validation errors, frames and on-disk round trips, diff/equals, subgraph."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.graph import NODE_COLUMNS, SCHEMA_VERSION, AttributionGraph, encode_channels


def nodes(**extra) -> pd.DataFrame:
    df = pd.DataFrame({"key": ["E", "A0.1", "M0", "LOGITS"], "kind": ["embed", "head", "mlp", "logit"],
                       "layer": [-1, 0, 0, 1], "head": [None, 1, None, None]})
    for k, v in extra.items():
        df[k] = v
    return df


def small(meta=None, **kw) -> AttributionGraph:
    return AttributionGraph(nodes(), [0, 0, 1, 2], [1, 2, 3, 3], [0.5, -0.25, 1.0, 2.0], [3, 0, 0, 0],
                            meta if meta is not None else {"id": "small", "model": "toy"}, **kw)


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_refused_naming_the_edge(bad):
    with pytest.raises(GraphValidationError, match=r"edge 2 \(A0.1 -> LOGITS\).*non-finite weight"):
        AttributionGraph(nodes(), [0, 0, 1], [1, 2, 3], [0.5, 1.0, bad])


@pytest.mark.parametrize("src,dst,msg", [
    ([0, 4], [1, 1], r"edge 1 has source 4, outside the node table \[0, 4\)"),
    ([0, 0], [1, -1], r"edge 1 has target -1, outside"),
])
def test_dangling_edges_are_refused(src, dst, msg):
    with pytest.raises(GraphValidationError, match=msg):
        AttributionGraph(nodes(), src, dst, [1.0, 1.0])


def test_duplicate_and_empty_keys_are_refused():
    df = nodes()
    df.loc[2, "key"] = "A0.1"
    with pytest.raises(GraphValidationError, match=r"duplicate node key 'A0.1' at rows \[1, 2\]"):
        AttributionGraph(df, [], [], [])
    df = nodes()
    df.loc[3, "key"] = ""
    with pytest.raises(GraphValidationError, match="row 3 has an empty key"):
        AttributionGraph(df, [], [], [])


def test_unknown_kind_names_the_node_and_the_options():
    df = nodes()
    df.loc[1, "kind"] = "attention"
    with pytest.raises(GraphValidationError, match=r"'A0.1' \(row 1\).*'attention'.*embed, error, feature, head"):
        AttributionGraph(df, [], [], [])


def test_unknown_and_missing_node_columns():
    with pytest.raises(GraphValidationError, match=r"unknown node column\(s\) \['colour'\]"):
        AttributionGraph(nodes(colour=["r", "g", "b", "k"]), [], [], [])
    with pytest.raises(GraphValidationError, match="'kind'"):
        AttributionGraph(pd.DataFrame({"key": ["a"]}), [], [], [])
    with pytest.raises(GraphValidationError, match="'layer'.*integers"):
        AttributionGraph(nodes(layer=["x", "y", "z", "w"]), [], [], [])
    with pytest.raises(GraphValidationError, match="'pos'.*non-integral value 1.5"):
        AttributionGraph(nodes(pos=[0.0, 1.5, np.nan, 2.0]), [], [], [])
    assert AttributionGraph(nodes(pos=[0.0, 1.0, np.nan, 2.0]), [], [], []).nodes["pos"].tolist() == [0, 1, -1, 2]


def test_bad_channels_are_refused():
    with pytest.raises(GraphValidationError, match="channel code 4"):
        AttributionGraph(nodes(), [0], [1], [1.0], [4])
    with pytest.raises(GraphValidationError, match="unknown edge channel 'x'"):
        encode_channels(["q", "x"])
    assert encode_channels(["", "q", None, "v"]).tolist() == [0, 1, 0, 3]


def test_mismatched_edge_arrays_infinite_node_floats_and_bad_meta():
    with pytest.raises(GraphValidationError, match="differ in length"):
        AttributionGraph(nodes(), [0, 1], [1], [1.0, 2.0])
    with pytest.raises(GraphValidationError, match="'M0' has an infinite activation"):
        AttributionGraph(nodes(activation=[0.0, 1.0, np.inf, np.nan]), [], [], [])
    with pytest.raises(GraphValidationError, match="not JSON-serialisable"):
        AttributionGraph(nodes(), [], [], [], meta={"x": object()})


def test_edge_frame_errors():
    with pytest.raises(GraphValidationError, match=r"lacks column\(s\) \['weight'\]"):
        AttributionGraph.from_frames(nodes(), pd.DataFrame({"source": [0], "target": [1]}))
    with pytest.raises(GraphValidationError, match=r"unknown edge column\(s\) \['sign'\]"):
        AttributionGraph.from_frames(nodes(), pd.DataFrame({"source": [0], "target": [1], "weight": [1.0],
                                                            "sign": [1]}))


# ---------------------------------------------------------------------------------------------- defaults, accessors
def test_normalised_columns_defaults_and_meta():
    g = AttributionGraph(nodes(), [0], [1], [-2.0], meta={"model": "toy"})
    assert list(g.nodes.columns) == list(NODE_COLUMNS)
    assert g.nodes["head"].tolist() == [-1, 1, -1, -1] and g.nodes["pos"].tolist() == [-1] * 4
    assert g.nodes["label"].tolist() == [""] * 4 and np.isnan(g.nodes["activation"]).all()
    assert g.meta["schema_version"] == SCHEMA_VERSION and g.id.startswith("g-")
    assert g.abs_weight.tolist() == [2.0] and g.node_index("M0") == 2
    with pytest.raises(ConfigError, match="no node 'nope'"):
        g.node_index("nope")


def test_content_hash_depends_on_edges_and_identifying_meta():
    a, b = small({"model": "toy"}), small({"model": "toy"})
    assert a.id == b.id
    c = AttributionGraph(nodes(), [0, 0, 1, 2], [1, 2, 3, 3], [0.5, -0.25, 1.0, 2.5], [3, 0, 0, 0], {"model": "toy"})
    assert c.id != a.id and small({"model": "other"}).id != a.id


# ---------------------------------------------------------------------------------------------- round trips
def test_frames_round_trip():
    g = small()
    n, e = g.to_frames()
    assert e["channel"].tolist() == ["v", "", "", ""]
    back = AttributionGraph.from_frames(n, e, g.meta)
    assert back.diff(g) == [] and back.equals(g)
    # extra abs_weight column is accepted (what stores return)
    assert AttributionGraph.from_frames(n, e.assign(abs_weight=e["weight"].abs()), g.meta).equals(g)


def test_save_load_round_trip(tmp_path):
    g = AttributionGraph(nodes(label=["a'b", "", "c\nd", "}"], activation=[np.nan, 1.5, 0.0, -2.0]),
                         [0, 0, 1, 2], [1, 2, 3, 3], [0.5, -0.25, 1.0, 2.0], [3, 1, 0, 2],
                         {"id": "x", "model": "toy", "params": {"steps": 5}, "prompt": ["a", "b"]})
    back = AttributionGraph.load(g.save(tmp_path / "g"))
    assert back.diff(g) == []
    pd.testing.assert_frame_equal(back.nodes, g.nodes)
    assert back.channel.tolist() == g.channel.tolist() and back.meta == g.meta


def test_load_refuses_newer_schema_unknown_format_and_missing_files(tmp_path):
    path = small().save(tmp_path / "g")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ConfigError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        AttributionGraph.load(path)
    (path / "meta.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(ConfigError, match="not a circuitdb graph"):
        AttributionGraph.load(path)
    (path / "edges.parquet").unlink()
    with pytest.raises(ConfigError, match=r"missing \['edges.parquet'\]"):
        AttributionGraph.load(path)


# ---------------------------------------------------------------------------------------------- diff, subgraph
def test_diff_reports_each_kind_of_difference():
    g = small()
    assert g.diff(small()) == []
    other = AttributionGraph(nodes(), [0, 0, 1, 2], [1, 2, 3, 3], [0.5, -0.25, 1.0, 2.5], [3, 0, 0, 0], g.meta)
    assert any("weight" in d for d in g.diff(other))
    assert g.diff(other, atol=0.6) == []
    fewer = AttributionGraph(nodes(), [0, 0, 1], [1, 2, 3], [0.5, -0.25, 1.0], [3, 0, 0], g.meta)
    assert any("edge sets differ" in d for d in g.diff(fewer))
    other_chan = AttributionGraph(nodes(), [0, 0, 1, 2], [1, 2, 3, 3], [0.5, -0.25, 1.0, 2.0], [1, 0, 0, 0], g.meta)
    assert g.diff(other_chan)
    lab = AttributionGraph(nodes(label=["", "x", "", ""]), g.src, g.dst, g.weight, g.channel, g.meta)
    assert g.diff(lab) == ["node 'A0.1': label '' != 'x'"]
    assert any("meta differs in ['model']" in d for d in g.diff(small({**g.meta, "model": "m2"})))
    assert g.diff(small({**g.meta, "model": "m2"}), meta=False) == []


def test_subgraph_renumbers():
    g = small()
    sub = g.subgraph(edge_mask=np.abs(g.weight) >= 1.0, node_mask=np.array([False, True, True, True]))
    assert sub.keys.tolist() == ["A0.1", "M0", "LOGITS"]
    assert sub.src.tolist() == [0, 1] and sub.dst.tolist() == [2, 2] and sub.weight.tolist() == [1.0, 2.0]
