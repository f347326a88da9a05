"""The public method API: everything `methods/` (and third-party plugins) may import, and nothing else.

A method is one function ``fn(ctx: MethodContext, *, param=default, ...) -> TransferPlan``
registered with ``@register_method("name")``. Its keyword-only parameters, their annotations and
defaults are its typed, documented parameters (one ``name: help`` line per parameter under a
``Parameters:`` heading in the docstring). The first docstring line is its description. A
parameter's range is declared next to its type, ``alpha: Annotated[float, Range(gt=1)] = 4.0``:
a value outside it fails before any work starts, naming the parameter and the range.

A built-in method (a file in ``methods/``) registers the name of its file, ``-`` written as ``_``
(``methods/my_method.py`` registers "my-method"); a plugin registers any name through the
entry-point group ``harness.methods``. What a method may ask the runner for is ``METHOD_RESOURCES``.

``register_method`` also takes the method's metadata, shown by ``harness methods``: ``citation``
(paper and public code), ``resources`` (the ``METHOD_RESOURCES`` it asks for) and
``deterministic`` (True when the plan does not depend on the seed; the run record's plan
diagnostics carry it, and leaderboards then print no sd for a cell whose seeds agree).
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness.params import Range, signature_params
from harness.registry import methods as method_registry
from harness.util import HarnessError
from harness.vocab import OverlapOptions, find_overlap

__all__ = [
    "METHOD_RESOURCES", "MethodContext", "MissingResourceError", "TransferPlan", "COPIED", "MIXED", "EXPLICIT",
    "build_plan", "register_method", "overlap_pairs", "special_pairs", "random_rows", "mean_bias", "copy_and_random",
    "topk_softmax_rows", "sparsemax", "sparsemax_threshold", "OverlapOptions", "find_overlap", "StaticVectors",
    "train_static_vectors", "tokenizer_signature", "words", "procrustes", "align_vectors", "token_texts",
    "align_to_target", "subword_vectors", "neighbour_mask", "method_metadata", "HarnessError", "Range",
]

# What a method may ask the runner for (``ctx.resource(name)``, or the accessor of the same name).
# The runner and `harness check-method` both provide exactly these; a test holds them to it.
METHOD_RESOURCES = {
    "bridge_vectors": "(target_vecs, source_vecs): bridge-model vectors of every vocabulary entry, L2-normalised",
    "target_text": "list of target-language texts (training text only, never a test collection)",
    "source_text": "list of English texts of the same kind (the source side of static word vectors)",
    "dictionary": "list of (english word, target word) pairs; MissingResourceError where none exists (ko)",
}

if typing.TYPE_CHECKING:  # heavy imports only for type checkers
    import torch


# --------------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------------
class MissingResourceError(RuntimeError):
    """A method asked for a resource this run cannot provide."""


@dataclass
class MethodContext:
    """What a method receives.

    ``source_embeddings`` is E_s (n_source x d) and ``source_bias`` the MLM decoder bias
    (n_source,). Resources that are expensive to build (``METHOD_RESOURCES``) are provided lazily,
    on first call, by the runner.
    """

    source_tokenizer: Any
    target_tokenizer: Any
    source_embeddings: "torch.Tensor"
    source_bias: "torch.Tensor | None" = None
    lang: str = ""
    seed: int = 0
    device: str = "cpu"
    resources: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    def resource(self, name: str, *args: Any) -> Any:
        key = (name, args)
        if key not in self._cache:
            if name not in self.resources:
                have = ", ".join(sorted(self.resources)) or "none"
                raise MissingResourceError(f"this run provides no '{name}' resource (available: {have})")
            self._cache[key] = self.resources[name](*args)
        return self._cache[key]

    def bridge_vectors(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(target_vecs, source_vecs): one row per target token, at most one per source row."""
        target_vecs, source_vecs = self.resource("bridge_vectors")
        if target_vecs.shape[0] != self.n_target:
            raise ValueError(f"bridge vectors cover {target_vecs.shape[0]} target tokens, the tokenizer has {self.n_target}")
        if source_vecs.shape[0] > self.n_source:
            raise ValueError(f"bridge vectors cover {source_vecs.shape[0]} source tokens, E_s has {self.n_source} rows")
        return target_vecs, source_vecs

    def target_text(self) -> list[str]:
        return self.resource("target_text")

    def source_text(self) -> list[str]:
        return self.resource("source_text")

    def dictionary(self) -> list[tuple[str, str]]:
        return self.resource("dictionary")

    @property
    def n_source(self) -> int:
        return int(self.source_embeddings.shape[0])

    @property
    def n_target(self) -> int:
        return len(self.target_tokenizer)

    def generator(self, offset: int = 0) -> "torch.Generator":
        import torch

        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------
