"""What an ingest job will compute: its model sources, prompt groups, graph ids, and one graph's computation.

A :class:`Plan` is built without loading any model (sources and the number of prompt groups come from the spec);
:meth:`Plan.load` loads one source's model once and returns a :class:`SourceContext` that knows the dataset, the
dictionaries, every group's graph id, and computes a group's graph (attribution, then pruning when the job asks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from circuitdb.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from circuitdb.graph import AttributionGraph
    from circuitdb.ingest.spec import JobSpec

log = logging.getLogger(__name__)


def parse_shard(shard: "str | tuple[int, int] | None") -> tuple[int, int]:
    """``"i/n"`` (or ``(i, n)``) → ``(i, n)`` with ``0 <= i < n``; None → ``(0, 1)``."""
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        a, sep, b = shard.partition("/")
        try:
            if not sep:
                raise ValueError
            shard = (int(a), int(b))
        except ValueError:
            raise ConfigError(f"shard {shard!r} is not of the form i/n (e.g. 0/4)") from None
    i, n = int(shard[0]), int(shard[1])
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need n >= 1 and 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class Source:
    """One model to load: a zoo / pretrained name or folder, optionally a pretrained checkpoint step."""

    ref: str
    checkpoint_value: int | None = None
    label: str = ""


@dataclass(frozen=True)
class Plan:
    spec: "JobSpec"
    sources: tuple[Source, ...]
    n_prompts: int
    base_dir: Path | None = None

    @property
    def n_groups(self) -> int:
        p = self.spec.attribution.prompts_per_graph
        return -(-self.n_prompts // p)

    @property
    def n_items(self) -> int:
        return len(self.sources) * self.n_groups

    def load(self, source: Source) -> "SourceContext":
        return SourceContext.build(self, source)


def _resolve(path: str, base: Path | None) -> str:
    p = Path(path)
    if base is not None and not p.is_absolute() and (base / p).exists():
        return str(base / p)
    return path


def make_plan(spec: "JobSpec", base_dir: str | Path | None = None) -> Plan:
    """Sources and prompt count of ``spec`` (relative paths resolve against ``base_dir`` first, then the cwd)."""
    base = Path(base_dir) if base_dir is not None else None
    ms = spec.model
    if ms.checkpoints is not None:
        try:
            paths = spec.checkpoint_paths(base)
        except ConfigError:
            paths = spec.checkpoint_paths(None)
        sources = tuple(Source(p, None, Path(p).name) for p in paths)
    elif ms.checkpoint_values is not None:
        sources = tuple(Source(ms.name, v, f"{ms.name}@{v}") for v in ms.checkpoint_values)  # type: ignore[arg-type]
    else:
        sources = (Source(_resolve(ms.name, base), None, ms.name),)  # type: ignore[arg-type]
    n = spec.data.n
    if n is None:
        if spec.data.file is None:
            n = 64
        else:
            path = Path(_resolve(spec.data.file, base))
            if not path.is_file():
                raise ConfigError(f"job {spec.name!r}: data.file {spec.data.file!r} does not exist")
            n = sum(1 for line in path.read_text().splitlines() if line.strip())
    return Plan(spec, sources, int(n), base)


def _load_model(source: Source, spec: "JobSpec") -> Any:
    from circuitdb.models import load_model

    ms = spec.model
    if source.checkpoint_value is None:
        return load_model(source.ref, device=ms.device, dtype=ms.dtype)
    from transformer_lens import HookedTransformer

    from circuitdb.models.dtypes import torch_dtype

    try:
        return HookedTransformer.from_pretrained(source.ref, checkpoint_value=source.checkpoint_value,
                                                 device=ms.device, dtype=torch_dtype(ms.dtype))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load {source.ref!r} at checkpoint {source.checkpoint_value}: {e}") from e


def batched(spec: "JobSpec") -> bool:
    """Whether ``spec``'s graphs are one-prompt component graphs by EAP / EAP-IG, computed many per batched pass."""
    from circuitdb.attribution.api import PER_PROMPT_METHODS

    a = spec.attribution
    return a.granularity == "component" and a.method in PER_PROMPT_METHODS and a.prompts_per_graph == 1


