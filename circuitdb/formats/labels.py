"""Feature descriptions ("labels") by (dictionary, feature index), attached to graphs in memory or in the store.

Sources (:func:`read_labels`):
- a CSV with a header: ``dictionary`` (optional when ``dictionary=`` is given), ``index`` or ``feature``, and
  ``label``, ``description``, ``explanation`` or ``clerp``;
- a Neuronpedia / circuit-tracer graph JSON: each feature node's non-empty ``clerp`` (dictionary as
  :func:`~circuitdb.formats.neuronpedia.read_neuronpedia` names it);
- a Neuronpedia explanations export (a JSON list of ``{"layer" or "source", "index", "description"}``, as its
  API and bulk exports write them).

``dictionary=`` renames every row's dictionary (or fills it in when the file has none). Labels then show in the
pictures and HTML view (the node ``label``), in Neuronpedia exports (``clerp``), and in the store's ``label`` node
property (which the Neo4j Browser captions read).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from circuitdb.errors import ConfigError, GraphValidationError
from circuitdb.formats._common import validation_message

LABEL_COLUMNS = ("label", "description", "explanation", "clerp")
INDEX_COLUMNS = ("index", "feature")


class LabelRow(BaseModel):
    """One description: which feature (dictionary, index) and its text."""

    model_config = ConfigDict(extra="ignore")
    dictionary: str
    feature: int
    label: str

    @field_validator("label")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the label is empty")
        return v


def _rows_from_records(records: list[dict[str, Any]], dictionary: Optional[str], what: str) -> pd.DataFrame:
    out = []
    for i, r in enumerate(records):
        r = {str(k).strip().lower(): v for k, v in r.items()}
        text = next((r[c] for c in LABEL_COLUMNS if r.get(c) not in (None, "")), None)
        idx = next((r[c] for c in INDEX_COLUMNS if r.get(c) not in (None, "")), None)
        dic = dictionary or r.get("dictionary") or r.get("source") or r.get("layer")
        raw = {"dictionary": dic, "feature": idx, "label": text}
        try:
            out.append(LabelRow.model_validate(raw).model_dump())
        except ValidationError as e:
            missing = [k for k, v in raw.items() if v in (None, "")]
            hint = (f" (no {', '.join(missing)}: columns are dictionary, index|feature, "
                    f"{'|'.join(LABEL_COLUMNS)}; or pass dictionary=)") if missing else ""
            raise GraphValidationError(validation_message(e, raw, f"{what} row {i + 1}") + hint) from None
    df = pd.DataFrame(out, columns=["dictionary", "feature", "label"])
    dup = df.duplicated(["dictionary", "feature"], keep=False)
    if dup.any():
        d = df[dup].iloc[0]
        rows = (df.index[dup & (df["dictionary"] == d["dictionary"]) & (df["feature"] == d["feature"])] + 1).tolist()
        raise GraphValidationError(f"{what}: feature ({d['dictionary']!r}, {int(d['feature'])}) is labelled twice "
                                   f"(rows {rows})")
    return df


def read_labels(path_or_obj: Any, *, dictionary: str | None = None) -> pd.DataFrame:
    """A frame ``dictionary, feature, label`` from a CSV, a Neuronpedia graph JSON or an explanations export."""
    if isinstance(path_or_obj, pd.DataFrame):
        return _rows_from_records(path_or_obj.to_dict("records"), dictionary, "labels")
    if isinstance(path_or_obj, (list, dict)):
        obj: Any = path_or_obj
        what = "labels"
    else:
        p = Path(path_or_obj)
        if not p.is_file():
            raise ConfigError(f"labels file {str(p)!r} does not exist")
        what = p.name
        if p.suffix.lower() in (".csv", ".tsv"):
            with p.open(newline="", encoding="utf-8") as f:
                return _rows_from_records(list(csv.DictReader(f, delimiter="\t" if p.suffix == ".tsv" else ",")),
                                          dictionary, what)
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise GraphValidationError(f"{p} is neither CSV (by suffix) nor valid JSON: {e}") from e
    if isinstance(obj, dict) and "nodes" in obj and "links" in obj:
        from circuitdb.formats.neuronpedia import read_neuronpedia

        n = read_neuronpedia(obj).nodes
        n = n[(n["kind"] == "feature") & (n["label"] != "")]
        recs = [{"dictionary": d, "feature": f, "label": lab} for d, f, lab in n[["dictionary", "feature", "label"]]
                .drop_duplicates(["dictionary", "feature"]).itertuples(index=False)]
        return _rows_from_records(recs, dictionary, what)
    if isinstance(obj, dict) and isinstance(obj.get("explanations"), list):
        obj = obj["explanations"]
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise GraphValidationError(f"{what}: expected a list of label records, a CSV, or a Neuronpedia graph file")
    return _rows_from_records(obj, dictionary, what)


def label_keys(graph: Any, labels: pd.DataFrame) -> dict[str, str]:
    """Node key → label for the graph's feature nodes that ``labels`` describes."""
    n = graph.nodes
    feats = n[n["kind"] == "feature"][["key", "dictionary", "feature"]]
    m = feats.merge(labels, on=["dictionary", "feature"], how="inner")
    return dict(zip(m["key"], m["label"]))


def apply_labels(graph: Any, labels: pd.DataFrame) -> Any:
    """A copy of ``graph`` whose matching feature nodes carry the labels."""
    from circuitdb.graph import AttributionGraph

    by_key = label_keys(graph, labels)
    nodes = graph.nodes.copy()
    hit = nodes["key"].isin(list(by_key))
    nodes.loc[hit, "label"] = nodes.loc[hit, "key"].map(by_key)
    return AttributionGraph(nodes, graph.src, graph.dst, graph.weight, graph.channel, dict(graph.meta),
                            validate=False)


def label_stored_graph(store: Any, graph_id: str, labels: pd.DataFrame) -> tuple[int, int]:
    """Set the labels on ``graph_id``'s feature nodes in the store. Returns (labelled nodes, labels that matched no
    feature of the graph)."""
    graph = store.read_graph(graph_id)
    by_key = label_keys(graph, labels)
    used = graph.nodes[graph.nodes["key"].isin(list(by_key))][["dictionary", "feature"]].drop_duplicates()
    n = store.set_node_labels(graph_id, by_key)
    return n, len(labels) - len(used)
