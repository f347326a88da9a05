"""mean: every new token gets the mean source embedding."""
from __future__ import annotations

from harness.api import MethodContext, TransferPlan, build_plan, mean_bias, overlap_pairs, register_method


@register_method(
    "mean",
    citation="baseline: the mean of E_s (no paper of its own)",
    resources=(), deterministic=True,
)
def mean_init(
    ctx: MethodContext,
    *,
    copy_overlap: bool = True,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
) -> TransferPlan:
    """Every non-overlapping token gets the mean of E_s and the mean decoder bias.

    Parameters:
        copy_overlap: copy the source row of target tokens that overlap the source vocabulary
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else {}
    row = ctx.source_embeddings.float().mean(0)
    bias = mean_bias(ctx)
    explicit = {t: (row, bias) for t in range(ctx.n_target) if t not in copied}
    return build_plan(ctx.n_target, ctx.n_source, copied=copied, explicit=explicit)
