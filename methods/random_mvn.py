"""random-mvn: new rows drawn from a multivariate normal with the full mean and covariance of E_s.

Hewitt (2021, "Initializing New Word Embeddings for Pretrained Language Models",
nlp.stanford.edu/~johnhew/vocab-expansion.html) samples new embeddings from N(mu, Sigma) of the
existing ones; mergekit's tokensurgeon (github.com/arcee-ai/mergekit) offers the same as
``random_matching_distribution``, and Mundra et al. (2024) find it competitive. ``random`` is its
diagonal counterpart (per-dimension std only). Overlapping tokens are copied, the decoder bias of
new tokens is the mean bias (a random bias would add noise to every score).
"""
from __future__ import annotations

import torch

from harness.api import MethodContext, TransferPlan, build_plan, mean_bias, overlap_pairs, register_method


def mvn_rows(ctx: MethodContext, n: int, *, offset: int = 0) -> torch.Tensor:
    """``n`` rows from N(mean, cov) of E_s, seeded by ``ctx.generator(offset)``."""
    e = ctx.source_embeddings.double()
    mu = e.mean(0)
    cov = torch.cov(e.T)
    # a tiny ridge keeps the factorisation valid when the covariance is (numerically) singular
    jitter = 1e-10 * float(cov.diagonal().mean().clamp_min(1e-30))
    chol, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(len(cov), dtype=cov.dtype))
    if int(info):
        evals, evecs = torch.linalg.eigh(cov)
        chol = evecs * evals.clamp_min(0).sqrt()
    z = torch.randn(n, len(mu), generator=ctx.generator(offset), dtype=torch.float64)
    return (mu + z @ chol.T).float()


@register_method(
    "random-mvn",
    citation="Hewitt 2021 (nlp.stanford.edu/~johnhew/vocab-expansion.html); mergekit tokensurgeon "
             "random_matching_distribution (github.com/arcee-ai/mergekit); Mundra et al. 2024",
    resources=(), deterministic=False,
)
def random_mvn(
    ctx: MethodContext,
    *,
    copy_overlap: bool = True,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
) -> TransferPlan:
    """Random rows from N(mean, full covariance) of E_s (seeded); overlap copied, mean decoder bias.

    Parameters:
        copy_overlap: copy the source row of target tokens that overlap the source vocabulary
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else {}
    rest = [t for t in range(ctx.n_target) if t not in copied]
    rows, bias = mvn_rows(ctx, len(rest)), mean_bias(ctx)
    return build_plan(ctx.n_target, ctx.n_source, copied=copied,
                      explicit={t: (rows[i], bias) for i, t in enumerate(rest)},
                      info={"copied": len(copied), "random": len(rest)})
