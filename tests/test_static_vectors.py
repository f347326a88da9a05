"""harness.static_vectors: local fastText training, the content-keyed cache, the vector API."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.api import HarnessError, tokenizer_signature, train_static_vectors

SMALL = dict(dim=16, epochs=20, lr=0.2, min_count=3, bucket=20_000)  # a tiny corpus needs a large lr
SUN = ["sun0", "sun1", "qwkzx", "jhpvb"]  # two topics; words of a topic share no spelling
RAIN = ["rain0", "rain1", "mfolt", "yducr"]


def two_topic_corpus(n_lines: int = 300, seed: int = 0) -> list[str]:
    """Lines drawn from one of two disjoint word sets: co-occurrence should separate them."""
    rng = random.Random(seed)
    return [" ".join(rng.choice((SUN, RAIN)[i % 2]) for _ in range(12)) for i in range(n_lines)]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    return tmp_path


def test_train_vocabulary_vectors_and_topics():
    v = train_static_vectors(two_topic_corpus(), **SMALL)
    assert set(v.words) == set(SUN + RAIN)
    assert v.has("qwkzx") and not v.has("snow") and v.dim == 16
    m = v.matrix(SUN[2:] + RAIN[2:])
    assert np.allclose(np.linalg.norm(m, axis=1), 1, atol=1e-5)
    sims = m @ m.T
    assert min(sims[0, 1], sims[2, 3]) > max(sims[:2, 2:].max(), 0.0) + 0.2  # same topic is closer
    # char n-grams: an unseen word built from seen pieces has a vector; unseen characters do not
    assert v.known("sun9") and not v.has("sun9") and np.abs(v.vector("sun9")).sum() > 0
    assert not v.known("ZZZZ") and np.abs(v.vector("ZZZZ")).sum() == 0 and np.allclose(v.matrix(["ZZZZ", ""]), 0)


def test_cache_reuse_and_key(cache):
    texts = two_topic_corpus()
    first = train_static_vectors(texts, **SMALL)
    again = train_static_vectors(texts, **SMALL)
    assert not first.cached and first.seconds > 0 and first.path.exists() and first.path.parent.name == "fasttext"
    assert again.cached and again.path == first.path
    assert np.array_equal(first.vector("qwkzx"), again.vector("qwkzx"))
    other = train_static_vectors(texts, **{**SMALL, "neg": 5})  # any hyper-parameter changes the key
    assert not other.cached and other.path != first.path
    assert not list(cache.joinpath("fasttext").glob(".*"))  # no temporary files left behind


def test_seed_is_part_of_the_key():
    texts = two_topic_corpus()
    a = train_static_vectors(texts, **SMALL)
    b = train_static_vectors(texts, seed=1, **SMALL)
    assert not b.cached and a.path != b.path and b.has("qwkzx")


def test_tokenize_and_cache_key():
    texts = ["sunny-rainy " * 5] * 20
    def split(t):
        return t.replace("-", " - ").split()
    keyed = train_static_vectors(texts, tokenize=split, cache_key="split-v1", **SMALL)
    assert keyed.has("-") and keyed.has("sunny") and not keyed.has("sunny-rainy")
    # without a cache key the tokenized text itself is the key: a different tokenizer, a new model
    unkeyed = train_static_vectors(texts, tokenize=str.split, **SMALL)
    assert unkeyed.has("sunny-rainy") and unkeyed.path != keyed.path


def test_tokenizer_signature_changes_with_vocabulary():
    from conftest import make_wordpiece

    assert tokenizer_signature(make_wordpiece(["a", "b"])) == tokenizer_signature(make_wordpiece(["a", "b"]))
    assert tokenizer_signature(make_wordpiece(["a", "b"])) != tokenizer_signature(make_wordpiece(["a", "c"]))


def test_too_little_text_is_a_clear_error():
    with pytest.raises(HarnessError, match="min_count"):
        train_static_vectors(["only once"], **SMALL)
    with pytest.raises(HarnessError, match="empty"):
        train_static_vectors(["", "  "], **SMALL)


def test_identical_trainings_give_identical_vectors():
    """Each training runs in a fresh process: in one process fastText leaks state between runs."""
    texts = two_topic_corpus()
    runs = [train_static_vectors(texts, cache=False, **SMALL) for _ in range(4)]
    first = runs[0].matrix(SUN + RAIN)
    for other in runs[1:]:
        assert np.array_equal(other.matrix(SUN + RAIN), first)


TERMINATED_TRAINING = """
import sys
from harness.util import exit_on_sigterm
from harness.static_vectors import train_static_vectors
sys.path.insert(0, {tests!r})
from test_static_vectors import two_topic_corpus
exit_on_sigterm()
train_static_vectors(two_topic_corpus(20_000), dim=64, epochs=500, min_count=1)
"""


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            pass
    return found


def _wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="looks for processes in /proc")
def test_sigterm_stops_the_training_child_and_removes_temporary_files(cache):
    """kill (SIGTERM) during training: exit 143, no orphaned fastText process, no temporary files."""
    script = TERMINATED_TRAINING.format(tests=str(Path(__file__).parent))
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "HARNESS_CACHE": str(cache)})
    workdir = cache / "fasttext"
    try:
        assert _wait_for(lambda: any(workdir.glob(".train.*.txt")) and _processes_mentioning(str(workdir)))
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 143
        assert _wait_for(lambda: not _processes_mentioning(str(workdir)), seconds=10), "fastText child orphaned"
        assert list(workdir.iterdir()) == []
    finally:  # whatever failed, leave no training behind
        parent.kill()
        for pid in _processes_mentioning(str(workdir)):
            os.kill(pid, signal.SIGKILL)
