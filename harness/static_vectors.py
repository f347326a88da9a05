"""Static (fastText) vectors trained locally, cached on disk by content.

No pretrained fastText model for our languages exists in any package registry, so FOCUS and the
WECHSEL-style methods (wechsel, ramen) train their own. The WECHSEL-style pieces live here too: the
word tokenization the word vectors are trained on, orthogonal Procrustes on a bilingual dictionary
(or identical strings), and the text of each vocabulary entry. fastText and torch are imported inside functions so that
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
import re
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.util import (HarnessError, cache_dir, content_hash, owned_prefix, read_entry, read_or_build, seal, sweep_stale,
                          write_json_atomic)

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

    def train() -> StaticVectors:
        return _train_vectors(path, lines if lines is not None else _lines(texts, tokenize), hyper, threads,
                              cache=cache)

    def read() -> StaticVectors | None:
        model = read_entry(path, _load_model, check=fasttext_problem)
        return None if model is None else StaticVectors(model, path, 0.0, True, hyper)

    return read_or_build(path, read, train) if cache else train()


def _train_vectors(path: Path, lines: list[str], hyper: dict[str, Any], threads: int, *, cache: bool) -> StaticVectors:
    """Train fastText on ``lines``; with ``cache`` the model is kept (sealed) at ``path``."""
    start = time.perf_counter()
    trained = _train(lines, hyper, threads, path.parent)
    seconds = time.perf_counter() - start
    if not cache:
        try:
            return StaticVectors(_load_model(trained), trained, seconds, False, hyper)
        finally:
            trained.unlink()
    write_json_atomic(path.with_suffix(".json"), {"hyper": hyper, "seconds": seconds, "lines": len(lines)})
    os.replace(trained, path)
    seal(path)
    return StaticVectors(_load_model(path), path, seconds, False, hyper)


def _load_model(path: Path) -> Any:
    import fasttext

    return fasttext.load_model(str(path))


_MAGIC, _VERSION = 793712314, 12  # fastText's model file signature (0.9.x)


def fasttext_problem(path: Path) -> str | None:
    """Why a fastText ``.bin`` is not whole, or None; reads its header and two matrix headers only.

    fastText loads a truncated file without complaint (the missing rows become garbage), so the
    layout is checked: header, dictionary, input matrix (words + buckets) x dim, output words x dim.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(92)
        if len(head) < 92 or struct.unpack_from("<2i", head) != (_MAGIC, _VERSION):
            return f"{path.name}: not a fastText {_VERSION} model file"
        dim, bucket = struct.unpack_from("<i", head, 8)[0], struct.unpack_from("<i", head, 40)[0]
        nwords = struct.unpack_from("<i", head, 68)[0]
        output_at = size - (17 + 4 * dim * nwords)
        input_at = output_at - (17 + 4 * dim * (nwords + bucket))
        for offset, rows in ((input_at, nwords + bucket), (output_at, nwords)):
            f.seek(max(offset, 0))
            if offset < 92 or struct.unpack("<?qq", f.read(17)) != (False, rows, dim):
                return f"{path.name}: {size} bytes do not hold its {nwords} words x {dim} dimensions (truncated?)"
    return None


# The child dies with the harness, even by kill -9: PR_SET_PDEATHSIG, set by the child itself (a
# preexec_fn is unsafe in a process with threads, as torch's), then a check that the parent did not
# die before it took effect.
_TRAIN_SCRIPT = """
import ctypes, json, os, signal, sys
job = json.loads(sys.argv[1])
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != job["parent"]:
        sys.exit("the harness process that started this training is gone")
import fasttext
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
    sweep_stale(workdir)  # training files of a harness killed earlier (kill -9 skips every finally)
    fd, name = tempfile.mkstemp(prefix=owned_prefix("train"), suffix=".txt", dir=workdir)
    out = Path(name).with_suffix(".bin")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        job = json.dumps({"input": name, "thread": threads, "hyper": hyper, "out": str(out), "parent": os.getpid()})
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



# --------------------------------------------------------------------------------------------
# WECHSEL-style alignment of two word-vector spaces (shared by the wechsel and ramen methods)
# --------------------------------------------------------------------------------------------
_HAN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+|[^\w\s]")  # numbers, letter runs, single symbols


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


def align_vectors(src: StaticVectors, tgt: StaticVectors, entries: list[tuple[str, str]] | None, *,
                  reason: str = "", lowercase: bool = True, min_pairs: int = 50,
                  require_dictionary: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Procrustes map from the source to the target space, and how it was obtained.

    ``entries`` is the bilingual dictionary (None where none exists, ``reason`` saying why). With
    fewer than ``min_pairs`` usable pairs the words spelled identically in both vocabularies are
    added (the "identical strings" supervision of Artetxe et al. 2017 / MUSE), unless
    ``require_dictionary``.
    """
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
    """Each vocabulary entry decoded alone, word-start/continuation markers removed."""
    texts = []
    for i in range(n):
        text = tokenizer.decode([i]).strip()
        text = text[2:] if text.startswith("##") else text
        text = text.replace("▁", "").strip()
        texts.append(text.lower() if lowercase else text)
    return texts
