"""Static (fastText) vectors trained locally, cached on disk by content.

No pretrained fastText model for our languages exists in any package registry, so FOCUS and the
WECHSEL-style method train their own. fastText and torch are imported inside functions so that
``import harness.api`` stays light.

Determinism: use ``threads=1`` (the default): several Hogwild threads give different vectors on
every run. Even one thread is not always bit-reproducible with the installed wheel (measured:
occasional differences of ~1e-2 between identical runs, and an occasional "Encountered NaN" on tiny
corpora, which is retried), so reproducibility comes from the cache:
an identical request reuses the stored model. fastText 0.9.2's Python wrapper ignores ``seed`` in
unsupervised training, so a non-zero ``seed`` shuffles the line order instead.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.util import HarnessError, atomic_path, cache_dir, content_hash, write_json_atomic

_FORMAT = "static-vectors-v1"  # bump when the training file layout changes
_NAN_ATTEMPTS = 5


@dataclass
class StaticVectors:
    """A trained fastText model: in-vocabulary words, and vectors for any string (char n-grams)."""

    model: Any
    path: Path
    seconds: float = 0.0  # training time; 0.0 when loaded from the cache
    cached: bool = False
    hyper: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def words(self) -> list[str]:
        # fastText's own ``in`` rebuilds the word list on every call: index it once
        return [w for w in self.model.get_words(on_unicode_error="replace") if w != "</s>"]

    @cached_property
    def _index(self) -> frozenset[str]:
        return frozenset(self.words)

    @property
    def dim(self) -> int:
        return int(self.model.get_dimension())

    def has(self, word: str) -> bool:
        """In the trained vocabulary (seen at least ``min_count`` times)."""
        return word in self._index

    @cached_property
    def _trained_rows(self) -> frozenset[int]:
        # n-gram rows are only updated through in-vocabulary words, so these are the trained rows
        return frozenset(int(i) for w in self.words for i in self.model.get_subwords(w)[1])

    def known(self, word: str) -> bool:
        """In the vocabulary, or sharing at least one trained char n-gram with it."""
        return self.has(word) or any(int(i) in self._trained_rows for i in self.model.get_subwords(word)[1])

    def vector(self, word: str) -> np.ndarray:
        """fastText's vector: the mean of the word's own row and its char n-gram rows (n-grams only
        when OOV). All zeros unless ``known(word)``: fastText leaves untrained n-gram rows at their
        random (or zero) initial values, which would be noise."""
        if not word or not self.known(word):
            return np.zeros(self.dim, dtype=np.float32)
        return np.asarray(self.model.get_word_vector(word), dtype=np.float32)

    def matrix(self, words: list[str]) -> np.ndarray:
        """Vectors of ``words`` as L2-normalised rows (all-zero rows stay zero)."""
        m = np.stack([self.vector(w) for w in words]) if words else np.zeros((0, self.dim), np.float32)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms > 0, norms, 1.0)


def tokenizer_signature(tokenizer: Any) -> str:
    """A content hash of a tokenizer (its full serialisation when fast, else class + vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return content_hash(backend.to_str())
    return content_hash(type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()))


def _lines(texts: list[str], tokenize: Callable[[str], list[str]] | None) -> list[str]:
    if tokenize is None:
        return [t for t in texts if t.strip()]
    lines = (" ".join(tok for tok in tokenize(t) if tok.strip()) for t in texts)
    return [line for line in lines if line]  # one text per line: fastText's context stops at lines


def train_static_vectors(
    texts: list[str],
    *,
    tokenize: Callable[[str], list[str]] | None = None,
    cache_key: str | None = None,
    model: str = "skipgram",
    dim: int = 100,
    epochs: int = 3,
    min_count: int = 10,
    neg: int = 10,
    minn: int = 3,
    maxn: int = 6,
    ws: int = 5,
    lr: float = 0.05,
    bucket: int = 2_000_000,
    seed: int = 0,
    threads: int = 1,
    cache: bool = True,
) -> StaticVectors:
    """Train (or load from the cache) fastText vectors on ``texts``.

    ``tokenize`` splits each text into the units fastText sees (they are joined by spaces, one
    text per line); without it the raw text is split on whitespace by fastText. The cache key
    hashes the texts, all hyper-parameters and ``cache_key`` (a signature of the tokenization,
    e.g. ``tokenizer_signature(tok)``). A ``tokenize`` without ``cache_key`` is keyed by the
    tokenized text itself, which is always correct but tokenizes even on a cache hit.
    """
    hyper = dict(model=model, dim=dim, epoch=epochs, minCount=min_count, neg=neg, minn=minn, maxn=maxn,
                 ws=ws, lr=lr, bucket=bucket, seed=seed)
    lines = None
    if tokenize is not None and cache_key is None:
        lines = _lines(texts, tokenize)
        key = content_hash(_FORMAT, hyper, "tokenized", lines)
    else:
        key = content_hash(_FORMAT, hyper, cache_key, list(texts))
    # threads are not in the key: only threads=1 is reproducible, any model is a valid sample
    path = cache_dir("fasttext") / f"{key}.bin"
    if cache and path.exists():
        import fasttext

        return StaticVectors(fasttext.load_model(str(path)), path, 0.0, True, hyper)
    if lines is None:
        lines = _lines(texts, tokenize)
    start = time.perf_counter()
    ft_model = _train(lines, hyper, threads, path.parent)
    seconds = time.perf_counter() - start
    if cache:
        with atomic_path(path) as tmp:
            ft_model.save_model(str(tmp))
        write_json_atomic(path.with_suffix(".json"), {"hyper": hyper, "seconds": seconds, "lines": len(lines)})
    return StaticVectors(ft_model, path, seconds, False, hyper)


def _train(lines: list[str], hyper: dict[str, Any], threads: int, workdir: Path) -> Any:
    import random

    import fasttext

    hyper = dict(hyper)
    seed = hyper.pop("seed")
    if seed:  # fastText 0.9.2 ignores `seed` in unsupervised training: vary the line order instead
        lines = lines[:]
        random.Random(seed).shuffle(lines)
    if not lines:
        raise HarnessError("no text to train fastText vectors on: the text resource is empty")
    fd, name = tempfile.mkstemp(prefix=".train.", suffix=".txt", dir=workdir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        for attempt in range(_NAN_ATTEMPTS):
            try:
                return fasttext.train_unsupervised(name, thread=threads, verbose=0, **hyper)
            except RuntimeError as err:
                # "Encountered NaN" comes and goes between identical runs (see the module docstring)
                if "NaN" not in str(err) or attempt == _NAN_ATTEMPTS - 1:
                    raise
    except (RuntimeError, ValueError) as err:  # e.g. "Empty vocabulary. Try a smaller -minCount value."
        hint = (f"the text is too small for min_count={hyper['minCount']}: lower min_count or add text"
                if "vocabulary" in str(err) else "lower lr")
        raise HarnessError(f"fastText training failed ({err}): {hint}") from None
    finally:
        os.unlink(name)

