"""Score a toy-ioi candidate (a model folder from ``python -m circuitdb.models.train toy-ioi-v2 --out DIR``):
attention-pattern roles (mean attention S2→S1, END→IO, END→S2, END→S1 per head on 64 IOI prompts, duplicate-token
scores on repeated random tokens) and the ``ioi_circuit`` query's heads with their faithfulness in sample and held
out. ``python bench/ioi_roles.py DIR ['{"n_name_movers": 3}']``; one thread, ~2 CPU minutes. Also: accuracy on
train / held-out names, plain and with 1..N second pairs (``{"second_pair": N}``, see ``circuitdb.tasks.ioi``), and
on those second-pair prompts each head's attention S2→(IO, S1) and END→(IO, S1, S2, the other pairs' names summed).
Figures in docs/design.md (toy-ioi's mechanism)."""
import json
import sys
import tempfile

import torch

torch.set_num_threads(1)
import circuitdb
from circuitdb.circuits.circuit import circuit_from_nodes
from circuitdb.circuits.query import query
from circuitdb.models.attention_scores import _patterns, duplicate_token_scores, ioi_attention, repeated_random_tokens
from circuitdb.store.base import open_store
from circuitdb.tasks import load_task


def positions(ds):
    from circuitdb.models.train_ioi import role_positions

    p = role_positions(ds.clean, ds.answer.view(-1), ds.wrong.view(-1))
    return p["io"], p["s1"], p["s2"], ds.answer_pos.view(-1)


def role_scores(model, ds):
    rep = repeated_random_tokens(model.cfg.d_vocab, 64, 8, seed=0)
    return {**ioi_attention(model, ds), "dup": duplicate_token_scores(model, rep)}


def accuracy_and_pair_attention(model, second_pair):
    from circuitdb.models import vocab as V
    from circuitdb.tasks.metrics import logit_diff

    for k in range(second_pair + 1):
        accs = []
        for names in ("train", "heldout"):
            ds = load_task("ioi", model, n=128, seed=9, names=names, second_pair=k)
            with torch.no_grad():
                accs.append(round(float((logit_diff(model(ds.clean), ds) > 0).float().mean()), 2))
        print(f"second_pair={k} accuracy train/held-out names", accs)  # noqa: T201
        if not k:
            continue
        ds = load_task("ioi", model, n=128, seed=5, second_pair=k)
        p = _patterns(model, ds.clean).permute(1, 3, 4, 0, 2)
        io, s1, s2, end = positions(ds)
        r = torch.arange(len(ds))
        names = torch.tensor([V.IOI_WORDS.index(x) for x in V.NAMES])
        other = torch.isin(ds.clean, names) & (ds.clean != ds.wrong.view(-1, 1)) & (ds.clean != ds.answer.view(-1, 1))
        at = lambda q, kp: p[r, q, kp].mean(0)  # noqa: E731
        rows = dict(s2_io=at(s2, io), s2_s1=at(s2, s1), end_io=at(end, io), end_s1=at(end, s1), end_s2=at(end, s2),
                    end_other=(p[r, end] * other[:, :, None, None]).sum(1).mean(0))
        for name, v in rows.items():
            print(f"  pair{k} {name}", [[round(float(x), 2) for x in row] for row in v])  # noqa: T201


def main(path, n=24, seed=0, second_pair=0, **kw):
    model = circuitdb.load_model(path)
    accuracy_and_pair_attention(model, second_pair)
    ds = load_task("ioi", model, n=64, seed=5)
    rs = role_scores(model, ds)
    for k, v in rs.items():
        print(k,  # noqa: T201 - a bench script's output
              [[round(float(x), 2) for x in row] for row in v])
    graph = circuitdb.attribute(model, "ioi", method="eap-ig", n=n, seed=seed, progress=False, graph_id="g")
    with tempfile.TemporaryDirectory() as d:
        st = open_store(f"embedded:{d}/db")
        st.write_graph(graph)
        roles = query(st, "ioi_circuit", graph_id=graph.id, **kw)
        st.close()
    print(roles[["role", "head", "score", "rank"]].to_string())
    c = circuit_from_nodes(graph, roles["head"], include_kinds=("embed", "logit", "mlp"), method="ioi_circuit")
    a = c.evaluate(model, split="in_sample")
    b = a.evaluate(model, split="held_out")
    b2 = a.evaluate(model, split="held_out", n=64)
    print("faith in", round(a.scores["faithfulness"], 3), "held", round(b.scores["faithfulness"], 3),
          "held64", round(b2.scores["faithfulness"], 3), "edges", c.n_edges, graph.n_edges)


if __name__ == "__main__":
    kw = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    main(sys.argv[1], **kw)
