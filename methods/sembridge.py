"""sembridge: copy overlapping tokens; every other token is an alpha-entmax mixture of ALL source rows.

SemBridge (arXiv 2605.26002) weights source token j for a new target token t by
``alpha-entmax(cos(B(t), B(j)))`` over the whole source vocabulary (B = bridge encoder). The
authors run one ``entmax.entmax_bisect`` per target token over a full cosine row. ``bridge_weights``
returns the same weights much faster and still exactly:

* cosine scores for a block of target rows come from one matrix product;
* alpha-entmax gives zero weight to every score z with ``(alpha-1) z <= tau``, so the threshold tau
  solved on the k largest scores is the threshold of the full row whenever the (k+1)-th score is
  at or below it. This is checked per row; rows that fail are solved again with twice the k,
  up to the full row, so the result never depends on k.

* for alpha > 2 the candidates that can reach the threshold are rescored in float64 from the raw
  vectors (a gather and a small dot product each), so thresholds and weights are those of the
  authors' computation: their ``fastdist`` cosines are float64, and so is their ``entmax_bisect``.
  The float32 product then only selects candidates: a float32 cosine is within
  ``_float32_margin(d)`` of the float64 one, so x and tau move by at most eps = margin (alpha-1);
  entries more than 2 eps below the float32 threshold keep weight 0 and need no rescoring, and the
  exactness check adds the margin to the (k+1)-th score. Rows whose support is a sizeable part of
  the vocabulary are solved on whole float64 rows from one float64 product.

Entmax convention (entmax 1.3, ``entmax_bisect``): ``p_j = [(alpha-1) z_j - tau]_+ ^ (1/(alpha-1))``
with tau such that ``sum_j p_j = 1``; the package then divides by the sum, as we do. Thresholds
are solved in float64, so rows match a float64 per-token ``entmax_bisect`` on float64 cosines to
~1e-7 at every alpha (tests/test_sembridge.py checks <= 1e-5 on real pocket bridge vectors).
Float32 scores are enough for alpha <= 2 (the weights move by about as much as the scores, ~1e-7,
so no rescoring there) but not above: an entry just above tau gets ``(x - tau)^(1/(alpha-1))``,
which amplifies the rounding of a float32 cosine (on 400 rows of the Korean pocket vocabulary,
weights from float32 cosines were off by up to 1.8e-5 at alpha 2.5, 1.5e-4 at alpha 4 and 1.9e-3
at alpha 8; rescored, <= 3e-8).

Ablations (parameters; defaults are the harness's SemBridge): ``bias`` (remap with the mixing
weights, or leave it stale as ``resize_token_embeddings`` does in the authors' code, or zero),
``copy_overlap`` and each overlap test, ``alpha``.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Iterator, Literal

import numpy as np
import torch

from harness.api import (
    MethodContext,
    Range,
    TransferPlan,
    build_plan,
    overlap_pairs,
    register_method,
    sparsemax_threshold,
    special_pairs,
)

# 60 halvings of a bracket no wider than 1 reach float64 resolution for thresholds of any size
# that cosine scores produce, so the bisection result is the exact threshold up to rounding.
_BISECT_ITERS = 60
# The float32 threshold only decides which candidates are recomputed in float64: a lower bound
# within 2^-24 of it is enough (the lower bracket end never drops a candidate it should keep).
_ROUGH_ITERS = 24
# Typical supports are tiny (alpha 4: ~3 entries), so first solve on the 8 best scores of the
# fetched top-k and only widen rows that need it: most rows never pay for k_init-wide solves.
# When nearly every row of the previous block was done by that first solve, a block fetches only
# the 9 scores it needs (a narrower top-k is cheaper) and fetches k_init for the rows that fail.
_FIRST_SOLVE = 8
_NARROW_WHEN = 0.9


# --------------------------------------------------------------------------------------------
# Threshold solvers (rows of x sorted in decreasing order, x = (alpha-1) * score)
# --------------------------------------------------------------------------------------------
def _bisect_tau(x: torch.Tensor, alpha: float | torch.Tensor, iters: int = _BISECT_ITERS) -> torch.Tensor:
    """Entmax threshold by bisection, the lower bracket end (sum of weights >= 1 there, so it is
    never above the exact threshold, and at most 2^-iters below it)."""
    k = x.shape[1]
    power = 1.0 / (alpha - 1)
    top = x[:, :1]
    lo = top - 1.0  # the best entry alone already has weight 1
    hi = top - (1.0 / k) ** (alpha - 1)  # every entry has weight <= 1/k
    for _ in range(iters):
        mid = (lo + hi) / 2
        heavy = (x - mid).clamp_min(0).pow(power).sum(1, keepdim=True) >= 1
        lo = torch.where(heavy, mid, lo)
        hi = torch.where(heavy, hi, mid)
    return lo


def _entmax_weights(x: torch.Tensor, alpha: float | torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    p = (x - tau).clamp_min(0).pow(1.0 / (alpha - 1))
    return p / p.sum(1, keepdim=True)  # same final normalisation as entmax_bisect


def _solve(x: torch.Tensor, alpha: float | torch.Tensor, iters: int = _BISECT_ITERS) -> torch.Tensor:
    if isinstance(alpha, float) and alpha == 2.0:
        return sparsemax_threshold(x, dim=1)
    return _bisect_tau(x, alpha, iters)


# --------------------------------------------------------------------------------------------
# One block of target rows
# --------------------------------------------------------------------------------------------
class _Entries:
    """Entries (row, col, weight) of the result, appended as rows become exact."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []
        self.cols: list[torch.Tensor] = []
        self.vals: list[torch.Tensor] = []

    def emit(self, rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor) -> None:
        """Complete rows: ``cols``/``weights`` (R x k); zero weights dropped, columns sorted per row."""
        n_cols = torch.iinfo(cols.dtype).max
        cols, order = torch.where(weights > 0, cols, n_cols).sort(dim=1)  # zero weights sort last
        weights = weights.gather(1, order)
        keep = weights > 0
        self.rows.append(rows[:, None].expand_as(cols)[keep].cpu())
        self.cols.append(cols[keep].cpu())
        self.vals.append(weights[keep].float().cpu())


