"""random: new token rows drawn from the source embeddings' per-dimension distribution."""
from __future__ import annotations

from typing import Annotated

from harness.api import MethodContext, Range, TransferPlan, copy_and_random, overlap_pairs, register_method


@register_method(
    "random",
    citation="baseline: N(mean, std) of E_s per dimension (no paper of its own; WECHSEL's fallback row)",
    resources=(), deterministic=False,
)
def random_init(
    ctx: MethodContext,
    *,
    copy_overlap: bool = False,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    std_scale: Annotated[float, Range(ge=0)] = 1.0,
) -> TransferPlan:
    """Random rows from N(mean, std) of E_s per dimension (seeded); the pure lower bound.

    Parameters:
        copy_overlap: copy the source row of target tokens that overlap the source vocabulary
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        std_scale: multiply the per-dimension standard deviation by this factor
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else {}
    return copy_and_random(ctx, copied, std_scale=std_scale)
