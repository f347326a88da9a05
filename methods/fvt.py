"""fvt: Fast Vocabulary Transfer (Gee et al., EMNLP 2022 industry track; code:
github.com/LeonidasY/fast-vocabulary-transfer).

A target token that exists in the source vocabulary is copied. Every other token has one leading
word/continuation marker ("##", "▁" or "Ġ") stripped, the rest is tokenized by the *source*
tokenizer, and its row is the mean of those source rows. As in ZeTT's ``bfvt`` variant, pieces
the source tokenizer cannot read (``[UNK]``) are dropped, and a token with nothing left gets a
random N(mean, std) row of E_s with the mean decoder bias. The decoder bias of a mixed token is
the mean of its pieces' biases (the transplant applies the same mixing row to the bias).

This matters for the pocket source (splade-tiny): its uncased basic tokenizer strips accents
(NFD), so Hangul decomposes into jamo, and scripts it has never seen become ``[UNK]``.
"""
from __future__ import annotations

from harness.api import (
    MethodContext,
    TransferPlan,
    build_plan,
    mean_bias,
    overlap_pairs,
    random_rows,
    register_method,
)

MARKERS = ("##", "▁", "Ġ")


def strip_marker(token: str) -> str:
    """The token without one leading continuation/word-start marker."""
    for marker in MARKERS:
        if token.startswith(marker):
            return token[len(marker):]
    return token


def token_text(tokenizer: object, token: str) -> str:
    """The text of one target token: one leading marker stripped. A byte-level BPE token is decoded
    first ("Ġ" is a space, non-ASCII text is spelled in byte characters until decoded)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is not None and "ByteLevel" in repr(decoder):
        return tokenizer.convert_tokens_to_string([token]).strip()
    return strip_marker(token)


def source_pieces(ctx: MethodContext, token: str) -> list[int]:
    """Source ids of the token's text (marker stripped), unknown pieces dropped."""
    text = token_text(ctx.target_tokenizer, token)
    if not text.strip():
        return []
    tok = ctx.source_tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    unknown = tok.unk_token_id
    return [i for i in ids if i != unknown and i < ctx.n_source]


@register_method(
    "fvt",
    citation="Gee et al. 2022, Fast Vocabulary Transfer for Language Model Compression (EMNLP industry); "
             "code: github.com/LeonidasY/fast-vocabulary-transfer",
    resources=(), deterministic=False,
)
def fvt(
    ctx: MethodContext,
    *,
    copy_overlap: bool = True,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
) -> TransferPlan:
    """FVT: copy overlap; every other token is the mean of its pieces under the source tokenizer.

    Deterministic unless some token has no known piece (those get seeded random rows):
    ``plan.info["deterministic"]`` says which for each run.

    Parameters:
        copy_overlap: copy target tokens that exist in the source vocabulary (FVT does)
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else {}
    tokens = ctx.target_tokenizer.convert_ids_to_tokens(list(range(ctx.n_target)))
    rows: dict[int, tuple[list[int], list[float]]] = {}
    fallback = []
    pieces_total = 0
    for t in range(ctx.n_target):
        if t in copied:
            continue
        pieces = source_pieces(ctx, tokens[t] or "")
        if pieces:
            rows[t] = (pieces, [1.0 / len(pieces)] * len(pieces))  # repeated pieces count twice
            pieces_total += len(pieces)
        else:
            fallback.append(t)
    random, bias = random_rows(ctx, len(fallback)), mean_bias(ctx)
    info = {"copied": len(copied), "mixed": len(rows), "random_fallback": len(fallback),
            "mean_pieces": round(pieces_total / len(rows), 3) if rows else 0.0,
            "deterministic": not fallback}
    return build_plan(ctx.n_target, ctx.n_source, rows=rows, copied=copied,
                      explicit={t: (random[i], bias) for i, t in enumerate(fallback)}, info=info)