COPIED, MIXED, EXPLICIT = "copied", "mixed", "explicit"


@dataclass
class TransferPlan:
    """How to build every vocabulary-indexed tensor of the target model.

    ``mixing`` is a torch sparse CSR tensor (n_target x n_source): row t holds the source rows
    (and weights) that make target token t. ``explicit_ids`` lists target tokens initialised
    directly by ``explicit_rows`` (k x d) with decoder bias ``explicit_bias`` (k,); their
    mixing rows are empty. Every target token is covered exactly once.

    ``decoder_bias`` (n_target,), when set, is the target model's whole decoder bias, replacing
    ``M b_s`` and ``explicit_bias`` (ablations: the stale bias Hugging Face's
    ``resize_token_embeddings`` leaves, or zeros). Embeddings and decoder weights still follow the plan.
    """

    mixing: "torch.Tensor"
    explicit_ids: "torch.Tensor"
    explicit_rows: "torch.Tensor"
    explicit_bias: "torch.Tensor"
    kinds: np.ndarray  # per target token: 0 copied, 1 mixed, 2 explicit
    convex: bool = True  # mixing rows are non-negative and sum to one
    info: dict[str, Any] = field(default_factory=dict)
    decoder_bias: "torch.Tensor | None" = None

    KIND_NAMES = (COPIED, MIXED, EXPLICIT)

    @property
    def n_target(self) -> int:
        return int(self.mixing.shape[0])

    @property
    def n_source(self) -> int:
        return int(self.mixing.shape[1])

    def diagnostics(self) -> dict[str, Any]:
        crow = self.mixing.crow_indices()
        support = (crow[1:] - crow[:-1]).numpy()
        mixed = self.kinds == 1
        counts = {name: int((self.kinds == i).sum()) for i, name in enumerate(self.KIND_NAMES)}
        return {
            "n_target": self.n_target,
            "n_source": self.n_source,
            **counts,
            "mean_support_mixed": float(support[mixed].mean()) if mixed.any() else 0.0,
            "max_support": int(support.max()) if len(support) else 0,
            **self.info,
        }

    def sources_of(self, target_id: int) -> list[tuple[int, float]]:
        """(source id, weight) pairs making ``target_id``, heaviest first."""
        crow, col, val = self.mixing.crow_indices(), self.mixing.col_indices(), self.mixing.values()
        lo, hi = int(crow[target_id]), int(crow[target_id + 1])
        pairs = [(int(c), float(v)) for c, v in zip(col[lo:hi], val[lo:hi])]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))

    def validate(self, d: int | None = None, atol: float = 1e-4, n_source: int | None = None) -> list[str]:
        """Problems with this plan (empty list = valid); ``n_source``: the source vocabulary size, which
        the mixing matrix's columns must match."""
        import torch

        problems = []
        n_t = self.n_target
        crow = self.mixing.crow_indices()
        cols = self.mixing.col_indices()
        if tuple(self.mixing.shape)[0] != n_t:
            problems.append(f"mixing has {self.mixing.shape[0]} rows for {n_t} target tokens")
        if n_source is not None and self.mixing.shape[1] != n_source:
            problems.append(f"mixing has {self.mixing.shape[1]} columns for {n_source} source tokens")
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= self.mixing.shape[1]):
            problems.append(f"mixing source ids out of range: {int(cols.min())}..{int(cols.max())} "
                            f"for {self.mixing.shape[1]} source tokens")
            return problems
        has_row = (crow[1:] - crow[:-1]) > 0
        explicit = torch.zeros(n_t, dtype=torch.bool)
        if len(self.explicit_ids):
            if int(self.explicit_ids.max()) >= n_t or int(self.explicit_ids.min()) < 0:
                problems.append("explicit_ids out of range")
                return problems
            explicit[self.explicit_ids] = True
        if len(torch.unique(self.explicit_ids)) != len(self.explicit_ids):
            problems.append("explicit_ids contains duplicates")
        if bool((has_row & explicit).any()):
            problems.append(f"{int((has_row & explicit).sum())} tokens have both a mixing row and an explicit row")
        if bool((~has_row & ~explicit).any()):
            problems.append(f"{int((~has_row & ~explicit).sum())} tokens have neither a mixing row nor an explicit row")
        if len(self.kinds) != n_t:
            problems.append(f"kinds has {len(self.kinds)} entries for {n_t} target tokens")
        values = self.mixing.values()
        if not bool(torch.isfinite(values).all()):
            problems.append("mixing weights are not all finite")
        if not bool(torch.isfinite(self.explicit_rows).all()) or not bool(torch.isfinite(self.explicit_bias).all()):
            problems.append("explicit rows or biases are not all finite")
        if self.explicit_rows.shape[0] != len(self.explicit_ids) or self.explicit_bias.shape[0] != len(self.explicit_ids):
            problems.append("explicit_rows / explicit_bias do not match explicit_ids")
        if self.decoder_bias is not None and (tuple(self.decoder_bias.shape) != (n_t,)
                                              or not bool(torch.isfinite(self.decoder_bias).all())):
            problems.append(f"decoder_bias must be {n_t} finite values, got shape {tuple(self.decoder_bias.shape)}")
        if d is not None and len(self.explicit_ids) and self.explicit_rows.shape[1] != d:
            problems.append(f"explicit rows have dim {self.explicit_rows.shape[1]}, model has {d}")
        if self.convex and values.numel():
            sums = torch.zeros(n_t, dtype=values.dtype).index_add_(0, _row_ids(crow), values)
            if bool((values < -atol).any()):
                problems.append("a convex plan has negative weights")
            bad = has_row & ((sums - 1).abs() > atol)
            if bool(bad.any()):
                problems.append(f"{int(bad.sum())} mixing rows do not sum to 1")
        return problems


