"""focus: FOCUS (Dobler & de Melo, EMNLP 2023): overlap copied, new tokens as sparsemax mixtures of
overlapping tokens, similarity measured in a fastText space trained on target-tokenized text.

Re-implemented rather than calling the ``deepfocus`` package: that package pulls in datasets,
numba, fastdist and print-on-steroids, reads its training text from a file path, caches under
its own key (path + tokenizer), trains with all cores (not reproducible), loops over tokens in
Python, and returns a dense matrix; the harness needs the mixing weights (for the decoder bias and
``harness inspect``) and uses its own overlap rules. The algorithm below follows deepfocus 1.0.1:

1. copy overlapping tokens (``overlap_pairs``);
2. fastText on target text tokenized by the target tokenizer (deepfocus trains CBOW: "closer to
   masked language modelling"; dim 100, 3 epochs, minCount 10, neg 10);
3. overlapping tokens outside the fastText vocabulary are still copied but do not serve as
   mixing support; new tokens outside it get N(mean, std) rows of E_s;
4. every other new token: ``w = sparsemax(cos(f(t), f(o)))`` over the overlapping tokens o
   (no temperature), row = ``sum_o w_o E_s[source(o)]``.
"""
from __future__ import annotations

import time
from typing import Annotated, Literal

import torch

from harness.api import (
    MethodContext,
    Range,
    TransferPlan,
    build_plan,
    mean_bias,
    overlap_pairs,
    random_rows,
    register_method,
    sparsemax,
    tokenizer_signature,
    train_static_vectors,
)


def _cosine_rows(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)


def focus_mixing(new_vecs: torch.Tensor, support_vecs: torch.Tensor, support_cols: torch.Tensor,
                 new_ids: torch.Tensor, shape: tuple[int, int], block: int = 1024) -> torch.Tensor:
    """CSR mixing rows: row ``new_ids[i]`` = sparsemax over cosines of ``new_vecs[i]`` to
    ``support_vecs``, columns ``support_cols`` (source ids; duplicates are summed)."""
    a, b = _cosine_rows(new_vecs.float()), _cosine_rows(support_vecs.float())
    rows, cols, vals = [], [], []
    for start in range(0, len(a), block):  # one block of similarities at a time bounds memory
        w = sparsemax(a[start:start + block] @ b.T)
        r, c = w.nonzero(as_tuple=True)
        rows.append(new_ids[start + r]), cols.append(support_cols[c]), vals.append(w[r, c])
    if not rows:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), shape).to_sparse_csr()
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    return torch.sparse_coo_tensor(index, torch.cat(vals), shape).coalesce().to_sparse_csr()


@register_method(
    "focus",
    citation="Dobler & de Melo 2023, FOCUS (EMNLP); code: github.com/konstantinjdobler/focus (package deepfocus)",
    resources=("target_text",), deterministic=False,
)
def focus_init(
    ctx: MethodContext,
    *,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    fasttext_model: Literal["cbow", "skipgram"] = "cbow",
    dim: Annotated[int, Range(ge=1)] = 100,
    epochs: Annotated[int, Range(ge=1)] = 3,
    min_count: Annotated[int, Range(ge=1)] = 10,
    neg: Annotated[int, Range(ge=1)] = 10,
    lr: Annotated[float, Range(gt=0)] = 0.05,
    minn: Annotated[int, Range(ge=1)] = 3,
    maxn: Annotated[int, Range(ge=0)] = 6,
    bucket: Annotated[int, Range(ge=1)] = 2_000_000,
    threads: Annotated[int, Range(ge=1)] = 1,
) -> TransferPlan:
    """FOCUS: copy overlap; new tokens = sparsemax mixture of overlapping tokens in a token-level fastText space.

    Parameters:
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
        fasttext_model: fastText architecture of the auxiliary token vectors (deepfocus trains cbow)
        dim: fastText vector size
        epochs: fastText training epochs over the target text
        min_count: tokens seen fewer times get no fastText vector (new ones are then random)
        neg: fastText negative samples
        lr: fastText learning rate (small texts need more epochs or a larger lr)
        minn: shortest char n-gram of fastText
        maxn: longest char n-gram of fastText (0 disables n-grams)
        bucket: fastText hash buckets for char n-grams (model file = bucket x dim floats)
        threads: fastText threads (only 1 is reproducible)
    """
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all)
    start = time.perf_counter()
    tok = ctx.target_tokenizer
    vectors = train_static_vectors(
        ctx.target_text(), tokenize=tok.tokenize, cache_key=tokenizer_signature(tok), model=fasttext_model,
        dim=dim, epochs=epochs, min_count=min_count, neg=neg, lr=lr, minn=minn, maxn=maxn, bucket=bucket, seed=ctx.seed, threads=threads)
    fasttext_seconds = time.perf_counter() - start
    tokens = tok.convert_ids_to_tokens(list(range(ctx.n_target)))  # fastText saw these native forms

    support = sorted(t for t in copied if vectors.has(tokens[t]))
    new = [t for t in range(ctx.n_target) if t not in copied]
    mixed = [t for t in new if vectors.has(tokens[t])] if support else []
    fallback = sorted(set(new) - set(mixed))

    def vecs(ids: list[int]) -> torch.Tensor:
        return torch.from_numpy(vectors.matrix([tokens[t] for t in ids])) if ids else torch.zeros(0, vectors.dim)

    mixing = focus_mixing(vecs(mixed), vecs(support), torch.tensor([copied[t] for t in support], dtype=torch.long),
                          torch.tensor(mixed, dtype=torch.long), (ctx.n_target, ctx.n_source))
    rows, bias = random_rows(ctx, len(fallback)), mean_bias(ctx)
    info = {
        "copied": len(copied), "mixed": len(mixed), "random_fallback": len(fallback),
        "support_tokens": len(support), "overlap_without_vector": len(copied) - len(support),
        "fasttext_seconds": round(fasttext_seconds, 2), "fasttext_cached": vectors.cached,
        "fasttext_vocab": len(vectors.words),
    }
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixing if mixed else None, copied=copied,
                      explicit={t: (rows[i], bias) for i, t in enumerate(fallback)}, info=info)
