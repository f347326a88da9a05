"""bridge-omp: orthogonal matching pursuit over the bridge vectors (Goddard & Fernandes Neto 2025,
arXiv 2506.06607, "Training-Free Tokenizer Transplantation via Orthogonal Matching Pursuit"; public
code: mergekit ``tokensurgeon``, github.com/arcee-ai/mergekit).

Written from the algorithm, not from mergekit (its licence forbids copying). For a new target token
with bridge vector y, OMP greedily picks k source tokens whose bridge vectors (atoms a_j) best
reconstruct it:

1. r = y, S = {};
2. k times: j = argmax_j |<r, a_j>| over atoms not in S; S += {j}; c = argmin_c ||y - A_S c||
   (least squares on the chosen atoms); r = y - A_S c;
3. the target row is ``sum_j c_j E_s[j]`` with the same signed coefficients (not a convex
   combination), and likewise the decoder bias.

Batched: a block of target tokens moves together; each step is one matrix product R A^T over all
atoms (the cost: k products per block), an argmax per row, and a small batched least-squares
solve (float64, minimum-norm so that duplicate atoms are harmless). Coefficients that come out
(numerically) zero, e.g. once a row is reconstructed exactly, are dropped. The overlap is copied as
in SemBridge. A target whose bridge vector is zero gets the mean row of E_s and the mean bias.
"""
from __future__ import annotations

import time
from typing import Annotated

import torch

from harness.api import MethodContext, Range, TransferPlan, build_plan, mean_bias, overlap_pairs, register_method

_DROP = 1e-6  # coefficients below this times the row's largest |coefficient| are dropped


def _lstsq(atoms: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least-squares coefficients (B x s) of y (B x d) on atoms (B x s x d), in float64."""
    a, b = atoms.double().transpose(1, 2), y.double().unsqueeze(2)  # (B, d, s), (B, d, 1)
    driver = "gelsd" if a.device.type == "cpu" else "gels"
    return torch.linalg.lstsq(a, b, driver=driver).solution.squeeze(2)


@torch.no_grad()
def omp(targets: torch.Tensor, atoms: torch.Tensor, k: int, *, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched orthogonal matching pursuit: (indices (n x k), coefficients (n x k)) such that
    ``targets[i] ~ sum_j coefficients[i, j] * atoms[indices[i, j]]``. ``atoms`` should be unit rows."""
    n, n_atoms = targets.shape[0], atoms.shape[0]
    k = min(k, n_atoms)
    all_idx = torch.zeros(n, k, dtype=torch.long, device=targets.device)
    all_coef = torch.zeros(n, k, dtype=torch.float64, device=targets.device)
    atoms = atoms.float()
    for lo in range(0, n, batch_size):
        y = targets[lo:lo + batch_size].float()
        residual, chosen = y.clone(), torch.zeros(len(y), 0, dtype=torch.long, device=y.device)
        taken = torch.zeros(len(y), n_atoms, dtype=torch.bool, device=y.device)
        coef = torch.zeros(len(y), 0, dtype=torch.float64, device=y.device)
        for _ in range(k):
            corr = (residual @ atoms.T).abs_().masked_fill_(taken, -1.0)
            j = corr.argmax(dim=1)
            taken[torch.arange(len(y)), j] = True
            chosen = torch.cat([chosen, j[:, None]], dim=1)
            selected = atoms[chosen]  # (B, s, d)
            coef = _lstsq(selected, y)
            residual = y - torch.bmm(coef.float().unsqueeze(1), selected).squeeze(1)
        all_idx[lo:lo + batch_size], all_coef[lo:lo + batch_size] = chosen, coef
    return all_idx, all_coef


@register_method(
    "bridge-omp",
    citation="Goddard & Fernandes Neto 2025, arXiv 2506.06607 (OMP tokenizer transplantation; mergekit "
             "tokensurgeon, github.com/arcee-ai/mergekit), on SemBridge's bridge vectors",
    resources=("bridge_vectors",), deterministic=True,
)
def bridge_omp(
    ctx: MethodContext,
    *,
    k: Annotated[int, Range(ge=1)] = 8,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    batch_size: Annotated[int, Range(ge=1)] = 512,
) -> TransferPlan:
    """Copy overlap; every other token = OMP's k signed least-squares coefficients of its bridge vector on source bridge vectors.

    Parameters:
        k: atoms (source tokens) chosen per target token (mergekit's older default 8, newer 64)
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        batch_size: target tokens per block (memory: batch_size x n_source scores); speed only
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all)
    new = [t for t in range(ctx.n_target) if t not in copied]
    info = {"k": k, "overlap": len(copied)}
    rows: dict[int, tuple[list[int], list[float]]] = {}
    explicit = {}
    if new:
        target_vecs, source_vecs = ctx.bridge_vectors()
        start = time.perf_counter()
        y = target_vecs[torch.tensor(new)].float()
        atoms = torch.nn.functional.normalize(source_vecs.float(), dim=1)
        idx, coef = omp(y.to(ctx.device), atoms.to(ctx.device), k, batch_size=batch_size)
        idx, coef = idx.cpu(), coef.cpu()
        keep = coef.abs() > _DROP * coef.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        keep &= coef != 0
        row, bias = ctx.source_embeddings.float().mean(0), mean_bias(ctx)
        for i, t in enumerate(new):
            cols, vals = idx[i][keep[i]].tolist(), coef[i][keep[i]].tolist()
            if cols:
                rows[t] = (cols, vals)
            else:
                explicit[t] = (row, bias)
        sums = coef.sum(1)
        info.update(seconds=round(time.perf_counter() - start, 3), zero_vector_rows=len(explicit),
                    mean_coefficient_sum=round(float(sums.mean()), 4),
                    negative_share=round(float((coef[keep] < 0).double().mean()) if bool(keep.any()) else 0.0, 4))
    return build_plan(ctx.n_target, ctx.n_source, rows=rows, copied=copied, explicit=explicit, convex=False, info=info)