def _row_ids(crow: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.repeat_interleave(torch.arange(len(crow) - 1), crow[1:] - crow[:-1])


def build_plan(
    n_target: int,
    n_source: int,
    rows: dict[int, tuple[list[int], list[float]]] | None = None,
    *,
    mixed_csr: "torch.Tensor | None" = None,
    copied: dict[int, int] | None = None,
    explicit: dict[int, tuple["torch.Tensor", float]] | None = None,
    convex: bool = True,
    info: dict[str, Any] | None = None,
    decoder_bias: "torch.Tensor | None" = None,
) -> TransferPlan:
    """Assemble a plan from its parts.

    ``copied`` maps target id -> source id (a one-hot row). ``mixed_csr`` is a sparse CSR
    (n_target x n_source) whose non-empty rows are mixed tokens (rows of copied/explicit tokens
    must be empty there). ``rows`` gives mixed rows as (source ids, weights) lists instead.
    ``explicit`` maps target id -> (vector, bias). ``decoder_bias``: see ``TransferPlan``.
    """
    import torch

    copied = copied or {}
    explicit = explicit or {}
    kinds = np.full(n_target, -1, dtype=np.int8)
    coo_r, coo_c, coo_v = [], [], []
    for t, s in copied.items():
        coo_r.append(t), coo_c.append(s), coo_v.append(1.0)
        kinds[t] = 0
    for t, (cols, weights) in (rows or {}).items():
        coo_r.extend([t] * len(cols)), coo_c.extend(cols), coo_v.extend(weights)
        kinds[t] = 1
    r = torch.tensor(coo_r, dtype=torch.long)
    c = torch.tensor(coo_c, dtype=torch.long)
    v = torch.tensor(coo_v, dtype=torch.float32)
    if mixed_csr is not None:
        m = mixed_csr.to_sparse_coo().coalesce()
        mr, mc = m.indices()
        mixed_rows = torch.unique(mr).numpy()
        if (kinds[mixed_rows] != -1).any():
            raise ValueError("mixed_csr has rows for copied tokens")
        kinds[mixed_rows] = 1
        r, c, v = torch.cat([r, mr]), torch.cat([c, mc]), torch.cat([v, m.values().float()])
    mixing = torch.sparse_coo_tensor(torch.stack([r, c]), v, (n_target, n_source)).coalesce().to_sparse_csr()
    ids = sorted(explicit)
    kinds[ids] = 2
    if explicit:
        explicit_rows = torch.stack([explicit[t][0].float() for t in ids])
        explicit_bias = torch.tensor([float(explicit[t][1]) for t in ids], dtype=torch.float32)
    else:
        explicit_rows = torch.zeros(0, 0)
        explicit_bias = torch.zeros(0)
    return TransferPlan(
        mixing=mixing,
        explicit_ids=torch.tensor(ids, dtype=torch.long),
        explicit_rows=explicit_rows,
        explicit_bias=explicit_bias,
        kinds=kinds,
        convex=convex,
        info=dict(info or {}),
        decoder_bias=None if decoder_bias is None else decoder_bias.detach().float().cpu(),
    )


# --------------------------------------------------------------------------------------------
# Small helpers shared by methods
# --------------------------------------------------------------------------------------------
def overlap_pairs(ctx: MethodContext, match_symbols: bool = True, exact_match_all: bool = True,
                  fuzzy_match_all: bool = True) -> dict[int, int]:
    """Target id -> source id of overlapping tokens (cached per option set on the context)."""
    options = OverlapOptions(match_symbols, exact_match_all, fuzzy_match_all)
    key = ("overlap", options)
    if key not in ctx._cache:
        ctx._cache[key] = find_overlap(ctx.source_tokenizer, ctx.target_tokenizer, options)
    return ctx._cache[key].pairs


def special_pairs(ctx: MethodContext) -> dict[int, int]:
    """Target id -> source id of the special tokens only, matched by role ([CLS] <-> <s>, ...)."""
    key = ("special-overlap",)
    if key not in ctx._cache:
        overlap = find_overlap(ctx.source_tokenizer, ctx.target_tokenizer, OverlapOptions(True, False, False))
        ctx._cache[key] = {t: s for t, s in overlap.pairs.items() if overlap.reasons[t].startswith("special:")}
    return ctx._cache[key]


def random_rows(ctx: MethodContext, n: int, *, std_scale: float = 1.0, offset: int = 0) -> "torch.Tensor":
    """``n`` rows drawn from N(mean, std) of the source embeddings per dimension, seeded by ctx.seed."""
    import torch

    e = ctx.source_embeddings.float()
    noise = torch.randn(n, e.shape[1], generator=ctx.generator(offset))
    return e.mean(0) + noise * e.std(0) * std_scale


def mean_bias(ctx: MethodContext) -> float:
    return float(ctx.source_bias.float().mean()) if ctx.source_bias is not None else 0.0


def copy_and_random(ctx: MethodContext, copied: dict[int, int], *, std_scale: float = 1.0) -> TransferPlan:
    """Plan copying ``copied`` tokens and drawing every other row at random (mean decoder bias:
    a random bias would add noise to every score)."""
    rest = [t for t in range(ctx.n_target) if t not in copied]
    rows = random_rows(ctx, len(rest), std_scale=std_scale)
    bias = mean_bias(ctx)
    explicit = {t: (rows[i], bias) for i, t in enumerate(rest)}
    return build_plan(ctx.n_target, ctx.n_source, copied=copied, explicit=explicit)


def topk_softmax_rows(tgt: "torch.Tensor", src: "torch.Tensor", allowed: "torch.Tensor", ids: "torch.Tensor",
                      shape: tuple[int, int], k: int, temperature: float,
                      block: int = 1024) -> tuple["torch.Tensor", float]:
    """CSR rows ``ids``: softmax(cos / temperature) over the k nearest ``allowed`` source rows
    (WECHSEL's rule; ``tgt``/``src`` unit rows); also the mean cosine of the nearest neighbour."""
    import torch

    mask = torch.where(allowed, 0.0, float("-inf"))
    k = min(k, int(allowed.sum()))
    rows, cols, vals, top1 = [], [], [], []
    for start in range(0, len(tgt), block):
        sims, idx = (tgt[start:start + block] @ src.T + mask).topk(k, dim=1)
        rows.append(ids[start:start + block].repeat_interleave(k)), cols.append(idx.flatten())
        vals.append(torch.softmax(sims / temperature, dim=1).flatten()), top1.append(sims[:, 0])
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    csr = torch.sparse_coo_tensor(index, torch.cat(vals), shape).coalesce().to_sparse_csr()
    return csr, float(torch.cat(top1).mean())


def sparsemax_threshold(sorted_desc: "torch.Tensor", dim: int = -1) -> "torch.Tensor":
    """Exact sparsemax threshold tau of rows already sorted in decreasing order (keeps ``dim``, size 1)."""
    import torch

    ranks = torch.arange(1, sorted_desc.shape[dim] + 1, device=sorted_desc.device, dtype=sorted_desc.dtype)
    shape = [1] * sorted_desc.dim()
    shape[dim] = -1
    cumsum = sorted_desc.cumsum(dim)
    support = ((1 + ranks.view(shape) * sorted_desc) > cumsum).sum(dim, keepdim=True)  # the support is a prefix
    return (cumsum.gather(dim, support - 1) - 1) / support


def sparsemax(z: "torch.Tensor", dim: int = -1) -> "torch.Tensor":
    """Sparsemax (Martins & Astudillo 2016), exact and sort-based: the Euclidean projection of
    each row of ``z`` onto the probability simplex, ``[z - tau]_+`` with sum 1."""
    tau = sparsemax_threshold(z.sort(dim=dim, descending=True).values, dim)
    return (z - tau).clamp_min(0)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
_METADATA = "__harness_method__"  # the attribute where register_method keeps a function's metadata
_NO_METADATA = {"citation": "", "resources": None, "deterministic": None, "omit_when_default": ()}


def method_metadata(fn: Callable[..., Any]) -> dict[str, Any]:
    """What ``register_method`` recorded about ``fn`` (citation, resources, deterministic,
    omit_when_default); for a function registered without it (a plain entry point) resources and
    deterministic are None: not declared."""
    return dict(getattr(fn, _METADATA, _NO_METADATA))


def register_method(
    name: str,
    *,
    citation: str = "",
    resources: tuple[str, ...] | list[str] | None = None,
    deterministic: bool | None = None,
    omit_when_default: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., TransferPlan]], Callable[..., TransferPlan]]:
    """Decorator registering an initialization method under ``name`` (its parameters are checked now).

    citation: the paper and its public code, shown by ``harness methods``.
    resources: the ``METHOD_RESOURCES`` the method asks for (``harness check-method`` holds it to
        that); None: not declared.
    deterministic: True if the plan never depends on the seed, False if it draws at random
        (a plan may refine it per run in ``plan.info["deterministic"]``), None: not declared.
    omit_when_default: parameters added after run records existed: left out of a run's resolved
        parameters (and so of its run id) while at their default, so those records keep their ids.
    """
    unknown = sorted(set(resources or ()) - set(METHOD_RESOURCES))
    if unknown:
        raise ValueError(f"method '{name}': unknown resources {unknown}; known: {', '.join(METHOD_RESOURCES)}")

    def decorator(fn: Callable[..., TransferPlan]) -> Callable[..., TransferPlan]:
        params = {p.name for p in signature_params(f"method '{name}'", fn)}  # a parameter without a default fails now
        if set(omit_when_default) - params:
            raise ValueError(f"method '{name}': omit_when_default names no parameter: {sorted(set(omit_when_default) - params)}")
        setattr(fn, _METADATA, {"citation": citation, "resources": None if resources is None else tuple(resources),
                                "deterministic": deterministic, "omit_when_default": tuple(omit_when_default)})
        # functions outside the built-in package register as "local" unless an entry point names them
        origin = "builtin" if fn.__module__.split(".")[0] == "methods" else f"local:{fn.__module__}"
        method_registry.add(name, fn, origin=origin, module=fn.__module__)
        return fn

    return decorator