@dataclass(frozen=True)
class SourceContext:
    """One loaded model with everything a graph of it needs."""

    plan: Plan
    source: Source
    model: Any
    dataset: Any
    dictionaries: tuple
    model_id: str
    checkpoint: Any
    dictionary_ids: tuple[str, ...]

    @classmethod
    def build(cls, plan: Plan, source: Source) -> "SourceContext":
        from circuitdb.identity import checkpoint_of, dictionary_id, model_id
        from circuitdb.tasks import load_task

        spec = plan.spec
        model = _load_model(source, spec)
        ds_spec = spec.data
        name = ds_spec.task if ds_spec.task is not None else _resolve(ds_spec.file, plan.base_dir)  # type: ignore[arg-type]
        dataset = load_task(name, model, n=plan.n_prompts, seed=ds_spec.seed, **ds_spec.options)
        if len(dataset) != plan.n_prompts:
            raise ConfigError(f"job {spec.name!r}: the dataset has {len(dataset)} prompts, expected {plan.n_prompts}")
        dicts: tuple = ()
        if spec.attribution.granularity == "feature":
            from circuitdb.dictionaries.load import load_dictionaries

            from circuitdb.models.dtypes import torch_dtype

            dicts = tuple(load_dictionaries(spec.attribution.dictionaries, model,
                                            dtype=torch_dtype(_feature_dtype(spec))))
        log.info("loaded %s (%s): %d prompts", source.label, model_id(model), len(dataset))
        return cls(plan, source, model, dataset, dicts, model_id(model), checkpoint_of(model),
                   tuple(dictionary_id(d) for d in dicts))

    # ------------------------------------------------------------------ identity
    def _group(self, j: int) -> slice:
        p = self.plan.spec.attribution.prompts_per_graph
        return slice(j * p, min(self.plan.n_prompts, (j + 1) * p))

    def graph_id(self, j: int) -> str:
        from circuitdb.identity import graph_id_for, slug, tokens_digest

        spec = self.plan.spec
        prefix = spec.ids.prefix or spec.name
        if spec.ids.scheme == "sequential":
            m = self.plan.sources.index(self.source)
            ck = f"-{slug(self.source.label)}" if len(self.plan.sources) > 1 else ""
            return f"{prefix}{ck}-{j:06d}" if m >= 0 else f"{prefix}-{j:06d}"
        ds = self.dataset.batch(self._group(j))
        a = spec.attribution
        if a.granularity == "feature":
            tokens = tokens_digest(ds.clean[0])
        else:
            tokens = tokens_digest(ds.clean, ds.corrupted, ds.answer, ds.wrong, ds.answer_pos)
        params = {**a.params, "prompts_per_graph": a.prompts_per_graph, "head_stats": a.head_stats,
                  "dtype": spec.model.dtype, "prune": spec.prune.model_dump() if spec.prune else None}
        if self.batched and a.params.get("ablation") == "mean":
            params["mean_over"] = "job dataset"  # compute_many: one mean over all the job's prompts
        return graph_id_for(job=spec.name, model_id=self.model_id, checkpoint=self.checkpoint,
                            dictionaries=self.dictionary_ids, tokens=tokens, method=a.method, metric=a.metric,
                            params=params, prefix=prefix)

    # ------------------------------------------------------------------ computation
    @property
    def batched(self) -> bool:
        """One-prompt component graphs by EAP / EAP-IG: many graphs per batched pass (:meth:`compute_many`)."""
        return batched(self.plan.spec)

    def compute(self, j: int, graph_id: str) -> "AttributionGraph":
        spec = self.plan.spec
        a = spec.attribution
        ds = self.dataset.batch(self._group(j))
        if a.granularity == "feature":
            from circuitdb.attribution.features import attribute_features

            g = attribute_features(self.model, ds.clean[0], list(self.dictionaries), batch_size=a.batch_size,
                                   dtype=_feature_dtype(spec), progress=False, graph_id=graph_id, **a.params)
        else:
            from circuitdb.attribution.api import attribute

            g = attribute(self.model, ds, method=a.method, metric=a.metric, batch_size=a.batch_size,
                          progress=False, graph_id=graph_id, head_stats=a.head_stats, **a.params)
        return self._finish(j, g)

    def compute_many(self, items: "list[tuple[int, str]]", wanted: "set[str] | None" = None
                     ) -> "Iterator[AttributionGraph]":
        """The graphs of one-prompt groups ``(j, graph id)``, in order, ``attribution.batch_size`` prompts per
        batched pass (:func:`circuitdb.attribution.api.attribute_prompts`; mean ablation: the mean over the job's
        whole dataset, the same in every shard).

        With ``wanted``, ``items`` is the shard's full list and only the graphs whose ids are in ``wanted`` are
        yielded; the passes are still the fixed windows of ``items``, so a resumed run computes every graph in the
        same batch as an uninterrupted run did (float32 results depend on the batch at rounding level) and stores
        bit-identical weights. Windows without a wanted graph are not computed."""
        import torch

        from circuitdb.attribution.api import attribute_prompts

        a = self.plan.spec.attribution
        if wanted is not None:
            b = max(1, int(a.batch_size))
            windows = [items[i:i + b] for i in range(0, len(items), b)]
            items = [it for w in windows if any(gid in wanted for _, gid in w) for it in w]
        if not items:
            return
        ds = self.dataset.batch(torch.tensor([j for j, _ in items], dtype=torch.long))
        graphs = attribute_prompts(self.model, ds, method=a.method, metric=a.metric, batch_size=a.batch_size,
                                   progress=False, graph_ids=[gid for _, gid in items], head_stats=a.head_stats,
                                   mean_over=self.dataset, **a.params)
        for (j, gid), g in zip(items, graphs):
            if wanted is None or gid in wanted:
                yield self._finish(j, g)

    def _finish(self, j: int, g: "AttributionGraph") -> "AttributionGraph":
        """Record the job in the graph's metadata and prune it when the job asks."""
        spec = self.plan.spec
        g.meta["job"] = {"name": spec.name, "group": j, "source": self.source.label,
                         "prompts": [self._group(j).start, self._group(j).stop]}
        if spec.prune is not None:
            from circuitdb.pruning import prune_result

            res = prune_result(g, spec.prune.method, **spec.prune.params)
            meta = {**g.meta, "pruned": {"method": spec.prune.method, "params": dict(spec.prune.params),
                                         "raw_nodes": g.n_nodes, "raw_edges": g.n_edges}}
            g = res.subgraph()
            g.meta.clear()
            g.meta.update(meta)
        return g


def _feature_dtype(spec: "JobSpec") -> str:
    if spec.model.dtype not in ("float32", "float64"):
        raise ConfigError(f"job {spec.name!r}: feature graphs compute in float32 or float64, not {spec.model.dtype}")
    return spec.model.dtype
