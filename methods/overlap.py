"""overlap: copy overlapping tokens, random for the rest (isolates the effect of a mixing rule)."""
from __future__ import annotations

from typing import Annotated

from harness.api import MethodContext, Range, TransferPlan, copy_and_random, overlap_pairs, register_method


@register_method(
    "overlap",
    citation="baseline: the overlap copy of FOCUS (Dobler & de Melo 2023), random rows for the rest",
    resources=(), deterministic=False,
)
def overlap_init(
    ctx: MethodContext,
    *,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    std_scale: Annotated[float, Range(ge=0)] = 1.0,
) -> TransferPlan:
    """Copy overlapping tokens from the source; the rest random from N(mean, std) of E_s.

    Parameters:
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        std_scale: multiply the per-dimension standard deviation of the random rows by this factor
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all)
    return copy_and_random(ctx, copied, std_scale=std_scale)
