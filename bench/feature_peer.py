"""circuit-tracer 0.5.0's side of the GPT-2-shape benchmark (``feature_bench.py --gpt2``); runs in the scratch venv.

    /tmp/ct-venv/bin/python bench/feature_peer.py CACHE WIDTH TOKENS MAX_FEATURE_NODES [BATCH_SIZE]

Reads what ``feature_bench.py --gpt2-setup`` wrote under CACHE (``config.json``, ``model.safetensors``,
``w{WIDTH}/layer_{l}.safetensors`` with ``W_enc [d, width]``, ``W_dec [width, d]``, ``b_enc``, ``b_dec``,
``threshold``; ``tokens_{TOKENS}.json``), builds circuit-tracer's TransformerLens replacement model with JumpReLU
transcoders on ``ln2.hook_normalized`` → ``mlp.hook_out`` (the LayerNorm of a random model is the identity, so the
TransformerLens 2.x and 3.x readings of that hook agree), runs ``attribute`` with its defaults (batch 512 unless
BATCH_SIZE is given) on one thread, prunes with ``prune_graph`` (0.8 / 0.98), and prints one JSON line: times, the
logit rows over the visited features (for the agreement check) and the edge counts. Imports only torch,
transformer-lens 2.x, circuit-tracer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


class _Tokenizer:
    """What circuit-tracer reads of a tokenizer (no hub here): ids are their own strings; BOS is special."""

    def __init__(self, vocab: int, bos: int) -> None:
        self.vocab_size, self.bos_token_id, self.pad_token_id, self.eos_token_id = vocab, bos, bos, bos
        self.all_special_ids, self.padding_side = [bos], "right"

    def decode(self, ids, **kw) -> str:  # noqa: ANN001, ANN003
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return " ".join(f"<{int(i)}>" for i in (ids if isinstance(ids, list) else [ids]))

    def convert_ids_to_tokens(self, ids):  # noqa: ANN001, ANN201
        return [f"<{int(i)}>" for i in ids]


def _rows_by_key(g, n_logit: int) -> dict:  # noqa: ANN001
    """``{target key: {source key: weight}}`` over features and logits (circuit-tracer's node order: selected
    features, errors, tokens, logits; ``adjacency[target, source]``)."""
    feats = g.active_features[g.selected_features].tolist()
    fkeys = [f"F{l}:{f}@{p}" for l, p, f in feats]
    logits = [f"L:{int(t.vocab_idx)}" for t in g.logit_targets]
    adj = g.adjacency_matrix
    n_sel = len(fkeys)
    rows = {}
    for ti, tk in list(enumerate(fkeys)) + [(adj.shape[0] - n_logit + i, k) for i, k in enumerate(logits)]:
        r = adj[ti, :n_sel]
        rows[tk] = {fkeys[j]: float(r[j]) for j in torch_nonzero(r)}
    return rows


def torch_nonzero(r) -> list[int]:  # noqa: ANN001
    return r.nonzero().flatten().tolist()


def clt_check(folder: Path) -> None:
    """circuit-tracer's own CrossLayerTranscoder on the tiny model ``feature_gpt2.py --clt-check`` wrote."""
    import torch

    torch.set_num_threads(1)
    from circuit_tracer import attribute
    from circuit_tracer.replacement_model.replacement_model_transformerlens import TransformerLensReplacementModel
    from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    cfg = HookedTransformerConfig(**json.loads((folder / "config.json").read_text()), device="cpu")
    model = TransformerLensReplacementModel(cfg)
    params = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if k in dict(model.named_parameters())}
    model.load_state_dict(params, strict=False)
    model.tokenizer = _Tokenizer(cfg.d_vocab, 0)
    clt = load_clt(str(folder / "clt"), feature_input_hook="hook_resid_mid", feature_output_hook="mlp.hook_out",
                   device=torch.device("cpu"), dtype=torch.float32, lazy_decoder=False)
    model._configure_replacement_model(clt)
    tokens = torch.tensor(json.loads((folder / "tokens.json").read_text()))
    g = attribute(tokens, model, max_feature_nodes=None, verbose=False)
    print(json.dumps({"rows": _rows_by_key(g, len(g.logit_targets)), "active": int(len(g.active_features))}))


