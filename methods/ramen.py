"""ramen: RAMEN-style (Tran 2020, "From English To Foreign Languages: Transferring Pre-trained
Language Models", arXiv 2002.07306; code: github.com/alexa/ramen).

RAMEN aligns static word vectors of the two languages and makes each new subword a sparse
probability mixture of **all** source subwords: ``p = sparsemax(cos(v_t, v_s))``,
``e_t = sum_s p_s E_s[s]`` and, since the transplant remaps the decoder bias with the same row,
``b_t = sum_s p_s b_s``. It is the closest prior art to SemBridge, which swaps in a dense bridge
encoder and alpha-entmax.

The aligned space is the WECHSEL-style one of ``wechsel`` (same local fastText training, cached
and shared with it, and the same Procrustes alignment on the dictionary or identical strings:
``harness.api.align_to_target``). Neighbours exclude special tokens and ``[unusedN]`` slots; only
special tokens are copied (``copy_overlap`` copies the whole overlap); a target subword without a
vector gets a random N(mean, std) row and the mean bias. Sparsemax is computed exactly over all
allowed source subwords by top-k with a per-row check (the threshold found on the k best is the
full row's when the (k+1)-th score is at or below it), doubling k where it fails.
"""
from __future__ import annotations

import time
from typing import Annotated, Literal

import torch

from harness.api import (
    MethodContext,
    Range,
    TransferPlan,
    align_to_target,
    build_plan,
    mean_bias,
    neighbour_mask,
    overlap_pairs,
    random_rows,
    register_method,
    sparsemax_threshold,
    special_pairs,
    subword_vectors,
    token_texts,
    train_static_vectors,
    words,
)


@torch.no_grad()
def sparsemax_rows(tgt: torch.Tensor, src: torch.Tensor, cols: torch.Tensor, ids: torch.Tensor,
                   shape: tuple[int, int], *, k_init: int = 64, block: int = 1024) -> tuple[torch.Tensor, dict]:
    """CSR rows ``ids``: exact sparsemax over the cosines of unit rows ``tgt`` with unit rows ``src``
    (source columns ``cols``); also {"mean_support", "max_k"}."""
    m = src.shape[0]
    rows_out, cols_out, vals_out, max_k = [], [], [], 0
    for lo in range(0, len(tgt), block):
        sims = tgt[lo:lo + block] @ src.T
        pending, k = torch.arange(sims.shape[0]), min(k_init, m)
        while pending.numel():
            vals, idx = sims[pending].topk(min(k + 1, m), dim=1)
            x = vals.double()
            tau = sparsemax_threshold(x[:, :k], dim=1)
            done = torch.ones(len(pending), dtype=torch.bool) if k >= m else (x[:, k, None] <= tau).squeeze(1)
            w = (x[done, :k] - tau[done]).clamp_min(0)
            r, c = w.nonzero(as_tuple=True)
            rows_out.append(ids[lo + pending[done][r]]), cols_out.append(cols[idx[done][r, c]])
            vals_out.append(w[r, c].float())
            max_k = max(max_k, k) if bool(done.any()) else max_k
            pending, k = pending[~done], min(2 * k, m)
    if not rows_out:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), shape).to_sparse_csr(), {}
    index = torch.stack([torch.cat(rows_out), torch.cat(cols_out)])
    values = torch.cat(vals_out)
    csr = torch.sparse_coo_tensor(index, values, shape).coalesce().to_sparse_csr()
    return csr, {"mean_support": round(len(values) / max(len(tgt), 1), 2), "max_k": max_k}


