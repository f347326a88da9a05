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

import re
import time
from typing import Any, Literal

import numpy as np
import torch

from harness.api import (
    HarnessError,
    MethodContext,
    MissingResourceError,
    OverlapOptions,
    StaticVectors,
    TransferPlan,
    build_plan,
    find_overlap,
    mean_bias,
    overlap_pairs,
    random_rows,
    register_method,
    train_static_vectors,
)

_HAN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+|[^\w\s]")  # numbers, letter runs, single symbols
_UNUSED = re.compile(r"^(\[unused\d+\]|<unused\d+>)$")


def words(text: str, lowercase: bool = True) -> list[str]:
    """The word tokenization fastText is trained on (and dictionary words are looked up in)."""
    text = _HAN.sub(r" \1 ", text.lower() if lowercase else text)
    return _WORD.findall(text)


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Orthogonal W minimising ||x W - y||_F: W = U V^T for U S V^T = svd(x^T y)."""
    u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ y.astype(np.float64))
    return (u @ vt).astype(np.float32)


def dictionary_pairs(src: StaticVectors, tgt: StaticVectors, entries: list[tuple[str, str]],
                     lowercase: bool = True) -> list[tuple[str, str]]:
    """Entries whose two words (in some casing, as wechsel tries) are in both vocabularies."""
    pairs: dict[tuple[str, str], None] = {}
    for s_word, t_word in entries:
        s_forms = {s_word.lower()} if lowercase else {s_word, s_word.lower(), s_word.title()}
        t_forms = {t_word.lower()} if lowercase else {t_word, t_word.lower(), t_word.title()}
        for s in s_forms:
            for t in t_forms:
                if src.has(s) and tgt.has(t):
                    pairs[(s, t)] = None
    return list(pairs)


def identical_pairs(src: StaticVectors, tgt: StaticVectors) -> list[tuple[str, str]]:
    """Words spelled the same in both vocabularies that contain a letter or digit."""
    return [(w, w) for w in src.words if tgt.has(w) and any(ch.isalnum() for ch in w)]


def _dictionary(ctx: MethodContext, require: bool) -> tuple[list[tuple[str, str]] | None, str]:
    try:
        return list(ctx.dictionary()), ""
    except (MissingResourceError, HarnessError) as err:  # e.g. no en-ko dictionary exists
        if require:
            raise
        return None, str(err)


def align(ctx: MethodContext, src: StaticVectors, tgt: StaticVectors, *, lowercase: bool, min_pairs: int,
          require_dictionary: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Procrustes map from source to target fastText space, and how it was obtained."""
    entries, reason = _dictionary(ctx, require_dictionary)
    pairs = dictionary_pairs(src, tgt, entries, lowercase) if entries else []
    info: dict[str, Any] = {"dictionary_entries": len(entries or []), "dictionary_pairs": len(pairs)}
    if len(pairs) >= min_pairs:
        info["strategy"] = "dictionary"
    else:
        if require_dictionary:
            raise HarnessError(f"only {len(pairs)} dictionary pairs are in both fastText vocabularies "
                               f"(min_pairs={min_pairs}); lower min_pairs or allow the identical-string fallback")
        info["strategy"] = "identical-strings"
        info["reason"] = reason or f"only {len(pairs)} dictionary pairs in both vocabularies (< {min_pairs})"
        pairs = list(dict.fromkeys(pairs + identical_pairs(src, tgt)))
    if len(pairs) < 2:
        raise HarnessError("no seed pairs to align the fastText spaces: the texts share no words and "
                           "no dictionary applies")
    x = np.stack([src.vector(s) for s, _ in pairs])
    y = np.stack([tgt.vector(t) for _, t in pairs])
    w = procrustes(x, y)
    info["pairs"] = len(pairs)
    info["pair_cosine_after"] = round(float(_mean_cos(x @ w, y)), 4)  # fit quality on the seeds
    return w, info


