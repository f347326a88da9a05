"""Static (fastText) vectors trained locally, cached on disk by content.

No pretrained fastText model for our languages exists in any package registry, so FOCUS and the
WECHSEL-style method train their own. fastText and torch are imported inside functions so that
``import harness.api`` stays light.

Determinism: use ``threads=1`` (the default): several Hogwild threads give different vectors on
every run. With one thread, fastText is reproducible only in a fresh process: repeated trainings
inside one process leak state (measured: the 6th of 6 identical trainings in one process differed
by 0.7; 12 of 12 fresh processes agreed exactly). So every training runs in its own subprocess,
and an identical request reuses the cached model. fastText 0.9.2's Python wrapper ignores ``seed`` in
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

from harness.util import HarnessError, cache_dir, content_hash, write_json_atomic

_FORMAT = "static-vectors-v1"  # bump when the training file layout changes


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
    trained = _train(lines, hyper, threads, path.parent)
    seconds = time.perf_counter() - start
    import fasttext

    if not cache:
        try:
            return StaticVectors(fasttext.load_model(str(trained)), trained, seconds, False, hyper)
        finally:
            trained.unlink()
    os.replace(trained, path)
    write_json_atomic(path.with_suffix(".json"), {"hyper": hyper, "seconds": seconds, "lines": len(lines)})
    return StaticVectors(fasttext.load_model(str(path)), path, seconds, False, hyper)


_TRAIN_SCRIPT = """
import json, sys
import fasttext
job = json.loads(sys.argv[1])
fasttext.train_unsupervised(job["input"], thread=job["thread"], verbose=0, **job["hyper"]).save_model(job["out"])
"""


def _train(lines: list[str], hyper: dict[str, Any], threads: int, workdir: Path) -> Path:
    """Train in a fresh Python process (see the module docstring); returns the model file in ``workdir``."""
    import json
    import random
    import subprocess
    import sys

    hyper = dict(hyper)
    seed = hyper.pop("seed")
    if seed:  # fastText 0.9.2 ignores `seed` in unsupervised training: vary the line order instead
        lines = lines[:]
        random.Random(seed).shuffle(lines)
    if not lines:
        raise HarnessError("no text to train fastText vectors on: the text resource is empty")
    fd, name = tempfile.mkstemp(prefix=".train.", suffix=".txt", dir=workdir)
    out = Path(name).with_suffix(".bin")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        job = json.dumps({"input": name, "thread": threads, "hyper": hyper, "out": str(out)})
        proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, job], capture_output=True, text=True)
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            hint = (f"the text is too small for min_count={hyper['minCount']}: lower min_count or add text"
                    if "vocabulary" in err else "lower lr")
            raise HarnessError(f"fastText training failed ({err}): {hint}")
        return out
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        os.unlink(name)

