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

Entmax convention (entmax 1.3, ``entmax_bisect``): ``p_j = [(alpha-1) z_j - tau]_+ ^ (1/(alpha-1))``
with tau such that ``sum_j p_j = 1``; the package then divides by the sum, as we do. Thresholds
are solved in float64, so rows match float64 ``entmax_bisect`` to ~1e-6. The authors' float32 call
is itself less accurate for large alpha: an entry just above tau gets ``(x - tau)^(1/(alpha-1))``,
which amplifies float32 rounding of tau (differences up to ~5e-3 at alpha 4, none at alpha <= 2.5
beyond 1e-6 in our tests).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.api import MethodContext, TransferPlan, build_plan, overlap_pairs, register_method, sparsemax_threshold

# 60 halvings of a bracket no wider than 1 reach float64 resolution for thresholds of any size
# that cosine scores produce, so the bisection result is the exact threshold up to rounding.
_BISECT_ITERS = 60
# Typical supports are tiny (alpha 4: ~3 entries), so first solve on the 8 best scores of the
# fetched top-k and only widen rows that need it: most rows never pay for k_init-wide solves.
_FIRST_SOLVE = 8


# --------------------------------------------------------------------------------------------
# Threshold solvers (rows of x sorted in decreasing order, x = (alpha-1) * score)
# --------------------------------------------------------------------------------------------
def _bisect_tau(x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Entmax threshold by bisection, the lower bracket end (sum of weights >= 1 there)."""
    k = x.shape[1]
    power = 1.0 / (alpha - 1)
    top = x[:, :1]
    lo = top - 1.0  # the best entry alone already has weight 1
    hi = top - (1.0 / k) ** (alpha - 1)  # every entry has weight <= 1/k
    for _ in range(_BISECT_ITERS):
        mid = (lo + hi) / 2
        heavy = (x - mid).clamp_min(0).pow(power).sum(1, keepdim=True) >= 1
        lo = torch.where(heavy, mid, lo)
        hi = torch.where(heavy, hi, mid)
    return lo


def _entmax_weights(x: torch.Tensor, alpha: float | torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    p = (x - tau).clamp_min(0).pow(1.0 / (alpha - 1))
    return p / p.sum(1, keepdim=True)  # same final normalisation as entmax_bisect


def _solve(x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    if isinstance(alpha, float) and alpha == 2.0:
        return sparsemax_threshold(x, dim=1)
    return _bisect_tau(x, alpha)


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


def _block_weights(scores: torch.Tensor, scale: torch.Tensor, alpha: float | torch.Tensor, k_init: int,
                   top_k_cap: int | None, out: _Entries, stats: dict[str, int], offset: int) -> None:
    """Exact entmax rows of ``scores`` (B x n), x = scale * score per row, into ``out`` as rows offset + i."""
    n = scores.shape[1]
    pending = torch.arange(scores.shape[0], device=scores.device)
    k = min(top_k_cap, n) if top_k_cap else min(_FIRST_SOLVE, k_init, n)
    vals, idx = scores.topk(k if top_k_cap else min(max(k, k_init) + 1, n), dim=1)
    grown = False
    while pending.numel():
        if vals.shape[1] < min(k + 1, n) and not top_k_cap:  # unfinished rows need more scores
            stats["rows_grown"] += 0 if grown else int(pending.numel())  # pending only shrinks
            grown = True
            vals, idx = scores[pending].topk(min(k + 1, n), dim=1)
        row_alpha = alpha if isinstance(alpha, float) else alpha[pending]
        x = vals[:, :k].double() * scale[pending]
        tau = _solve(x, row_alpha)
        # exact iff the next score gets zero weight; a full (or capped) row has no next score
        if k >= n or top_k_cap:
            done = torch.ones_like(pending, dtype=torch.bool)
        else:
            done = vals[:, k, None].double() * scale[pending] <= tau
            done = done.squeeze(1)
        if bool(done.any()):
            a_done = row_alpha if isinstance(row_alpha, float) else row_alpha[done]
            out.emit(pending[done] + offset, idx[done, :k], _entmax_weights(x[done], a_done, tau[done]))
            stats["max_k"] = max(stats["max_k"], k)
        pending, vals, idx = pending[~done], vals[~done], idx[~done]
        k = min(2 * k, n)


# --------------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------------
def _cosine_into(buf: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """t @ s.T into buf; on CPU numpy's OpenBLAS sgemm is ~1.4x faster than torch's on AMD cores."""
    if t.device.type == "cpu":
        np.matmul(t.numpy(), s.numpy().T, out=buf.numpy())
        return buf
    return torch.mm(t, s.T, out=buf)


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

    Each row equals ``entmax.entmax_bisect(cos_row, alpha)`` (up to float rounding), computed
    exactly by top-k pre-selection with a per-row check and k doubling (see the module doc).

    target_vecs (n_target x d), source_vecs (n_source x d): any scale; rows are L2-normalised here.
    alpha: > 1 (2 = sparsemax, solved by the exact sort rule; else float64 bisection), or a tensor
        of shape (n_target,) giving each target row its own alpha.
    temperature: if set, scores are divided by it before entmax (not in SemBridge; off by default).
    top_k_cap: if set, entmax runs over each row's top_k_cap scores only. NOT exact: the weights
        are renormalised over the cap, so rows whose support is larger than the cap change.
    k_init: how many scores per row the first top-k fetches; only affects speed.
    batch_size: target rows per block; memory is about batch_size x n_source float32 scores.
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
    source = torch.nn.functional.normalize(source_vecs.to(device, torch.float32), dim=1).contiguous()
    buf = torch.empty(min(batch_size, n_t), n_s, device=device)  # reused: no page faults per block
    out, stats = _Entries(), {"rows_grown": 0, "max_k": 0}
    for lo in range(0, n_t, batch_size):
        hi = min(lo + batch_size, n_t)
        t = torch.nn.functional.normalize(target_vecs[lo:hi].to(device, torch.float32), dim=1).contiguous()
        scores = _cosine_into(buf[: hi - lo], t, source)
        row_alpha = a if isinstance(a, float) else a[lo:hi]
        _block_weights(scores, scale[lo:hi], row_alpha, k_init, top_k_cap, out, stats, lo)
    csr = _to_csr(out, n_t, n_s)
    if not return_stats:
        return csr
    nnz = int(csr.values().numel())
    return csr, {"rows": n_t, "nnz": nnz, "mean_support": nnz / max(n_t, 1), **stats}


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


def _checked_bridge_vectors(ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
    target_vecs, source_vecs = ctx.bridge_vectors()
    if target_vecs.shape[0] != ctx.n_target:
        raise ValueError(f"bridge vectors cover {target_vecs.shape[0]} target tokens, the tokenizer has {ctx.n_target}")
    if source_vecs.shape[0] > ctx.n_source:
        raise ValueError(f"bridge vectors cover {source_vecs.shape[0]} source tokens, E_s has {ctx.n_source} rows")
    return target_vecs, source_vecs


@register_method("sembridge")
def sembridge(
    ctx: MethodContext,
    *,
    alpha: float = 4.0,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    temperature: float | None = None,
    top_k_cap: int | None = None,
) -> TransferPlan:
    """Copy overlapping tokens; every other token is the alpha-entmax mixture of all source rows by bridge cosine.

    Faithful to the authors' code (no temperature, no top-k, all source tokens including special
    ones), computed exactly but in batches. Needs the ``bridge_vectors`` resource.

    Parameters:
        alpha: entmax alpha (> 1; 2 = sparsemax, larger = sparser). The authors' library default
            is 2.5; their README and examples use 4.0
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        temperature: divide cosine scores by this before entmax (extension, off by default)
        top_k_cap: run entmax over each token's top_k_cap scores only (extension, not exact, off by default)
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all)
    new_ids = torch.tensor([t for t in range(ctx.n_target) if t not in copied], dtype=torch.long)
    info: dict[str, Any] = {"alpha": alpha, "temperature": temperature, "top_k_cap": top_k_cap,
                            "exact": top_k_cap is None, "overlap": len(copied)}
    mixed = None
    if len(new_ids):
        target_vecs, source_vecs = _checked_bridge_vectors(ctx)
        start = time.perf_counter()
        weights, stats = bridge_weights(target_vecs[new_ids], source_vecs, alpha, temperature=temperature,
                                        top_k_cap=top_k_cap, device=ctx.device, return_stats=True)
        info.update(seconds=round(time.perf_counter() - start, 3), mean_support=stats["mean_support"],
                    rows_k_grown=stats["rows_grown"], max_k=stats["max_k"])
        mixed = _spread_rows(weights, new_ids, ctx.n_target, ctx.n_source)
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixed, copied=copied, info=info)
