"""The frozen replacement model of one prompt, and its exact linear backward pass.

Conventions (stated once):
- One prompt of ``P`` tokens; ``d`` = d_model; ``B`` = a batch of targets (one backward "row" each).
- Replacement: every transcoder's MLP output is ``decode(features) + error``; every SAE's hook is replaced by
  ``decode(features) + error``; MLPs without a transcoder are frozen constants (``mlp`` source nodes); attention
  patterns and all LayerNorm scales are frozen at their clean values. With the errors kept, the replacement
  reproduces the clean logits exactly, and it is *linear* in every source vector (feature decoder rows × activation,
  error vectors, token embeddings, frozen MLP outputs).
- Residual "stations" in forward order: ``pre{l}`` → attention ``l`` → ``mid{l}`` → MLP ``l`` → ``post{l}`` ... →
  ``final``. An SAE at a station cuts the residual there (upstream signal reaches downstream only through its features).
- Targets read a station with a vector ``r`` (residual space, LayerNorm folded in): a transcoder feature reads
  ``mid{l}`` (``r`` = W_enc column through the frozen ln2 normalisation), an SAE feature reads its station before the
  cut, a logit reads ``final`` with the centred unembedding column ``W_U[:, y] - mean_j W_U[:, j]``.
- Source order (the columns of every attribution row): features (by dictionary, pos, index), errors (by dictionary,
  pos), MLP constants (by layer, pos), embeddings (by pos).
- Cross-layer transcoders (``Dictionary.W_dec_later``): a feature of the transcoder at layer ``l`` is one source whose
  vector sits at several sites, ``a · W_dec`` at MLP ``l`` and ``a · W_dec_later[:, j - 1]`` at MLP ``l + j``; the
  replacement MLP output at ``l'`` is the sum of every decoder into ``l'`` plus ``b_dec`` and the error of the
  transcoder at ``l'`` (the error absorbs what the sum misses), so the model stays exact and linear in the sources.
- Conventions, to reproduce circuit-tracer (defaults off): ``zero_first_pos`` makes position 0's features, errors and
  frozen MLPs constants instead of nodes (circuit-tracer's ``zero_bos``); ``token_vectors="embed"`` makes a token node
  ``W_E[tok]`` (the positional embedding becomes a constant) instead of ``W_E[tok] + W_pos[pos]``. Edges stay exact
  for the remaining sources; rows then no longer sum to the target's value (the constants are not nodes).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from circuitdb.attribution.active_rows import ActiveRows, Sources, check_tokens, compute_dtype, model_device
from circuitdb.dictionaries.base import Dictionary, parse_hook
from circuitdb.errors import AttributionError, ConfigError, one_of

TOKEN_VECTORS = ("embed+pos", "embed")
_SAE_STATION = {"hook_resid_pre": "pre", "hook_resid_mid": "mid", "hook_resid_post": "post"}
NORMS = (None, "LN", "LNPre", "RMS", "RMSPre")



def _first(scale: Tensor | None, p: int) -> Tensor | None:
    """A per-position normalisation scale ``[P, 1]`` cut to the first ``p`` positions (None stays None)."""
    return None if scale is None else scale[:p]


class ReplacementModel:
    """The frozen replacement of ``model`` on one prompt (see module docstring). Build with :meth:`build`."""

    def __init__(self) -> None:  # use build()
        self.model = None

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model, tokens, dicts: list[Dictionary],  # noqa: ANN001
              dtype: torch.dtype | None = None, device: "torch.device | str | None" = None, *,
              zero_first_pos: bool = False, token_vectors: str = "embed+pos") -> "ReplacementModel":
        """``zero_first_pos`` / ``token_vectors="embed"``: circuit-tracer's conventions (see the module docstring)."""
        self = cls()
        if token_vectors not in TOKEN_VECTORS:
            raise ConfigError(one_of(token_vectors, TOKEN_VECTORS, "token_vectors"))
        self.first = 1 if zero_first_pos else 0
        cfg = model.cfg
        if cfg.normalization_type not in NORMS:
            raise ConfigError(f"normalization_type {cfg.normalization_type!r} is not supported; valid: {NORMS}")
        if getattr(cfg, "parallel_attn_mlp", False):
            raise ConfigError("models with parallel attention and MLP are not supported by the feature engine")
        dtype = dtype or cfg.dtype
        device = torch.device(device) if device is not None else model_device(model)
        if cfg.dtype != dtype or model_device(model) != device:
            model = copy.deepcopy(model)
            model.to(dtype, print_details=False)
            model.to(device, print_details=False)
        self.model, self.cfg = model, model.cfg
        self.model_dtype = dtype
        self.dtype = compute_dtype(dtype)  # the linear backward: float32 for half-precision models
        self.tokens = check_tokens(model, tokens)
        self.dicts = [d.to(dtype=dtype, device=device) for d in dicts]
        L, P = cfg.n_layers, len(self.tokens)
        self.P, self.L, self.norm = P, L, cfg.normalization_type
        with torch.no_grad():
            logits, cache = model.run_with_cache(self.tokens[None].to(device))
        for name, val in [("logits", logits), *cache.items()]:
            if torch.isnan(val).any() or (name != "logits" and not name.endswith("hook_attn_scores")
                                           and torch.isinf(val).any()):
                raise AttributionError(f"non-finite (NaN/inf) activations at {name!r} on this prompt; the model or its "
                                       "weights are broken")
        self.logits = logits[0]
        self.device = self.logits.device
        c = self._c
        self.patterns = [c(cache[f"blocks.{l}.attn.hook_pattern"][0]) for l in range(L)]
        scale = (lambda h: c(cache[h][0].reshape(P, 1))) if self.norm else (lambda h: None)
        self.ln1 = [scale(f"blocks.{l}.ln1.hook_scale") for l in range(L)]
        self.ln2 = [None if cfg.attn_only else scale(f"blocks.{l}.ln2.hook_scale") for l in range(L)]
        self.lnf = scale("ln_final.hook_scale")
        blocks = model.blocks
        self.W_O = [c(blocks[l].attn.W_O.detach()) for l in range(L)]  # [h e d]
        self.W_V = [c(blocks[l].attn.W_V.detach()) for l in range(L)]  # [h d e]
        self.w1 = [c(getattr(blocks[l].ln1, "w", None)) for l in range(L)]
        self.wf = c(getattr(getattr(model, "ln_final", None), "w", None))
        W_U = c(model.W_U.detach())
        self.W_U_centred = W_U - W_U.mean(1, keepdim=True)
        self.embed = c(cache["blocks.0.hook_resid_pre" if token_vectors == "embed+pos" else "hook_embed"][0])
        # dictionaries: activations, sites, then errors (a cross-layer decoder into layer l' is part of l''s output)
        self.acts, self.errors, self.dict_site, self.dict_station, self.dict_sites = [], [], [], [], []
        self.transcoded: dict[int, int] = {}
        self.sae_at: dict[str, int] = {}
        xs = []
        for i, d in enumerate(self.dicts):
            layer, suffix = parse_hook(d.hook_in)
            x = cache[d.hook_in][0].to(d.dtype)  # TL computes LayerNorm hooks of half models in float32
            xs.append(x)
            self.acts.append(d.encode(x))
            if d.kind == "transcoder":
                self.transcoded[layer] = i
                self.dict_site.append(("mlp", layer))
                self.dict_station.append(f"mid{layer}")
                self.dict_sites.append([("mlp", layer + j) for j in range(1 + d.n_later)])
            else:
                st = f"{_SAE_STATION[suffix]}{layer}"
                self.sae_at[st] = i
                self.dict_site.append(("sae", st))
                self.dict_station.append(st)
                self.dict_sites.append([("sae", st)])
        self.cross_into: dict[int, list[tuple[int, int]]] = {}  # layer l' -> [(dictionary, j)] decoding into l'
        for i, d in enumerate(self.dicts):
            for j in range(1, d.n_later + 1):
                self.cross_into.setdefault(d.layer + j, []).append((i, j))
        for i, (d, x, a) in enumerate(zip(self.dicts, xs, self.acts)):
            out = d.decode(a) + d.skip(x) + self.cross_decoded(self.acts, d)  # a skip path stays live
            self.errors.append(c(cache[d.hook_out][0] - out))
        self.skip_at = {l: i for l, i in self.transcoded.items() if self.dicts[i].W_skip is not None}
        self.W_skip = {l: c(self.dicts[i].W_skip) for l, i in self.skip_at.items()}
        self.mlp_layers = [] if cfg.attn_only else [l for l in range(L) if l not in self.transcoded]
        self.mlp_out = {l: c(cache[f"blocks.{l}.hook_mlp_out"][0]) for l in self.mlp_layers}
        self.steps: list[tuple[str, object]] = []
        for l in range(L):
            self.steps += [("station", f"pre{l}"), ("attn", l)]
            if not cfg.attn_only:
                self.steps += [("station", f"mid{l}"), ("mlp", l)]
            self.steps.append(("station", f"post{l}"))
        self.steps.append(("station", "final"))
        self.sources = self._sources()
        return self

    def cross_decoded(self, acts: list[Tensor], d: Dictionary) -> Tensor | float:
        """What the cross-layer decoders of the earlier transcoders write into ``d``'s output (0 without any)."""
        if d.kind != "transcoder":
            return 0.0
        return sum((acts[k] @ self.dicts[k].decoder(j) for k, j in self.cross_into.get(d.layer, [])), 0.0)

    def _c(self, t: "Tensor | None") -> "Tensor | None":
        """Cast to the compute dtype (frozen values of a half-precision model are used in float32)."""
        return None if t is None else t.to(self.dtype)

    def _sources(self) -> Sources:
        cols: dict[str, list] = {k: [] for k in ("kind", "layer", "pos", "feature", "dictionary", "activation")}

        def add(kind, layer, pos, feat, di, act):  # noqa: ANN001
            n = len(pos)
            for k, v in zip(cols, (np.full(n, kind, object), np.full(n, layer), pos, feat, np.full(n, di), act)):
                cols[k].append(np.asarray(v))

        self.feat_index = []  # per dictionary: (pos, feature) LongTensors of its active features
        self.active: list[ActiveRows] = []  # per dictionary: the active features' decoder / encoder rows
        for i, (d, a) in enumerate(zip(self.dicts, self.acts)):
            pos, feat = torch.nonzero(a[self.first:] > 0, as_tuple=True)
            pos = pos + self.first
            self.feat_index.append((pos, feat))
            self.active.append(ActiveRows.gather(d, pos, feat, a[pos, feat], self.P, self.dtype))
            add("feature", d.layer, pos.cpu().numpy(), feat.cpu().numpy(), i, a[pos, feat].double().cpu().numpy())
        ar = np.arange(self.first, self.P)  # zero_first_pos: position 0's errors / MLPs are constants, not nodes
        for i, (d, e) in enumerate(zip(self.dicts, self.errors)):
            add("error", d.layer, ar, np.full(len(ar), -1), i, e[self.first:].norm(dim=-1).double().cpu().numpy())
        for l in self.mlp_layers:
            add("mlp", l, ar, np.full(len(ar), -1), -1, self.mlp_out[l][self.first:].norm(dim=-1).double().cpu().numpy())
        add("embed", -1, np.arange(self.P), np.full(self.P, -1), -1, self.embed.norm(dim=-1).double().cpu().numpy())
        return Sources(*(np.concatenate(cols[k]) if cols[k] else np.zeros(0) for k in cols))

    # ------------------------------------------------------------------------------------------ linear algebra
    def _norm_T(self, g: Float[Tensor, "... P d"], scale, w=None) -> Tensor:  # noqa: ANN001
        """Transpose of the frozen normalisation ``x -> norm(x) (* w)`` applied to a gradient."""
        if self.norm is None:
            return g
        if w is not None and self.norm in ("LN", "RMS"):
            g = g * w
        if self.norm.startswith("LN"):
            g = g - g.mean(-1, keepdim=True)
        return g / scale

    def attn_back(self, l: int, G: Float[Tensor, "B p d"], *, per_head: bool = False) -> Tensor:
        """Gradient through frozen attention layer ``l`` (output → residual input); ``[H, B, p, d]`` if per_head.
        ``G`` may cover only the first ``p ≤ P`` positions (a batch of targets at positions < p: causal attention
        moves gradient only to earlier positions, so the rest stays zero)."""
        p = G.shape[1]
        gz = einsum(G, self.W_O[l], "b q d, h e d -> b q h e")
        gv = einsum(self.patterns[l][:, :p, :p], gz, "h q k, b q h e -> b k h e")
        if per_head:
            gy = einsum(gv, self.W_V[l], "b k h e, h d e -> h b k d")
        else:
            gy = einsum(gv, self.W_V[l], "b k h e, h d e -> b k d")
        return self._norm_T(gy, _first(self.ln1[l], p), self.w1[l])

    def skip_back(self, l: int, G: Float[Tensor, "B P d"]) -> Float[Tensor, "B P d"]:
        """Gradient through the linear skip path of layer ``l``'s skip transcoder (MLP output → ``mid{l}``)."""
        g = G @ self.W_skip[l].T
        _, suffix = parse_hook(self.dicts[self.skip_at[l]].hook_in)
        return self._norm_T(g, _first(self.ln2[l], G.shape[1])) if suffix == "ln2.hook_normalized" and self.norm else g

    def propagate(self, G: Tensor, start: int, inj_top: dict, inj_raw: dict, *, heads: bool = True,
                  record: dict | None = None) -> dict:
        """Run the linear backward from step ``start`` down; returns the gradient at every source site.

        ``inj_top`` / ``inj_raw`` add target read vectors at a station after / before an SAE cut there.
        ``heads=False`` skips attention (the direct residual part); ``record`` then receives the gradient arriving at
        each attention layer (the input of the head decomposition).
        """
        grads: dict = {}
        for kind, key in reversed(self.steps[:start]):
            if kind == "station":
                if key in inj_top:
                    G = G + inj_top[key]
                if key in self.sae_at:
                    grads[("sae", key)] = G
                    G = torch.zeros_like(G)
                if key in inj_raw:
                    G = G + inj_raw[key]
            elif kind == "mlp":
                grads[("mlp", key)] = G
                if key in self.skip_at:
                    G = G + self.skip_back(key, G)
            elif heads:
                G = G + self.attn_back(key, G)
            elif record is not None:
                record[key] = G
        grads[("embed",)] = G
        return grads

    def step_index(self, kind: str, key: object) -> int:
        return self.steps.index((kind, key))

    def source_rows(self, grads: dict) -> Float[Tensor, "B n_sources"]:
        """Attribution of every source to every row: ``source_vector · gradient at the source's site and pos``."""
        p = grads[("embed",)].shape[1]
        if p < self.P:  # a backward over the first p positions only (see rows): the later ones got no gradient
            grads = {k: torch.nn.functional.pad(g, (0, 0, 0, self.P - p)) for k, g in grads.items()}
        zero = torch.zeros_like(grads[("embed",)])
        sites = [*(s for ss in self.dict_sites for s in ss), *(("mlp", l) for l in self.mlp_layers)]
        grads = {site: grads.get(site, zero) for site in sites} | {
            ("embed",): grads[("embed",)]}  # sites above the start of a partial backward get no gradient
        parts = [rows.project([grads[s] for s in ss]) for rows, ss in zip(self.active, self.dict_sites)]
        for e, site in zip(self.errors, self.dict_site):
            parts.append(einsum(grads[site], e, "b p d, p d -> b p")[:, self.first:])
        for l in self.mlp_layers:
            parts.append(einsum(grads[("mlp", l)], self.mlp_out[l], "b p d, p d -> b p")[:, self.first:])
        parts.append(einsum(grads[("embed",)], self.embed, "b p d, p d -> b p"))
        return torch.cat(parts, dim=1)

    # ------------------------------------------------------------------------------------------ targets
    def read_vector(self, kind: str, pos: int, index: int, di: int = -1) -> tuple[str, bool, Float[Tensor, " d"]]:
        """(station, before_cut, r) for a logit (index = token id) or a feature (``di``, index = feature)."""
        if kind == "logit":
            r = self.W_U_centred[:, index]
            return "final", False, self._norm_T(r, None if self.lnf is None else self.lnf[pos], self.wf)
        d = self.dicts[di]
        r = self.active[di].encoder(index)
        if d.kind == "sae":
            return self.dict_station[di], True, r
        layer, suffix = parse_hook(d.hook_in)
        if suffix == "ln2.hook_normalized" and self.norm is not None:
            r = self._norm_T(r, self.ln2[layer][pos])
        return f"mid{layer}", False, r

    def injections(self, targets: list[tuple[str, int, int, int]]) -> tuple[dict, dict, list[tuple[str, int, Tensor]]]:
        """Per-batch injection tensors for targets ``(kind, pos, index, dictionary)``."""
        B = len(targets)
        top: dict = {}
        raw: dict = {}
        reads = []
        for b, (kind, pos, index, di) in enumerate(targets):
            station, before, r = self.read_vector(kind, pos, index, di)
            store = raw if before else top
            if station not in store:
                store[station] = torch.zeros(B, self.P, self.cfg.d_model, dtype=self.dtype, device=self.device)
            store[station][b, pos] += r
            reads.append((station, pos, r))
        return top, raw, reads

    def rows(self, targets: list[tuple[str, int, int, int]]) -> Float[Tensor, "B n_sources"]:
        """Exact attribution rows ``A[target, source]`` for a batch of targets (one backward pass). The backward runs
        over the positions up to the batch's last target only (nothing reaches later ones): batches of early targets
        cost less (the visiting queue sorts each round by position)."""
        top, raw, _ = self.injections(targets)
        p = max(t[1] for t in targets) + 1
        top, raw = ({k: v[:, :p] for k, v in d.items()} for d in (top, raw))
        G = torch.zeros(len(targets), p, self.cfg.d_model, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            return self.source_rows(self.propagate(G, len(self.steps), top, raw))

    # ------------------------------------------------------------------------------------------ verification
    def frozen_forward(self, *, source: "int | list[int] | np.ndarray | None" = None, factor: float = 0.0,
                       zero_head: tuple[int, int] | None = None, extra_hooks: "list | tuple" = ()) -> dict[str, Tensor]:
        """Run the real TransformerLens model as the frozen replacement (hooks: clean patterns and LayerNorm scales,
        MLP outputs = transcoder reconstruction + error or frozen constants, SAE hooks = reconstruction + error).

        ``source`` (a column of :attr:`sources`, or several) has its vector scaled by ``factor``; ``zero_head = (layer, head)``
        zeroes that head's ``z``; ``extra_hooks`` (``[(hook name, fn)]``, e.g. ``intervene.intervention_hooks``) run
        after the frozen ones, so an intervention acts on the frozen model. Returns ``{"logits": [P, vocab],
        <dictionary input hook>: [P, d_in], ...}``.
        """
        acts = [a.clone() for a in self.acts]
        errs = [e.clone() for e in self.errors]
        mlps = {l: v.clone() for l, v in self.mlp_out.items()}
        emb_delta = torch.zeros_like(self.embed)
        s = self.sources
        for j in [] if source is None else np.atleast_1d(source).tolist():
            kind, pos, di = s.kind[j], int(s.pos[j]), int(s.dictionary[j])
            if kind == "feature":
                acts[di][pos, int(s.feature[j])] *= factor
            elif kind == "error":
                errs[di][pos] *= factor
            elif kind == "mlp":
                mlps[int(s.layer[j])][pos] *= factor
            else:
                emb_delta[pos] = (factor - 1) * self.embed[pos]
        rec: dict[str, Tensor] = {}

        def const(v):  # noqa: ANN001
            return lambda t, hook: v.reshape(t.shape).to(t.dtype)

        def record(t, hook):  # noqa: ANN001
            rec[hook.name] = t[0].detach().clone()

        def replace(i):  # noqa: ANN001
            def fn(t, hook):  # noqa: ANN001
                rec[hook.name] = t[0].detach().clone()
                d = self.dicts[i]
                out = d.decode(acts[i]) + self.cross_decoded(acts, d) + errs[i].to(t.dtype)
                if d.W_skip is not None:  # the skip path reads the live input
                    out = out + d.skip(rec[d.hook_in].to(d.dtype))
                return out[None].to(t.dtype)
            return fn

        hooks = [("blocks.0.hook_resid_pre", lambda t, hook: t + emb_delta[None].to(t.dtype))]
        for l in range(self.L):
            hooks.append((f"blocks.{l}.attn.hook_pattern", const(self.patterns[l])))
            if self.norm is not None:
                hooks.append((f"blocks.{l}.ln1.hook_scale", const(self.ln1[l])))
                if not self.cfg.attn_only:
                    hooks.append((f"blocks.{l}.ln2.hook_scale", const(self.ln2[l])))
            if l in mlps:
                hooks.append((f"blocks.{l}.hook_mlp_out", const(mlps[l])))
        if self.norm is not None:
            hooks.append(("ln_final.hook_scale", const(self.lnf)))
        for i, d in enumerate(self.dicts):
            if d.kind == "transcoder":
                hooks += [(d.hook_in, record), (d.hook_out, replace(i))]
            else:
                hooks.append((d.hook_in, replace(i)))
        if zero_head is not None:
            l, h = zero_head

            def zero(t, hook):  # noqa: ANN001
                t = t.clone()
                t[:, :, h] = 0
                return t
            hooks.append((f"blocks.{l}.attn.hook_z", zero))
        with torch.no_grad(), self.model.hooks(fwd_hooks=[*hooks, *extra_hooks]):
            rec["logits"] = self.model(self.tokens[None].to(self.device))[0]
        return rec

    def target_value(self, rec: dict[str, Tensor], target: tuple[str, int, int, int]) -> float:
        """The quantity a target row attributes: centred logit, or the feature's pre-activation."""
        kind, pos, index, di = target
        if kind == "logit":
            lg = rec["logits"][pos]
            return float(lg[index] - lg.mean())
        d = self.dicts[di]
        return float(d.pre_acts(rec[d.hook_in][pos].to(d.dtype))[index])
