"""wechsel: WECHSEL-style (Minixhofer et al., NAACL 2022) with locally trained word vectors.

The package downloads multi-GB pretrained fastText models and dictionaries at run time, so this
method trains fastText word vectors on the English (``source_text``) and target texts itself,
then follows wechsel 0.0.4:

1. align: orthogonal Procrustes ``W = argmin ||X W - Y||`` over the bilingual-dictionary pairs
   whose two words are both in the fastText vocabularies (raw vectors, as the package does);
   source vectors are mapped into the target space by ``W``;
2. a subword's vector is the fastText vector of its decoded text ("##"/"▁" stripped; char
   n-grams cover out-of-vocabulary pieces), L2-normalised;
3. target row = ``softmax(cos / temperature)`` over its ``k`` nearest source subwords, times their
   E_s rows; a target subword with an all-zero vector gets a random N(mean, std) row;
4. only special tokens are copied (``copy_overlap`` copies the whole overlap instead).

Fallback (no dictionary, e.g. Korean, or fewer than ``min_pairs`` usable pairs): the seed pairs
are the words spelled identically in both fastText vocabularies (numbers, names, English terms
left in the target text), plus any dictionary pairs that survived, as in the "identical strings"
supervision of Artetxe et al. (2017) / MUSE. ``plan.info["alignment"]`` records which was used.

Departures from the package: source special tokens and ``[unusedN]`` slots are never
neighbours (their vectors are only char n-grams of the bracket text); text is lower-cased by
default (the English source is uncased); Han ideographs are split into single characters since
no segmenter is available (for zh/ja only single-character dictionary entries can then align).
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
    procrustes,  # noqa: F401  (re-exported: the alignment lives in harness.static_vectors)
    random_rows,
    register_method,
    special_pairs,
    subword_vectors,
    token_texts,
    topk_softmax_rows,
    train_static_vectors,
    words,
)

@register_method(
    "wechsel",
    citation="Minixhofer et al. 2022, WECHSEL (NAACL); code: github.com/CPJKU/wechsel",
    resources=("source_text", "target_text", "dictionary"), deterministic=False,
)
def wechsel_init(
    ctx: MethodContext,
    *,
    temperature: Annotated[float, Range(gt=0)] = 0.1,
    k: Annotated[int, Range(ge=1)] = 10,
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
    """WECHSEL-style: Procrustes-aligned local fastText word vectors; target row = softmax(cos/T) over the k nearest source subwords.

    Parameters:
        temperature: softmax temperature over the neighbours' cosine similarities
        k: number of nearest source subwords mixed into each target token
        copy_overlap: copy every overlapping token (WECHSEL copies special tokens only)
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
                 model=fasttext_model, dim=dim, epochs=epochs, min_count=min_count, neg=neg, lr=lr, minn=minn, maxn=maxn,
                 bucket=bucket, seed=ctx.seed, threads=threads)
    src_vectors = train_static_vectors(ctx.source_text(), **hyper)
    tgt_vectors = train_static_vectors(ctx.target_text(), **hyper)
    fasttext_seconds = time.perf_counter() - start
    w, alignment = align_to_target(ctx, src_vectors, tgt_vectors, lowercase=lowercase, min_pairs=min_pairs,
                                   require_dictionary=require_dictionary)

    copied = (overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap
              else special_pairs(ctx))
    src = subword_vectors(src_vectors, token_texts(ctx.source_tokenizer, ctx.n_source, lowercase), w)
    allowed = (src.norm(dim=1) > 0) & neighbour_mask(ctx.source_tokenizer, ctx.n_source)

    new = [t for t in range(ctx.n_target) if t not in copied]
    tgt_texts = token_texts(ctx.target_tokenizer, ctx.n_target, lowercase)
    tgt = subword_vectors(tgt_vectors, [tgt_texts[t] for t in new]) if new else torch.zeros(0, dim)
    has_vec = tgt.norm(dim=1) > 0
    mixed = [t for t, ok in zip(new, has_vec.tolist()) if ok]
    fallback = [t for t, ok in zip(new, has_vec.tolist()) if not ok]
    mixing, top1 = (topk_softmax_rows(tgt[has_vec], src, allowed, torch.tensor(mixed), (ctx.n_target, ctx.n_source),
                                      k, temperature) if mixed and bool(allowed.any()) else (None, 0.0))
    if mixing is None:  # no source subword has a vector: everything new is random
        mixed, fallback = [], new
    rows, bias = random_rows(ctx, len(fallback)), mean_bias(ctx)
    info = {
        "alignment": alignment, "copied": len(copied), "mixed": len(mixed), "random_fallback": len(fallback),
        "mean_top1_cosine": round(top1, 4) if mixed else None, "fasttext_seconds": round(fasttext_seconds, 2),
        "fasttext_cached": [src_vectors.cached, tgt_vectors.cached],
        "fasttext_vocab": [len(src_vectors.words), len(tgt_vectors.words)],
    }
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixing, copied=copied,
                      explicit={t: (rows[i], bias) for i, t in enumerate(fallback)}, info=info)