# Static-vector helpers for methods (FOCUS, WECHSEL, RAMEN); harness.static_vectors imports fasttext lazily.
from harness.static_vectors import (  # noqa: E402
    StaticVectors,
    align_vectors,
    procrustes,
    token_texts,
    tokenizer_signature,
    train_static_vectors,
    words,
)


_UNUSED_SLOT = re.compile(r"^(\[unused\d+\]|<unused\d+>)$")


def subword_vectors(vectors: StaticVectors, texts: list[str], w: np.ndarray | None = None) -> "torch.Tensor":
    """One L2-normalised float32 row per text: its static vector (times ``w`` when given, e.g. a
    Procrustes map); all-zero rows (no known n-gram) stay zero."""
    import torch

    m = np.stack([vectors.vector(t) for t in texts]) if texts else np.zeros((0, vectors.dim), np.float32)
    if w is not None:
        m = m @ w
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def neighbour_mask(tokenizer: Any, n: int) -> "torch.Tensor":
    """Ids 0..n-1 that may serve as mixing neighbours: not special tokens, not ``[unusedN]`` slots."""
    import torch

    excluded = set(getattr(tokenizer, "all_special_ids", [])) | {
        i for i, tok in enumerate(tokenizer.convert_ids_to_tokens(list(range(n)))) if tok is None or _UNUSED_SLOT.match(tok)}
    return ~torch.isin(torch.arange(n), torch.tensor(sorted(excluded), dtype=torch.long))


def align_to_target(ctx: MethodContext, src: StaticVectors, tgt: StaticVectors, *, lowercase: bool = True,
                    min_pairs: int = 50, require_dictionary: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Procrustes map from source to target word-vector space on ``ctx.dictionary()`` (identical strings
    where no dictionary exists or it has fewer than ``min_pairs`` usable pairs); see ``align_vectors``."""
    try:
        entries, reason = list(ctx.dictionary()), ""
    except (MissingResourceError, HarnessError) as err:  # e.g. no en-ko dictionary exists
        if require_dictionary:
            raise
        entries, reason = None, str(err)
    return align_vectors(src, tgt, entries, reason=reason, lowercase=lowercase, min_pairs=min_pairs,
                         require_dictionary=require_dictionary)