@register_method(
    "ramen",
    citation="Tran 2020, From English To Foreign Languages: Transferring Pre-trained Language Models "
             "(arXiv 2002.07306); code: github.com/alexa/ramen",
    resources=("source_text", "target_text", "dictionary"), deterministic=False,
)
def ramen(
    ctx: MethodContext,
    *,
    copy_overlap: bool = False,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    min_pairs: Annotated[int, Range(ge=1)] = 50,
    require_dictionary: bool = False,
    lowercase: bool = True,
    fasttext_model: Literal["skipgram", "cbow"] = "skipgram",
    dim: Annotated[int, Range(ge=1)] = 100,
    epochs: Annotated[int, Range(ge=1)] = 5,
    min_count: Annotated[int, Range(ge=1)] = 5,
    neg: Annotated[int, Range(ge=1)] = 10,
    lr: Annotated[float, Range(gt=0)] = 0.05,
    minn: Annotated[int, Range(ge=1)] = 3,
    maxn: Annotated[int, Range(ge=0)] = 6,
    bucket: Annotated[int, Range(ge=1)] = 2_000_000,
    threads: Annotated[int, Range(ge=1)] = 1,
) -> TransferPlan:
    """RAMEN-style: sparsemax over all source subwords by cosine in Procrustes-aligned local fastText space.

    The fastText defaults are wechsel's, so both methods share the cached vectors.

    Parameters:
        copy_overlap: copy every overlapping token (by default only special tokens are copied)
        match_symbols: overlap test when copy_overlap: numbers, punctuation and special tokens
        exact_match_all: overlap test when copy_overlap: identical canonical form
        fuzzy_match_all: overlap test when copy_overlap: identical form ignoring case and marker
        min_pairs: fewer usable dictionary pairs than this -> identical-string seed pairs are added
        require_dictionary: fail instead of falling back to identical strings
        lowercase: lower-case texts, dictionary words and token texts (the source is uncased)
        fasttext_model: fastText architecture of the word vectors
        dim: fastText vector size (both languages)
        epochs: fastText training epochs
        min_count: words seen fewer times are not in the vocabulary (n-grams still cover them)
        neg: fastText negative samples
        lr: fastText learning rate (small texts need more epochs or a larger lr)
        minn: shortest char n-gram of fastText
        maxn: longest char n-gram of fastText
        bucket: fastText hash buckets for char n-grams (model file = bucket x dim floats)
        threads: fastText threads (only 1 is reproducible)
    """
    start = time.perf_counter()
    hyper = dict(tokenize=lambda text: words(text, lowercase), cache_key=f"wechsel-words-v1:{lowercase}",
                 model=fasttext_model, dim=dim, epochs=epochs, min_count=min_count, neg=neg, lr=lr, minn=minn,
                 maxn=maxn, bucket=bucket, seed=ctx.seed, threads=threads)
    src_vectors = train_static_vectors(ctx.source_text(), **hyper)
    tgt_vectors = train_static_vectors(ctx.target_text(), **hyper)
    fasttext_seconds = time.perf_counter() - start
    w, alignment = align_to_target(ctx, src_vectors, tgt_vectors, lowercase=lowercase, min_pairs=min_pairs,
                                   require_dictionary=require_dictionary)

    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap else special_pairs(ctx)
    src = subword_vectors(src_vectors, token_texts(ctx.source_tokenizer, ctx.n_source, lowercase), w)
    allowed = ((src.norm(dim=1) > 0) & neighbour_mask(ctx.source_tokenizer, ctx.n_source)).nonzero().squeeze(1)

    new = [t for t in range(ctx.n_target) if t not in copied]
    tgt_texts = token_texts(ctx.target_tokenizer, ctx.n_target, lowercase)
    tgt = subword_vectors(tgt_vectors, [tgt_texts[t] for t in new])
    has_vec = (tgt.norm(dim=1) > 0) if len(allowed) else torch.zeros(len(new), dtype=torch.bool)
    mixed = [t for t, ok in zip(new, has_vec.tolist()) if ok]
    fallback = [t for t, ok in zip(new, has_vec.tolist()) if not ok]
    mixing, stats = None, {}
    if mixed:
        mixing, stats = sparsemax_rows(tgt[has_vec], src[allowed], allowed, torch.tensor(mixed),
                                       (ctx.n_target, ctx.n_source))
    rows, bias = random_rows(ctx, len(fallback)), mean_bias(ctx)
    info = {"alignment": alignment, "copied": len(copied), "mixed": len(mixed), "random_fallback": len(fallback),
            **stats, "fasttext_seconds": round(fasttext_seconds, 2),
            "fasttext_cached": [src_vectors.cached, tgt_vectors.cached]}
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixing, copied=copied,
                      explicit={t: (rows[i], bias) for i, t in enumerate(fallback)}, info=info)
