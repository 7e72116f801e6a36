"""Ingest job specs: ``ingest/*.toml`` files, validated by pydantic (the boundary), with messages that name the key.

A job says which model (zoo name, pretrained name, local folder, or a list of checkpoints), which prompts (a task or
a ``.jsonl`` file), how to attribute them (granularity, method and its parameters, dictionaries for feature graphs),
how to prune before storing, where to store (a store URI) and how graph ids are made. Every table forbids unknown
keys; an error names the key and lists the valid ones. See ``ingest/*.toml`` for commented examples.

Graph-id schemes: ``provenance`` (default): ``<job>-<hash>`` of the job name, model id and checkpoint, dictionary
ids, the graph's tokens, method, metric and the parameters that change the result (:mod:`circuitdb.identity`);
``sequential``: ``<job>-<checkpoint>-<index>``, readable, stable as long as the job's prompts do not change.
"""

from __future__ import annotations

import glob
import re
import sys
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from circuitdb.errors import ConfigError

COMPONENT_METHODS = ("eap", "eap-ig", "patching")
FEATURE_METHODS = ("replacement",)
COMPONENT_PARAMS = ("ablation", "ig_steps", "per_position")
FEATURE_PARAMS = ("max_feature_nodes", "logit_prob", "max_logits", "heads", "min_head_share")
PRUNE_METHODS = ("influence", "topn", "threshold", "greedy", "dead_ends")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Scalar = Union[bool, int, float, str, None]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Table):
    """``[model]``: exactly one of ``name`` (zoo, pretrained or local folder) and ``checkpoints``."""

    name: str | None = None
    checkpoints: list[str] | None = None  # folders (globs allowed) of one training run, sorted by their step
    checkpoint_values: list[int] | None = None  # pretrained checkpoints by step (Pythia): with ``name``
    dtype: Literal["float32", "float64", "float16", "bfloat16"] = "float32"
    device: str = "cpu"

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        if (self.name is None) == (self.checkpoints is None):
            raise ValueError("give exactly one of model.name and model.checkpoints")
        if self.checkpoint_values is not None and self.name is None:
            raise ValueError("model.checkpoint_values needs model.name (a pretrained model with checkpoints)")
        if self.checkpoints is not None and not self.checkpoints:
            raise ValueError("model.checkpoints is empty")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.match(r"^(cpu|cuda(:\d+)?|mps)$", v):
            raise ValueError(f"model.device {v!r} is not one of cpu, cuda, cuda:N, mps")
        return v


class DataSpec(_Table):
    """``[data]``: exactly one of ``task`` (a task name) and ``file`` (a ``.jsonl`` of prompt pairs)."""

    task: str | None = None
    file: str | None = None
    n: int | None = Field(default=None, ge=1)
    seed: int = 0
    options: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)  # keyword arguments of the task builder

    @model_validator(mode="after")
    def _one_source(self) -> "DataSpec":
        if (self.task is None) == (self.file is None):
            raise ValueError("give exactly one of data.task and data.file")
        if self.task is not None:
            from circuitdb.tasks import TASKS

            if self.task not in TASKS or self.task == "jsonl":
                valid = [t for t in TASKS if t != "jsonl"]
                raise ValueError(f"data.task {self.task!r} is not one of {', '.join(valid)} (use data.file for "
                                 ".jsonl prompts)")
        if self.file is not None and not self.file.endswith(".jsonl"):
            raise ValueError(f"data.file {self.file!r} must be a .jsonl file")
        return self


class AttributionSpec(_Table):
    """``[attribution]``: what one graph is and how it is computed."""

    granularity: Literal["component", "feature"] = "component"
    method: str = "eap-ig"
    metric: str | None = None  # component graphs: logit_diff, logprob, kl (default: the task's)
    params: dict[str, Scalar] = Field(default_factory=dict)
    prompts_per_graph: int = Field(default=1, ge=1)  # component graphs: prompts averaged into one graph
    batch_size: int = Field(default=32, ge=1)  # compute batch (not part of a graph's identity)
    head_stats: bool = True  # component graphs: attention-pattern scores and DLA on head nodes
    dictionaries: str | list[str] | None = None  # feature graphs: None = the zoo model's own, or paths / names

    @model_validator(mode="after")
    def _method_fits(self) -> "AttributionSpec":
        methods, allowed = ((COMPONENT_METHODS, COMPONENT_PARAMS) if self.granularity == "component"
                            else (FEATURE_METHODS, FEATURE_PARAMS))
        if self.method not in methods:
            raise ValueError(f"attribution.method {self.method!r} is not a {self.granularity} method; valid "
                             f"options: {', '.join(methods)}")
        bad = sorted(set(self.params) - set(allowed))
        if bad:
            raise ValueError(f"unknown attribution.params {bad} for method {self.method!r}; valid: "
                             f"{', '.join(allowed)}")
        if self.granularity == "feature" and self.prompts_per_graph != 1:
            raise ValueError("attribution.prompts_per_graph must be 1 for feature graphs (one graph per prompt)")
        if self.granularity == "component" and self.dictionaries is not None:
            raise ValueError("attribution.dictionaries is for feature graphs; this job's granularity is component")
        return self