def _float32_margin(d: int) -> float:
    """A bound on |float32 cosine - float64 cosine| for unit vectors of dimension d: normalising each
    side in float32 costs about (d/2 + 2) units of rounding, the dot product d (any summation order)."""
    return (2 * d + 8) * 2.0**-24


_GATHER_ELEMENTS = 1 << 22  # bound on the (rows x k x d) float64 gather of one recompute chunk


class _Source64:
    """Float64 cosines against the raw source vectors, for a few candidates per target row (a
    gather of float64 unit rows and a batched dot product), or over whole rows by one float64
    matrix product once the candidates are a sizeable part of them (alpha 1.5 keeps thousands)."""

    def __init__(self, raw: torch.Tensor) -> None:
        self.unit = raw.double() / raw.double().norm(dim=1, keepdim=True).clamp_min(1e-12)

    def rows(self, t64: torch.Tensor) -> torch.Tensor:
        """Cosines of unit rows ``t64`` (R x d) with every source row (R x n)."""
        return t64 @ self.unit.T

    def fill(self, exact: torch.Tensor, done_to: torch.Tensor, need_to: torch.Tensor, idx: torch.Tensor,
             t64: torch.Tensor) -> None:
        """Float64 scores of candidate positions [done_to[r], need_to[r]) of each row into ``exact``
        (R x k, the columns ``idx``); rows are grouped by that width rounded up to a power of two,
        so the padding costs at most twice the work."""
        width = need_to - done_to
        k, d = exact.shape[1], self.unit.shape[1]
        flat_idx, flat_exact = idx.reshape(-1), exact.view(-1)
        bucket = torch.where(width > 0, torch.ceil(torch.log2(width.clamp_min(1).double())).long(), -1)
        for b in bucket.unique().tolist():
            if b < 0:
                continue
            w = 1 << b
            rows = (bucket == b).nonzero().squeeze(1)
            step = max(1, _GATHER_ELEMENTS // (w * d))
            for lo in range(0, len(rows), step):
                r = rows[lo:lo + step]
                # positions past need_to (up to k - 1) get their own, correct float64 scores too
                lin = (r[:, None] * k + (done_to[r, None] + torch.arange(w, device=r.device)).clamp_max(k - 1)).reshape(-1)
                atoms = self.unit.index_select(0, flat_idx.index_select(0, lin)).view(len(r), w, d)
                flat_exact.index_copy_(0, lin, torch.bmm(atoms, t64.index_select(0, r)[:, :, None]).reshape(-1))


def _block_weights(scores: torch.Tensor, t64: torch.Tensor | None, source: _Source64 | None, scale: torch.Tensor,
                   alpha: float | torch.Tensor, k_init: int, top_k_cap: int | None, margin: float, out: _Entries,
                   stats: dict[str, int], offset: int) -> None:
    """Exact entmax rows of the block (float32 ``scores`` B x n select candidates; their float64
    cosines, from unit rows ``t64``, are the scores; with ``source`` None the float32 scores are),
    x = scale * score per row, into ``out`` as rows offset + i."""
    n = scores.shape[1]
    pending = torch.arange(scores.shape[0], device=scores.device)
    k = min(top_k_cap, n) if top_k_cap else min(_FIRST_SOLVE, k_init, n)
    first_fetch = k + 1 if stats.get("first_solve_done", 0.0) >= _NARROW_WHEN else max(k, k_init) + 1
    vals, idx = scores.topk(k if top_k_cap else min(first_fetch, n), dim=1)
    exact, done_to = vals.double(), torch.zeros(len(pending), dtype=torch.long, device=vals.device)
    grown, first = False, True
    while pending.numel():
        if vals.shape[1] < min(k + 1, n) and not top_k_cap:  # unfinished rows need more scores
            if k > k_init:
                stats["rows_grown"] += 0 if grown else int(pending.numel())  # pending only shrinks
                grown = True
            vals, idx = scores[pending].topk(min(max(k, k_init) + 1, n), dim=1)
            exact, done_to = vals.double(), torch.zeros(len(pending), dtype=torch.long, device=vals.device)
        row_alpha = alpha if isinstance(alpha, float) else alpha[pending]
        row_scale = scale[pending]
        # A float32 score is within `margin` of the float64 cosine, so x moves by at most eps and
        # so does tau: an entry more than 2 eps below the float32 threshold has zero weight under
        # the float64 one, whatever its float64 score. Only the others (a prefix of the candidates,
        # which are in float32 order) are recomputed in float64; the rest keep float32 scores,
        # which stay below the threshold. exact[:, :done_to] holds float64 scores already.
        x32 = vals[:, :k].double() * row_scale
        if source is None:  # float32 scores are precise enough (alpha <= 2): no rescoring
            need_to = done_to
        else:
            need_to = (x32 > _solve(x32, row_alpha, _ROUGH_ITERS) - 2 * margin * row_scale).sum(1)
        dense = int((need_to - done_to).clamp_min(0).sum()) * 8 >= len(pending) * n and not top_k_cap
        if source is None:
            top, cols = vals[:, :k].double(), idx[:, :k]
        elif dense:  # supports of thousands: whole float64 rows by one product, solved in full
            top, cols = source.rows(t64[pending]).sort(dim=1, descending=True)
            k = n
        else:
            source.fill(exact, done_to, need_to, idx, t64[pending])
            done_to = torch.maximum(done_to, need_to)
            top, order = exact[:, :k].sort(dim=1, descending=True)  # the solvers want rows in decreasing order
            cols = idx[:, :k].gather(1, order)
        x = top * row_scale
        tau = _solve(x, row_alpha)
        # exact iff no score outside the k can reach tau: each is at most the (k+1)-th float32 score
        # plus the float32 rounding bound; a full (or capped) row has no next score
        if k >= n or top_k_cap:
            done = torch.ones_like(pending, dtype=torch.bool)
        else:
            done = (vals[:, k, None].double() + margin) * row_scale <= tau
            done = done.squeeze(1)
        if bool(done.any()):
            a_done = row_alpha if isinstance(row_alpha, float) else row_alpha[done]
            out.emit(pending[done] + offset, cols[done], _entmax_weights(x[done], a_done, tau[done]))
            stats["max_k"] = max(stats["max_k"], k)
        if first:
            stats["first_solve_done"], first = float(done.double().mean()), False
        pending, vals, idx, exact, done_to = (pending[~done], vals[~done], idx[~done], exact[~done],
                                              done_to[~done])
        k = min(2 * k, n)


# --------------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------------
def _cosine_into(buf: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """t @ s.T into buf; on CPU numpy's OpenBLAS sgemm is ~1.4x faster than torch's on AMD cores.
    On CUDA TF32 is switched off for the product: the exactness margin assumes float32 rounding."""
    if t.device.type == "cpu":
        np.matmul(t.numpy(), s.numpy().T, out=buf.numpy())
        return buf
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return torch.mm(t, s.T, out=buf)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _alpha_per_row(alpha: float | torch.Tensor, n_target: int, device: torch.device) -> float | torch.Tensor:
    if isinstance(alpha, torch.Tensor) and alpha.numel() > 1:
        if alpha.shape != (n_target,):
            raise ValueError(f"a per-row alpha needs shape ({n_target},), got {tuple(alpha.shape)}")
        if not bool((alpha > 1).all()):
            raise ValueError("every alpha must be > 1")
        return alpha.to(device=device, dtype=torch.float64)[:, None]
    alpha = float(alpha)
    if not alpha > 1:
        raise ValueError(f"alpha must be > 1 (alpha = 1 is softmax), got {alpha}")
    return alpha


@torch.no_grad()
def bridge_weights(
    target_vecs: torch.Tensor,
    source_vecs: torch.Tensor,
    alpha: float | torch.Tensor = 4.0,
    *,
    temperature: float | None = None,
    top_k_cap: int | None = None,
    k_init: int = 64,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
    """Row t = alpha-entmax over source j of cos(target_vecs[t], source_vecs[j]), as sparse CSR.

    Each row equals ``entmax.entmax_bisect(cos_row, alpha)`` on float64 cosines (to ~1e-6), computed
    exactly by top-k pre-selection with a per-row check and k doubling (see the module doc).

    target_vecs (n_target x d), source_vecs (n_source x d): any scale; rows are L2-normalised here.
    alpha: > 1 (2 = sparsemax, solved by the exact sort rule; else float64 bisection), or a tensor
        of shape (n_target,) giving each target row its own alpha.
    temperature: if set, scores are divided by it before entmax (not in SemBridge; off by default).
    top_k_cap: if set, entmax runs over each row's top_k_cap scores only. NOT exact: the weights
        are renormalised over the cap, so rows whose support is larger than the cap change.
    k_init: how many scores per row the first top-k fetches; only affects speed.
    batch_size: target rows per block; memory is about batch_size x n_source float32 scores (twice
        that on the CPU, where two blocks are in flight).
    device: where to compute ("cpu", "cuda", ...); defaults to target_vecs' device.
    return_stats: also return {"rows", "nnz", "mean_support", "rows_grown", "max_k"}, where
        rows_grown counts rows that needed more than k_init scores.

    Returns a float32 sparse CSR tensor on the CPU with sorted column indices; rows sum to 1.
    A zero bridge vector scores 0 against everything, so (as in the authors' loop) its row is
    uniform over all sources: a dense row, found after k has doubled up to n_source.
    """
    _check_args(target_vecs, source_vecs, temperature, top_k_cap)
    device = torch.device(device) if device is not None else target_vecs.device
    n_t, n_s = target_vecs.shape[0], source_vecs.shape[0]
    a = _alpha_per_row(alpha, n_t, device)
    scale = (a if isinstance(a, torch.Tensor) else torch.full((n_t, 1), a, dtype=torch.float64, device=device)) - 1
    scale = scale / (temperature or 1.0)
    # float32 rounding of a cosine (~1e-7) moves an entmax weight by about as much for alpha <= 2,
    # but (x - tau)^(1/(alpha-1)) amplifies it near the threshold for alpha > 2: rescore in float64 there
    rescore = bool((a > 2).any()) if isinstance(a, torch.Tensor) else a > 2
    source64 = _Source64(source_vecs.to(device)) if rescore else None  # float64 cosines use the raw vectors
    source = torch.nn.functional.normalize(source_vecs.to(device, torch.float32), dim=1).contiguous()
    margin = _float32_margin(source.shape[1]) if rescore else 0.0
    out, stats = _Entries(), {"rows_grown": 0, "max_k": 0, "first_solve_done": 0.0}
    for lo, hi, scores, t64 in _scored_blocks(target_vecs, source, batch_size, device, rescore):
        row_alpha = a if isinstance(a, float) else a[lo:hi]
        _block_weights(scores, t64, source64, scale[lo:hi], row_alpha, k_init, top_k_cap, margin, out, stats, lo)
    csr = _to_csr(out, n_t, n_s)
    if not return_stats:
        return csr
    nnz = int(csr.values().numel())
    stats.pop("first_solve_done")
    return csr, {"rows": n_t, "nnz": nnz, "mean_support": nnz / max(n_t, 1), **stats}


def _scored_blocks(target_vecs: torch.Tensor, source: torch.Tensor, batch_size: int, device: torch.device,
                   rescore: bool) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor | None]]:
    """(lo, hi, float32 cosines of target rows lo:hi with every source row, their float64 unit rows or None).

    On the CPU the next block's matrix product runs on a second thread while the caller selects and
    solves the current one (the product is compute-bound, top-k and the solves are memory-bound:
    together ~1.35x faster on 2 cores). Two score buffers alternate, each reused, so no block page-faults.
    """
    n_t, n_s = target_vecs.shape[0], source.shape[0]
    blocks = [(lo, min(lo + batch_size, n_t)) for lo in range(0, n_t, batch_size)]
    pipelined = device.type == "cpu" and len(blocks) > 1  # a GPU product is asynchronous already
    buffers = [torch.empty(min(batch_size, n_t), n_s, device=device) for _ in range(2 if pipelined else 1)]

    def product(i: int) -> tuple[int, int, torch.Tensor, torch.Tensor | None]:
        lo, hi = blocks[i]
        raw = target_vecs[lo:hi].to(device)
        t = torch.nn.functional.normalize(raw.to(torch.float32), dim=1).contiguous()
        t64 = torch.nn.functional.normalize(raw.double(), dim=1) if rescore else None
        return lo, hi, _cosine_into(buffers[i % len(buffers)][: hi - lo], t, source), t64

    if not pipelined:
        yield from (product(i) for i in range(len(blocks)))
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(product, 0)
        for i in range(len(blocks)):
            block = pending.result()
            if i + 1 < len(blocks):  # buffer (i + 1) % 2 was consumed by block i - 1
                pending = pool.submit(product, i + 1)
            yield block


def _check_args(target_vecs: torch.Tensor, source_vecs: torch.Tensor, temperature: float | None,
                top_k_cap: int | None) -> None:
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k_cap is not None and top_k_cap < 1:
        raise ValueError(f"top_k_cap must be >= 1, got {top_k_cap}")
    if target_vecs.shape[1:] != source_vecs.shape[1:] or target_vecs.dim() != 2:
        raise ValueError(f"need (n, d) vectors of one d, got {tuple(target_vecs.shape)} and {tuple(source_vecs.shape)}")
    # one reduction instead of an element-wise test: any NaN/inf makes the sum non-finite
    if not (bool(torch.isfinite(target_vecs.sum())) and bool(torch.isfinite(source_vecs.sum()))):
        raise ValueError("bridge vectors contain NaN or infinite values")


def _to_csr(entries: _Entries, n_rows: int, n_cols: int) -> torch.Tensor:
    """CSR from entries whose rows are each contiguous and column-sorted, in any row order.

    Each entry goes to crow[row] + its rank within the row: a scatter, no global sort."""
    rows = torch.cat(entries.rows) if entries.rows else torch.zeros(0, dtype=torch.long)
    cols = torch.cat(entries.cols) if entries.cols else torch.zeros(0, dtype=torch.long)
    vals = torch.cat(entries.vals) if entries.vals else torch.zeros(0)
    crow = torch.zeros(n_rows + 1, dtype=torch.long)
    crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    at = torch.arange(len(rows))
    first = torch.full((n_rows,), len(rows), dtype=torch.long).scatter_reduce_(0, rows, at, "amin")
    pos = crow[rows] + at - first[rows]
    return torch.sparse_csr_tensor(crow, torch.empty_like(cols).index_put_((pos,), cols),
                                   torch.empty_like(vals).index_put_((pos,), vals), (n_rows, n_cols))


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------
def _spread_rows(weights: torch.Tensor, row_ids: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """Place the rows of CSR ``weights`` at ``row_ids`` (ascending) of an n_rows x n_cols CSR."""
    counts = torch.zeros(n_rows, dtype=torch.long)
    crow = weights.crow_indices()
    counts[row_ids] = crow[1:] - crow[:-1]
    full_crow = torch.zeros(n_rows + 1, dtype=torch.long)
    full_crow[1:] = counts.cumsum(0)
    return torch.sparse_csr_tensor(full_crow, weights.col_indices(), weights.values(), (n_rows, n_cols))


def ablated_bias(ctx: MethodContext, bias: str) -> torch.Tensor | None:
    """The whole target decoder bias for the ``bias`` ablation (None: remap it with the plan).

    stale: what the authors' flow leaves after ``resize_token_embeddings``: target id i keeps the
    source bias of id i, zero beyond the source vocabulary (and the tail cut off when it is smaller).
    """
    if bias == "remap" or ctx.source_bias is None:
        return None
    if bias == "zero":
        return torch.zeros(ctx.n_target)
    stale = torch.zeros(ctx.n_target)
    n = min(ctx.n_target, int(ctx.source_bias.shape[0]))
    stale[:n] = ctx.source_bias.detach().float().cpu()[:n]
    return stale


@register_method(
    "sembridge",
    citation="SemBridge (arXiv 2605.26002, EMNLP 2026); code: github.com/seongtaehong/SemBridge",
    resources=("bridge_vectors",), deterministic=True, omit_when_default=("bias", "copy_overlap"),
)
def sembridge(
    ctx: MethodContext,
    *,
    alpha: Annotated[float, Range(gt=1)] = 4.0,
    copy_overlap: bool = True,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    bias: Literal["remap", "stale", "zero"] = "remap",
    temperature: Annotated[float, Range(gt=0)] | None = None,
    top_k_cap: Annotated[int, Range(ge=1)] | None = None,
) -> TransferPlan:
    """Copy overlapping tokens; every other token is the alpha-entmax mixture of all source rows by bridge cosine.

    Faithful to the authors' code (no temperature, no top-k, all source tokens including special
    ones), computed exactly but in batches. Needs the ``bridge_vectors`` resource. Deviation: the
    decoder bias is remapped with the mixing weights (``bias="stale"`` is the authors' flow).

    Parameters:
        alpha: entmax alpha (> 1; 2 = sparsemax, larger = sparser). The authors' library default
            is 2.5; their README and examples use 4.0
        copy_overlap: copy overlapping tokens (false: only special tokens, matched by role, are
            copied and every other token is mixed; turn the three tests off to copy nothing)
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        bias: decoder bias of the target model: remap (b_t = M b_s, ours), stale (the source bias of
            the same id, zero beyond the source vocabulary: what the authors' resize leaves), zero
        temperature: divide cosine scores by this before entmax (extension, off by default)
        top_k_cap: run entmax over each token's top_k_cap scores only (extension, not exact, off by default)
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else special_pairs(ctx)
    new_ids = torch.tensor([t for t in range(ctx.n_target) if t not in copied], dtype=torch.long)
    info: dict[str, Any] = {"alpha": alpha, "temperature": temperature, "top_k_cap": top_k_cap,
                            "exact": top_k_cap is None, "overlap": len(copied)}
    if bias != "remap":
        info["bias"] = bias
    mixed = None
    if len(new_ids):
        target_vecs, source_vecs = ctx.bridge_vectors()
        start = time.perf_counter()
        weights, stats = bridge_weights(target_vecs[new_ids], source_vecs, alpha, temperature=temperature,
                                        top_k_cap=top_k_cap, device=ctx.device, return_stats=True)
        info.update(seconds=round(time.perf_counter() - start, 3), mean_support=stats["mean_support"],
                    rows_k_grown=stats["rows_grown"], max_k=stats["max_k"])
        mixed = _spread_rows(weights, new_ids, ctx.n_target, ctx.n_source)
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixed, copied=copied, info=info,
                      decoder_bias=ablated_bias(ctx, bias))