def main() -> None:
    if sys.argv[1] == "--clt-check":
        clt_check(Path(sys.argv[2]))
        return
    cache, width, n_tok, cap = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    batch = {"batch_size": int(sys.argv[5])} if len(sys.argv) > 5 else {}  # circuit-tracer's default: 512
    import torch

    torch.set_num_threads(1)
    from circuit_tracer import attribute
    from circuit_tracer.graph import prune_graph
    from circuit_tracer.replacement_model.replacement_model_transformerlens import TransformerLensReplacementModel
    from circuit_tracer.transcoder.activation_functions import JumpReLU
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder, TranscoderSet
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    t_setup = time.perf_counter()
    cfg = HookedTransformerConfig(**json.loads((cache / "config.json").read_text()), device="cpu")
    model = TransformerLensReplacementModel(cfg)
    params = {k: v for k, v in load_file(str(cache / "model.safetensors")).items() if k in dict(model.named_parameters())}
    missing, unexpected = model.load_state_dict(params, strict=False)  # buffers (attention masks) differ by version
    assert not unexpected and not set(missing) & set(dict(model.named_parameters())), (missing, unexpected)
    tcs = {}
    for layer in range(cfg.n_layers):
        t = load_file(str(cache / f"w{width}" / f"layer_{layer}.safetensors"))
        tc = SingleLayerTranscoder(cfg.d_model, width, JumpReLU(t["threshold"]), layer, device=torch.device("cpu"),
                                   dtype=torch.float32)
        tc.load_state_dict({"W_enc": t["W_enc"].T.contiguous(), "W_dec": t["W_dec"], "b_enc": t["b_enc"],
                            "b_dec": t["b_dec"], "activation_function.threshold": t["threshold"]})
        tcs[layer] = tc
    model.tokenizer = _Tokenizer(cfg.d_vocab, cfg.d_vocab - 1)
    model._configure_replacement_model(TranscoderSet(tcs, "ln2.hook_normalized", "mlp.hook_out"))
    tokens = torch.tensor(json.loads((cache / f"tokens_{n_tok}.json").read_text()))
    setup_s = time.perf_counter() - t_setup
    rss_setup = next(int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmRSS:"))
    c0, w0 = time.process_time(), time.perf_counter()
    g = attribute(tokens, model, max_feature_nodes=cap, verbose=False, **batch)
    attr_cpu, attr_wall = time.process_time() - c0, time.perf_counter() - w0
    p0 = time.perf_counter()
    pr = prune_graph(g, 0.8, 0.98)
    prune_s = time.perf_counter() - p0
    adj = g.adjacency_matrix
    n_sel, n_logit = len(g.selected_features), len(g.logit_targets)
    feats = g.active_features[g.selected_features]  # [n_sel, 3]: layer, pos, feature index
    logit_ids = [int(getattr(t, "vocab_idx", getattr(t, "token_id", -1))) for t in g.logit_targets]
    out = {"tool": "circuit-tracer 0.5.0", "width": width, "tokens": n_tok, "cap": cap,
           "batch": batch.get("batch_size", 512), "setup_s": setup_s, "rss_after_setup": rss_setup,
           "attr_cpu_s": attr_cpu, "attr_wall_s": attr_wall, "prune_s": prune_s,
           "active": int(len(g.active_features)), "visited": n_sel, "nodes": int(adj.shape[0]),
           "raw_edges": int((adj != 0).sum()), "kept_nodes": int(pr.node_mask.sum()),
           "kept_edges": int(pr.edge_mask.sum()), "logits": logit_ids,
           "logit_rows": {f"F{int(l)}:{int(f)}@{int(p)}": adj[-n_logit:, i].tolist()
                          for i, (l, p, f) in enumerate(feats.tolist())}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
