"""The ingest runner: one graph per prompt, skip-existing and --force, shards, failures that resume."""

from __future__ import annotations

from pathlib import Path

import pytest

import circuitdb
from circuitdb.errors import ConfigError, StoreError
from circuitdb.ingest.runner import run_job
from circuitdb.store.base import open_store
from ingest_fixtures import graphs_by_id, induction_job, same_graphs


def test_run_skip_force(tmp_path: Path) -> None:
    spec = induction_job(n=6)
    events: list[str] = []
    s = run_job(spec, store=f"embedded:{tmp_path}/st", on_event=lambda name, info: events.append(name))
    assert (s.graphs, s.written, s.skipped, s.transactions) == (6, 6, 0, 2)
    assert events[0] == "start" and events[-1] == "done" and events.count("computed") == 6
    with open_store(f"embedded:{tmp_path}/st") as st:
        first = graphs_by_id(st)
    assert len(first) == 6 and sorted(first) == sorted(s.graph_ids)
    g = next(iter(first.values()))
    assert g.meta["job"]["name"] == "t-ind" and g.meta["model_id"].startswith("toy-induction-2l-")
    assert g.n_edges == 81 and len(set(s.graph_ids)) == 6
    again = run_job(spec, store=f"embedded:{tmp_path}/st")
    assert (again.written, again.skipped, again.computed) == (0, 6, 0)
    forced = run_job(spec, store=f"embedded:{tmp_path}/st", force=True)
    assert (forced.written, forced.skipped) == (6, 0)
    with open_store(f"embedded:{tmp_path}/st") as st:
        assert len(st.list_graphs()) == 6 and same_graphs(graphs_by_id(st), first) == []


def test_graph_equals_a_direct_attribute_call(tmp_path: Path) -> None:
    spec = induction_job(n=2)
    s = run_job(spec, store=f"embedded:{tmp_path}/st")
    m = circuitdb.load_model("toy-induction-2l")
    ds = circuitdb.load_task("induction", m, n=2, seed=0, half_len=8)
    direct = circuitdb.attribute(m, ds.batch(slice(1, 2)), method="eap", metric="logprob", progress=False,
                                 head_stats=False)
    with open_store(f"embedded:{tmp_path}/st") as st:
        stored = st.read_graph(s.graph_ids[1])
    # the job computes its one-prompt graphs in batched passes (float32: equal to rounding, ~4e-7 relative)
    assert stored.diff(direct, meta=False, atol=1e-4) == []


def test_shards_union_equals_the_unsharded_run(tmp_path: Path) -> None:
    spec = induction_job(n=7)
    full = run_job(spec, store=f"embedded:{tmp_path}/full")
    parts = [run_job(spec, store=f"embedded:{tmp_path}/sharded", shard=f"{i}/3") for i in range(3)]
    assert sum(p.graphs for p in parts) == 7 and [p.graphs for p in parts] == [3, 2, 2]
    ids = [set(p.graph_ids) for p in parts]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and set().union(*ids) == set(full.graph_ids)
    with open_store(f"embedded:{tmp_path}/full") as a, open_store(f"embedded:{tmp_path}/sharded") as b:
        assert same_graphs(graphs_by_id(a), graphs_by_id(b)) == []


@pytest.mark.parametrize("shard", ["3/3", "1", "a/b", "0/0"])
def test_bad_shards(tmp_path: Path, shard: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        run_job(induction_job(n=1), store=f"embedded:{tmp_path}/st", shard=shard)


def test_sequential_ids_and_groups(tmp_path: Path) -> None:
    spec = induction_job(n=5, prompts_per_graph=2).model_copy(
        update={"ids": induction_job().ids.model_copy(update={"scheme": "sequential"})})
    s = run_job(spec, store=f"embedded:{tmp_path}/st")
    assert s.graph_ids == ["t-ind-000000", "t-ind-000001", "t-ind-000002"]
    with open_store(f"embedded:{tmp_path}/st") as st:
        g = st.read_graph("t-ind-000002")
    assert g.meta["params"]["n"] == 1 and g.meta["job"]["prompts"] == [4, 5]


def test_a_failing_store_stops_with_a_resumable_state(tmp_path: Path) -> None:
    spec = induction_job(n=10)
    st = open_store(f"embedded:{tmp_path}/st")
    calls = {"n": 0}
    real = st.write_graphs

    def flaky(graphs, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("disk full (simulated)")
        return real(graphs, *a, **kw)

    st.write_graphs = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreError) as e:
        run_job(spec, store=st)
    msg = str(e.value)
    assert "stopped while writing to the store: disk full (simulated)" in msg and "re-run the same command" in msg
    st.close()
    with open_store(f"embedded:{tmp_path}/st") as st2:
        n_before = len(st2.list_graphs())
    assert n_before == 4  # the first transaction (4 graphs); the second failed whole
    s = run_job(spec, store=f"embedded:{tmp_path}/st")
    assert s.skipped == n_before and s.written == 10 - n_before


@pytest.mark.parametrize("method", ["eap", "patching"])  # batched per-prompt passes, and one graph at a time
def test_a_failing_prompt_stops_the_job_and_keeps_what_was_computed(tmp_path: Path, monkeypatch, method) -> None:
    from circuitdb.ingest import plan

    spec = induction_job(n=6, method=method)
    real = plan.SourceContext._finish

    def boom(self, j, g):  # noqa: ANN001
        if j == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self, j, g)

    monkeypatch.setattr(plan.SourceContext, "_finish", boom)
    with pytest.raises(circuitdb.AttributionError, match=r"computing graph .* group 3\): CUDA out of memory"):
        run_job(spec, store=f"embedded:{tmp_path}/st")
    with open_store(f"embedded:{tmp_path}/st") as st:
        assert len(st.list_graphs()) == 3