def _mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(((a * b).sum(1) / np.maximum(na * nb, 1e-12)).mean())


def token_texts(tokenizer: Any, n: int, lowercase: bool) -> list[str]:
    """Each token decoded alone, word-start/continuation markers removed."""
    texts = []
    for i in range(n):
        text = tokenizer.decode([i]).strip()
        text = text[2:] if text.startswith("##") else text
        text = text.replace("▁", "").strip()
        texts.append(text.lower() if lowercase else text)
    return texts


def _unit(m: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _special_pairs(ctx: MethodContext) -> dict[int, int]:
    overlap = find_overlap(ctx.source_tokenizer, ctx.target_tokenizer, OverlapOptions(True, False, False))
    return {t: s for t, s in overlap.pairs.items() if overlap.reasons[t].startswith("special:")}


def topk_softmax_rows(tgt: torch.Tensor, src: torch.Tensor, allowed: torch.Tensor, ids: torch.Tensor,
                      shape: tuple[int, int], k: int, temperature: float, block: int = 1024) -> tuple[torch.Tensor, float]:
    """CSR rows ``ids``: softmax(cos / temperature) over the k nearest ``allowed`` source rows;
    also the mean cosine of the nearest neighbour."""
    mask = torch.where(allowed, 0.0, float("-inf"))
    k = min(k, int(allowed.sum()))
    rows, cols, vals, top1 = [], [], [], []
    for start in range(0, len(tgt), block):
        sims, idx = (tgt[start:start + block] @ src.T + mask).topk(k, dim=1)
        rows.append(ids[start:start + block].repeat_interleave(k)), cols.append(idx.flatten())
        vals.append(torch.softmax(sims / temperature, dim=1).flatten()), top1.append(sims[:, 0])
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    csr = torch.sparse_coo_tensor(index, torch.cat(vals), shape).coalesce().to_sparse_csr()
    return csr, float(torch.cat(top1).mean())


@register_method("wechsel")
def wechsel_init(
    ctx: MethodContext,
    *,
    temperature: float = 0.1,
    k: int = 10,
    copy_overlap: bool = False,
    match_symbols: bool = True,
    exact_match_all: bool = True,
    fuzzy_match_all: bool = True,
    min_pairs: int = 50,
    require_dictionary: bool = False,
    lowercase: bool = True,
    fasttext_model: Literal["skipgram", "cbow"] = "skipgram",
    dim: int = 100,
    epochs: int = 5,
    min_count: int = 5,
    neg: int = 10,
    lr: float = 0.05,
    minn: int = 3,
    maxn: int = 6,
    bucket: int = 2_000_000,
    threads: int = 1,
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
    w, alignment = align(ctx, src_vectors, tgt_vectors, lowercase=lowercase, min_pairs=min_pairs,
                         require_dictionary=require_dictionary)

    copied = (overlap_pairs(ctx, match_symbols, exact_match_all, fuzzy_match_all) if copy_overlap
              else _special_pairs(ctx))
    src_texts = token_texts(ctx.source_tokenizer, ctx.n_source, lowercase)
    src = _unit(np.stack([src_vectors.vector(t) for t in src_texts]) @ w)
    excluded = set(getattr(ctx.source_tokenizer, "all_special_ids", [])) | {
        i for i, tok in enumerate(ctx.source_tokenizer.convert_ids_to_tokens(list(range(ctx.n_source))))
        if tok is None or _UNUSED.match(tok)}
    allowed = (src.norm(dim=1) > 0) & ~torch.isin(torch.arange(ctx.n_source), torch.tensor(sorted(excluded), dtype=torch.long))

    new = [t for t in range(ctx.n_target) if t not in copied]
    tgt_texts = token_texts(ctx.target_tokenizer, ctx.n_target, lowercase)
    tgt = _unit(np.stack([tgt_vectors.vector(tgt_texts[t]) for t in new])) if new else torch.zeros(0, dim)
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