class PruneSpec(_Table):
    """``[prune]``: prune every graph before storing it (see :mod:`circuitdb.pruning`)."""

    method: Literal["influence", "topn", "threshold", "greedy", "dead_ends"]
    params: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit(self) -> "PruneSpec":
        import inspect

        from circuitdb.pruning import PRUNERS

        valid = [p for p in inspect.signature(PRUNERS[self.method]).parameters if p not in ("graph", "edge_mask")]
        bad = sorted(set(self.params) - set(valid))
        if bad:
            raise ValueError(f"unknown prune.params {bad} for prune.method {self.method!r}; valid: "
                             f"{', '.join(valid) or 'none'}")
        return self


class IdSpec(_Table):
    """``[ids]``: how graph ids are made."""

    scheme: Literal["provenance", "sequential"] = "provenance"
    prefix: str | None = None  # default: the job name

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"ids.prefix {v!r} may hold only letters, digits and _.- (no '/')")
        return v


class WriteSpec(_Table):
    """``[write]``: how graphs reach the store."""

    graphs_per_transaction: int = Field(default=64, ge=1)
    max_edges_per_transaction: int = Field(default=500_000, ge=1)
    queue: int = Field(default=4, ge=1)  # batches waiting for the writer thread (bounds memory)
    # write on a thread while the next graphs are computed: true / false; unset = where it was measured to pay
    # (feature graphs, one-graph-at-a-time component jobs, server stores; not batched one-prompt component jobs
    # into the embedded store, whose writer thread contends with attribution for the GIL: 0.85x measured)
    overlap: bool | None = None


class JobSpec(_Table):
    """A whole ingest job (one TOML file)."""

    name: str
    description: str = ""
    store: str | None = None  # store URI; the CLI's --store overrides it; default $CIRCUITDB_STORE
    model: ModelSpec
    data: DataSpec
    attribution: AttributionSpec = AttributionSpec()
    prune: PruneSpec | None = None
    ids: IdSpec = IdSpec()
    write: WriteSpec = WriteSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"name {v!r} may hold only letters, digits and _.- and must start with a letter or digit")
        return v

    def checkpoint_paths(self, base: Path | None = None) -> list[str]:
        """``model.checkpoints`` with globs expanded (relative to ``base``), sorted by the step in their config."""
        out: list[str] = []
        for pat in self.model.checkpoints or []:
            p = Path(pat) if base is None or Path(pat).is_absolute() else base / pat
            hits = sorted(glob.glob(str(p))) if any(c in pat for c in "*?[") else [str(p)]
            if not hits:
                raise ConfigError(f"job {self.name!r}: model.checkpoints pattern {pat!r} matches no folder")
            out += hits
        missing = [h for h in out if not (Path(h) / "config.json").is_file()]
        if missing:
            raise ConfigError(f"job {self.name!r}: checkpoint folder(s) without config.json: {missing[:3]}")
        return sorted(dict.fromkeys(out), key=_step_of)


def _step_of(path: str) -> tuple[int, str]:
    import json

    try:
        v = json.loads((Path(path) / "config.json").read_text()).get("checkpoint_value")
    except (OSError, ValueError):
        v = None
    return (int(v) if isinstance(v, (int, float)) else -1, path)


# ------------------------------------------------------------------------------------------------ loading
def _table_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    for part in loc:
        field = cls.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return None
        ann = field.annotation
        nxt = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
                   None)
        if nxt is None:
            return None
        cls = nxt
    return cls


def _message(err: dict) -> str:
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    dotted = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        table = _table_at(JobSpec, loc[:-1])
        valid = ", ".join(sorted(table.model_fields)) if table else "?"
        where = f"[{'.'.join(map(str, loc[:-1]))}]" if len(loc) > 1 else "the top level"
        return f"unknown key {dotted!r}; valid keys in {where}: {valid}"
    if kind == "missing":
        return f"missing required key {dotted!r}"
    if kind == "literal_error":
        valid = str(err["ctx"]["expected"]).replace("'", "").replace(" or ", ", ")
        return f"{dotted} = {err['input']!r} is not valid; valid options: {valid}"
    if kind == "value_error":  # our validators' messages name the key themselves
        return str(err["msg"]).removeprefix("Value error, ")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        bound = next(iter(err["ctx"].values()))
        return f"{dotted} = {err.get('input')!r}: must be {op} {bound}"
    return f"{dotted} = {err.get('input')!r}: {err['msg']}"


def parse_job(data: dict[str, Any], source: str = "job") -> JobSpec:
    """A JobSpec from a parsed TOML dict; ConfigError listing every problem (one per line)."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        lines = [_message(err) for err in e.errors()]
        raise ConfigError(f"{source}: " + ("\n  ".join(lines) if len(lines) == 1 else
                                          "\n  " + "\n  ".join(lines))) from None


def load_job(path: str | Path) -> JobSpec:
    """Read and validate ``path`` (TOML). A missing ``name`` defaults to the file's stem."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"job file {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    data.setdefault("name", p.stem)
    return parse_job(data, str(p))
