"""Job specs: every table, unknown keys and bad values give exact messages; the shipped examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdb.errors import ConfigError
from circuitdb.ingest.spec import load_job, parse_job

ROOT = Path(__file__).resolve().parents[2]
BASE = {"name": "j", "model": {"name": "toy-induction-2l"}, "data": {"task": "induction"}}


def _with(section: str, **values: object) -> dict:
    return {**BASE, section: {**BASE.get(section, {}), **values}} if values else {**BASE, section: {}}


CASES = [
    ({**BASE, "modle": 1}, "unknown key 'modle'; valid keys in the top level: attribution, data, description, ids, "
                           "model, name, prune, store, write"),
    (_with("model", dtyp="x"), "unknown key 'model.dtyp'; valid keys in [model]: checkpoint_values, checkpoints, "
                               "device, dtype, name"),
    (_with("model", dtype="f8"), "model.dtype = 'f8' is not valid; valid options: float32, float64, float16, "
                                 "bfloat16"),
    ({**BASE, "model": {}}, "give exactly one of model.name and model.checkpoints"),
    ({**BASE, "model": {"name": "a", "checkpoints": ["b"]}}, "give exactly one of model.name and model.checkpoints"),
    ({**BASE, "model": {"checkpoints": ["b"], "checkpoint_values": [1]}},
     "model.checkpoint_values needs model.name (a pretrained model with checkpoints)"),
    (_with("model", device="tpu"), "model.device 'tpu' is not one of cpu, cuda, cuda:N, mps"),
    ({**BASE, "data": {"task": "nope"}}, "data.task 'nope' is not one of induction, ioi, greater-than (use data.file "
                                         "for .jsonl prompts)"),
    ({**BASE, "data": {"task": "ioi", "file": "x.jsonl"}}, "give exactly one of data.task and data.file"),
    ({**BASE, "data": {"file": "x.csv"}}, "data.file 'x.csv' must be a .jsonl file"),
    ({**BASE, "data": {"task": "ioi", "n": 0}}, "data.n = 0: must be >= 1"),
    ({**BASE, "data": {"task": "ioi", "sed": 1}}, "unknown key 'data.sed'; valid keys in [data]: file, n, options, "
                                                  "seed, task"),
    (_with("attribution", method="xx"), "attribution.method 'xx' is not a component method; valid options: eap, "
                                        "eap-ig, patching"),
    (_with("attribution", granularity="feature", method="eap"),
     "attribution.method 'eap' is not a feature method; valid options: replacement"),
    (_with("attribution", granularity="comp"), "attribution.granularity = 'comp' is not valid; valid options: "
                                               "component, feature"),
    (_with("attribution", params={"ig_step": 3}), "unknown attribution.params ['ig_step'] for method 'eap-ig'; "
                                                  "valid: ablation, ig_steps, per_position"),
    (_with("attribution", granularity="feature", method="replacement", params={"heads": True, "n": 1}),
     "unknown attribution.params ['n'] for method 'replacement'; valid: max_feature_nodes, logit_prob, max_logits, "
     "heads, min_head_share"),
    (_with("attribution", granularity="feature", method="replacement", prompts_per_graph=2),
     "attribution.prompts_per_graph must be 1 for feature graphs (one graph per prompt)"),
    (_with("attribution", dictionaries="d"), "attribution.dictionaries is for feature graphs; this job's granularity "
                                             "is component"),
    (_with("attribution", batch_size=0), "attribution.batch_size = 0: must be >= 1"),
    (_with("attribution", batch="x"), "unknown key 'attribution.batch'; valid keys in [attribution]: batch_size, "
                                      "dictionaries, granularity, head_stats, method, metric, params, "
                                      "prompts_per_graph"),
    ({**BASE, "prune": {"method": "topn", "params": {"k": 3}}},
     "unknown prune.params ['k'] for prune.method 'topn'; valid: n, absolute"),
    ({**BASE, "prune": {"method": "best"}}, "prune.method = 'best' is not valid; valid options: influence, topn, "
                                            "threshold, greedy, dead_ends"),
    ({**BASE, "prune": {}}, "missing required key 'prune.method'"),
    (_with("ids", scheme="x"), "ids.scheme = 'x' is not valid; valid options: provenance, sequential"),
    (_with("ids", prefix="a/b"), "ids.prefix 'a/b' may hold only letters, digits and _.- (no '/')"),
    (_with("write", queue=0), "write.queue = 0: must be >= 1"),
    (_with("write", threads=2), "unknown key 'write.threads'; valid keys in [write]: graphs_per_transaction, "
                                "max_edges_per_transaction, overlap, queue"),
    ({**BASE, "name": "a/b"}, "name 'a/b' may hold only letters, digits and _.- and must start with a letter or "
                              "digit"),
    ({k: v for k, v in BASE.items() if k != "data"}, "missing required key 'data'"),
]


@pytest.mark.parametrize(("data", "message"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_job_specs_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_job(data, "job.toml")
    assert str(e.value) == f"job.toml: {message}"


def test_several_problems_are_listed_one_per_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_job({**BASE, "x": 1, "y": 2}, "job.toml")
    lines = str(e.value).splitlines()
    assert lines[0] == "job.toml: " and len(lines) == 3 and "'x'" in lines[1] and "'y'" in lines[2]


def test_defaults_and_name_from_file(tmp_path: Path) -> None:
    p = tmp_path / "my-job.toml"
    p.write_text('[model]\nname = "toy-ioi"\n[data]\ntask = "ioi"\n')
    spec = load_job(p)
    assert spec.name == "my-job" and spec.attribution.method == "eap-ig" and spec.ids.scheme == "provenance"
    assert spec.write.graphs_per_transaction == 64 and spec.prune is None and spec.model.dtype == "float32"


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("name = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_job(tmp_path / "bad.toml")


@pytest.mark.parametrize("path", sorted((ROOT / "ingest").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_jobs_validate(path: Path) -> None:
    spec = load_job(path)
    assert spec.name == path.stem
    if spec.model.checkpoints:
        assert len(spec.checkpoint_paths(path.parent)) >= 3