def test_recurring_units_over_an_ingested_store_find_the_induction_head(tmp_path: Path) -> None:
    s = run_job(induction_job(n=8), store=f"embedded:{tmp_path}/st")
    with open_store(f"embedded:{tmp_path}/st") as st:
        top = circuitdb.query(st, "recurring_units", kind="head", min_weight=0.0, min_graphs=8, limit=50)
        strong = circuitdb.query(st, "recurring_units", kind="head", min_weight=0.3, limit=3)
    assert s.written == 8 and len(top) == 8  # every head in all 8 graphs
    assert strong.iloc[0]["layer"] == 1 and strong.iloc[0]["head"] == 2 and strong.iloc[0]["n_graphs"] == 8


def test_cli_ingest_check_run_and_rerun(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from circuitdb.cli import app

    job = tmp_path / "tiny.toml"
    job.write_text('[model]\nname = "toy-induction-2l"\n[data]\ntask = "induction"\nn = 3\n'
                   '[attribution]\nmethod = "eap"\nhead_stats = false\n')
    store = f"embedded:{tmp_path}/st"
    r = CliRunner().invoke(app, ["ingest", str(job), "--check"])
    assert r.exit_code == 0 and '"name": "tiny"' in r.output
    r = CliRunner().invoke(app, ["ingest", str(job), "--store", store, "-q"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "3 graph(s) written" in out and "0 already stored" in out
    r = CliRunner().invoke(app, ["ingest", str(job), "--store", store, "-q", "--shard", "1/2"])
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "0 graph(s) written" in out and "1 already stored" in out
    job.write_text(job.read_text() + "batch = 3\n")
    r = CliRunner().invoke(app, ["ingest", str(job), "--store", store])
    assert r.exit_code != 0 and "unknown key 'attribution.batch'" in str(r.exception)


def test_feature_job_stores_pruned_graphs(tmp_path: Path) -> None:
    from circuitdb.ingest.examples import toy_ioi_feature_job

    s = run_job(toy_ioi_feature_job(n=2, max_feature_nodes=16), store=f"embedded:{tmp_path}/st")
    assert s.written == 2
    with open_store(f"embedded:{tmp_path}/st") as st:
        g = st.read_graph(s.graph_ids[0])
    assert g.meta["granularity"] == "feature" and len(g.meta["dictionary_ids"]) == 3
    assert g.meta["pruned"]["method"] == "influence" and g.n_edges <= g.meta["pruned"]["raw_edges"]


def test_writer_thread_where_it_pays() -> None:
    from circuitdb.ingest.examples import toy_ioi_feature_job
    from circuitdb.ingest.runner import overlaps

    assert not overlaps(induction_job())  # batched one-prompt EAP: inline writes (GIL contention, bench/README)
    assert overlaps(induction_job(method="patching")) and overlaps(induction_job(prompts_per_graph=2))
    assert overlaps(toy_ioi_feature_job(n=1))
    on = induction_job().model_copy(update={"write": induction_job().write.model_copy(update={"overlap": True})})
    assert overlaps(on)

    class Server:  # a Neo4j store: its writer waits on the network
        uri = "bolt://example:7687"

    assert overlaps(induction_job(), Server()) and not overlaps(induction_job(), None)


def test_a_resumed_run_computes_each_graph_in_the_same_batch(tmp_path: Path, monkeypatch) -> None:
    """float32 per-prompt scores depend on the batch they were computed in (rounding), so a resumed run recomputes
    the fixed batch windows of the uninterrupted run, and stores the graphs it lacked with identical weights."""
    import circuitdb.attribution.api as api

    spec = induction_job(n=10)  # batch_size 4: windows [0-3] [4-7] [8-9]
    seen: list[list[str]] = []
    real = api.attribute_prompts

    def spy(model, data, **kw):
        seen.append(list(kw["graph_ids"]))
        return real(model, data, **kw)

    monkeypatch.setattr(api, "attribute_prompts", spy)
    full = run_job(spec, store=f"embedded:{tmp_path}/st")
    ids = full.graph_ids
    with open_store(f"embedded:{tmp_path}/st") as st:
        before = graphs_by_id(st)
        assert st.delete_graph(ids[1]) and st.delete_graph(ids[2]) and st.delete_graph(ids[9])
    seen.clear()
    again = run_job(spec, store=f"embedded:{tmp_path}/st")
    assert (again.written, again.skipped) == (3, 7)
    assert seen == [ids[0:4] + ids[8:10]]  # windows [0-3] and [8-9] in full; [4-7] is not computed
    with open_store(f"embedded:{tmp_path}/st") as st:
        assert same_graphs(graphs_by_id(st), before) == []  # bit-identical (atol 0)
