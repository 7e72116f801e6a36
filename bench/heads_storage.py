"""Heads inside feature graphs: what ``min_head_share`` stores, and what it costs, against heads off.

For one prompt and one set of dictionaries, builds the pruned feature graph with heads off and with heads on at each
share (0 = every non-zero head part gets a head node, the full decomposition), then writes each into a fresh
embedded store. Prints one markdown row per setting: attribution CPU time (``time.process_time``, one thread) and its
ratio to heads off, stored nodes / edges and their ratio to heads off, kept head parts of the non-zero ones, the
share of the head parts' |mass| folded into plain edges, and the write time (wall).

    python bench/heads_storage.py                                   # random-4l, random width-512 transcoders, 32 tokens
    python bench/heads_storage.py --gpt2 /tmp/circuitdb-gpt2-bench --width 6144 --tokens 16   # feature_gpt2's setup
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _inputs(a: argparse.Namespace):  # noqa: ANN202
    import torch

    if a.gpt2:
        sys.path.insert(0, str(Path(__file__).parent))
        from feature_gpt2 import BOS, _dictionaries, _model, setup
        from safetensors.torch import load_file

        setup(Path(a.gpt2), [a.width], [a.tokens])
        model = _model()
        model.load_state_dict(load_file(str(Path(a.gpt2) / "model.safetensors")))
        toks = torch.randint(0, BOS, (a.tokens,), generator=torch.Generator().manual_seed(a.tokens))
        toks[0] = BOS
        return model, toks, _dictionaries(Path(a.gpt2), a.width), "gpt2-shape random, width %d" % a.width
    from circuitdb.dictionaries.train import random_dictionaries
    from circuitdb.models import load_model

    model = load_model("random-4l")
    toks = torch.randint(1, model.cfg.d_vocab, (a.tokens,), generator=torch.Generator().manual_seed(0))
    return model, toks, random_dictionaries(model, "transcoder", width=a.width, seed=0), "random-4l"


def main(argv: list[str]) -> None:
    import torch

    from circuitdb.attribution.features import attribute_features
    from circuitdb.store.embedded import EmbeddedStore

    p = argparse.ArgumentParser(prog="heads_storage.py")
    p.add_argument("--gpt2", metavar="CACHE", help="feature_gpt2.py's cache folder (model + JumpReLU transcoders)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--cap", type=int, default=4096, help="max_feature_nodes")
    p.add_argument("--shares", default="0,0.05,0.1,0.2")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, toks, dicts, what = _inputs(a)
    rows, base = [], None
    for share in [None, *(float(s) for s in a.shares.split(","))]:
        kw = {"heads": False} if share is None else {"heads": True, "min_head_share": share}
        c0 = time.process_time()
        g = attribute_features(model, toks, dicts, max_feature_nodes=a.cap, progress=False, graph_id="b", **kw)
        cpu = time.process_time() - c0
        with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "db") as store:
            w0 = time.perf_counter()
            store.write_graph(g)
            write = time.perf_counter() - w0
        if base is None:
            base = (cpu, g.n_nodes, g.n_edges)
        st = g.meta.get("head_decomposition", {})
        rows.append(f"| {'off' if share is None else share} | {cpu:.2f} ({cpu / base[0]:.2f}×) | {g.n_nodes:,} / "
                    f"{g.n_edges:,} ({g.n_edges / base[2]:.2f}×) | "
                    f"{st.get('kept_parts', 0):,} of {st.get('nonzero_parts', 0):,} | "
                    f"{st.get('folded_mass_share', 0.0):.3f} | {write:.2f} |")
        print(rows[-1], flush=True)
    print(f"\n{what}, {a.tokens} tokens, max_feature_nodes {a.cap}, influence-pruned (0.8 / 0.98)\n")
    print("| heads (min_head_share) | attribution CPU s | stored nodes / edges | head parts kept | |mass| folded | "
          "write s |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
