"""bridge-knn: WECHSEL's weighting rule on SemBridge's bridge vectors.

WECHSEL (Minixhofer et al., NAACL 2022; code: github.com/CPJKU/wechsel) and OFA (Liu et al.,
NAACL 2024 findings; code: github.com/cisnlp/ofa) make a new token from its k = 10 nearest source
tokens, weighted by ``softmax(cos / 0.1)``. Here the cosines are those SemBridge uses: bridge-model
vectors of both vocabularies over **all** source tokens, and the overlap is copied as SemBridge
copies it. Against ``sembridge`` it changes only the weighting rule (top-k softmax instead of
alpha-entmax over the whole row); against ``wechsel`` only the vector space.
"""
from __future__ import annotations

import time
from typing import Annotated

import torch

from harness.api import (MethodContext, Range, TransferPlan, build_plan, overlap_pairs, register_method,
                         topk_softmax_rows)


@register_method(
    "bridge-knn",
    citation="WECHSEL rule (Minixhofer et al. 2022, github.com/CPJKU/wechsel; OFA, github.com/cisnlp/ofa) "
             "on SemBridge's bridge vectors (arXiv 2605.26002)",
    resources=("bridge_vectors",), deterministic=True,
)
def bridge_knn(
    ctx: MethodContext,
    *,
    k: Annotated[int, Range(ge=1)] = 10,
    temperature: Annotated[float, Range(gt=0)] = 0.1,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
) -> TransferPlan:
    """Copy overlap; every other token = softmax(cos / T) over its k nearest source tokens by bridge cosine.

    Parameters:
        k: number of nearest source tokens mixed into each target token
        temperature: softmax temperature over the neighbours' cosines
        match_symbols: overlap test: numbers, punctuation and special tokens (by role)
        exact_match_all: overlap test: identical canonical form
        fuzzy_match_all: overlap test: identical form ignoring case and the word-start marker
    """
    if k < 1 or not temperature > 0:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    copied = overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all)
    new = torch.tensor([t for t in range(ctx.n_target) if t not in copied], dtype=torch.long)
    info = {"k": k, "temperature": temperature, "overlap": len(copied)}
    mixing = None
    if len(new):
        target_vecs, source_vecs = ctx.bridge_vectors()
        start = time.perf_counter()
        tgt = torch.nn.functional.normalize(target_vecs[new].float(), dim=1)
        src = torch.nn.functional.normalize(source_vecs.float(), dim=1)
        allowed = torch.ones(src.shape[0], dtype=torch.bool)
        mixing, top1 = topk_softmax_rows(tgt, src, allowed, new, (ctx.n_target, ctx.n_source), k, temperature)
        info.update(seconds=round(time.perf_counter() - start, 3), mean_top1_cosine=round(top1, 4))
    return build_plan(ctx.n_target, ctx.n_source, mixed_csr=mixing, copied=copied, info=info)
