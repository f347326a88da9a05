"""Cache integrity (issue #20): sealed cache entries, content-hashed local inputs, no debris after kill -9.

Every test points HARNESS_CACHE at its own tmp_path, builds the real entry from tiny inputs, damages a
file of it and reads it again through the harness.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import util
from harness.util import HarnessError, atomic_dir, read_entry, seal_path

from tests.conftest import write_beir
from tests.test_static_vectors import SMALL, _processes_mentioning, _wait_for, two_topic_corpus

CORRUPT = "is corrupt ("


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def truncate(path: Path, keep: float = 0.5) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * keep))


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if CORRUPT in line]


# --------------------------------------------------------------------------------------------
# The mechanism (harness.util)
# --------------------------------------------------------------------------------------------
def _entry(tmp_path: Path) -> Path:
    path = tmp_path / "entry"
    with atomic_dir(path, sealed=True) as tmp:
        (tmp / "a.txt").write_text("alpha " * 100)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(bytes(range(256)))
    return path


def _read(path: Path) -> str:
    return (path / "a.txt").read_text() + (path / "sub" / "b.bin").read_bytes().hex()


@pytest.mark.parametrize("damage, why", [
    (lambda p: truncate(p / "sub" / "b.bin"), "sub/b.bin: 128 bytes, sealed with 256"),
    (lambda p: flip_last_byte(p / "a.txt"), "a.txt: content differs from the seal (sha256)"),
    (lambda p: (p / "a.txt").unlink(), "a.txt: missing"),
    (lambda p: (p / "extra").write_text("x"), "extra: not in the seal"),
    (lambda p: [(p / "sub" / "b.bin").unlink(), (p / "sub").rmdir(), (p / "sub").symlink_to(p)],
     "sub/b.bin: missing"),
    (lambda p: [(p / "a.txt").unlink(), (p / "a.txt").mkdir()], "a.txt: a folder, sealed as a file"),
])
def test_a_damaged_sealed_entry_is_reported_removed_and_not_loaded(tmp_path, capsys, damage, why):
    path = _entry(tmp_path)
    assert read_entry(path, _read) == "alpha " * 100 + bytes(range(256)).hex()
    damage(path)
    assert read_entry(path, _read) is None
    assert corrupt_lines(capsys.readouterr().err) == [f"cache entry {path} is corrupt ({why}): rebuilding"]
    assert not path.exists() and not list(tmp_path.glob(".entry*"))  # removed, nothing parked


def test_an_entry_that_cannot_be_derived_names_the_command(tmp_path):
    path = _entry(tmp_path)
    truncate(path / "a.txt")
    with pytest.raises(HarnessError, match=r"cache entry .*entry is corrupt \(a.txt: 300 bytes, sealed with 600\): "
                                           r"delete it and re-run harness fetch$"):
        read_entry(path, _read, command="harness fetch")
    assert path.exists()  # not ours to remove


def test_an_unsealed_entry_is_accepted_once_and_sealed(tmp_path, capsys):
    path = _entry(tmp_path)
    seal_path(path).unlink()  # as written before seals existed
    assert read_entry(path, _read) is not None and seal_path(path).exists()
    truncate(path / "a.txt")
    assert read_entry(path, _read) is None and CORRUPT in capsys.readouterr().err


def test_an_unsealed_entry_that_fails_to_load_is_corrupt(tmp_path, capsys):
    path = tmp_path / "legacy.json"
    path.write_text('{"half": ')
    assert read_entry(path, util.read_json) is None and not path.exists()
    assert "(unreadable: JSONDecodeError" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# fastText vectors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("legacy", [False, True], ids=["sealed", "written-before-seals"])
def test_a_truncated_fasttext_model_is_never_used(cache, capsys, legacy):
    from harness.static_vectors import train_static_vectors

    texts = two_topic_corpus()
    first = train_static_vectors(texts, **SMALL)
    if legacy:
        seal_path(first.path).unlink()
    truncate(first.path, 40 / 87)  # the cut: fastText itself loads this without complaint
    again = train_static_vectors(texts, **SMALL)
    assert not again.cached and again.path == first.path  # retrained, not loaded
    assert np.array_equal(again.vector("qwkzx"), first.vector("qwkzx"))
    (line,) = corrupt_lines(capsys.readouterr().err)
    assert line.startswith(f"cache entry {first.path} is corrupt ({first.path.name}: ") and line.endswith("rebuilding")
    assert train_static_vectors(texts, **SMALL).cached and seal_path(first.path).exists()


# --------------------------------------------------------------------------------------------
# Collections (cache/datasets)
# --------------------------------------------------------------------------------------------
def _spec(builds: list):
    from harness.data.base import Collection, DatasetSpec

    def build():
        builds.append(1)
        corpus = {f"d{i}": f"document {i} text" for i in range(348)}
        return Collection("tiny-ko", "ko", corpus, {"q1": "document"}, {"q1": {"d1": 1}}, "test", "CC0")

    return DatasetSpec("tiny-ko", "ko", "test collection", "test", "CC0", build)


@pytest.mark.parametrize("legacy", [False, True], ids=["sealed", "written-before-seals"])
def test_a_cut_corpus_is_rebuilt_even_in_an_old_cache(capsys, legacy):
    builds: list = []
    assert len(_spec(builds).build().corpus) == 348
    path = next(Path(os.environ["HARNESS_CACHE"], "datasets", "tiny-ko").iterdir())
    if legacy:
        seal_path(path).unlink()
    corpus = path / "corpus.jsonl"
    corpus.write_text("".join(corpus.read_text().splitlines(keepends=True)[:300]))  # whole lines: valid JSONL
    assert len(_spec(builds).build().corpus) == 348 and len(builds) == 2
    why = "corpus.jsonl: 300 rows, meta.json says 348" if legacy else "corpus.jsonl: "
    assert f"cache entry {path} is corrupt ({why}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Tokenizers, the me5 build, Debian unpacks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe, legacy", [("wordpiece-bert", False), ("unigram", True)],
                         ids=["sealed", "written-before-seals"])
def test_a_truncated_tokenizer_is_retrained(capsys, recipe, legacy):
    from harness.target_tokenizer import cached_tokenizer

    texts = [f"문서 {i} 번째 페이지 도움말 내용 설명" for i in range(200)]
    tok, path = cached_tokenizer("ko", texts, recipe, 120)
    if legacy:
        seal_path(path).unlink()
    truncate(path / "tokenizer.json")
    again, same = cached_tokenizer("ko", texts, recipe, 120)
    assert same == path and set(again.get_vocab()) == set(tok.get_vocab())  # (ids: the trainer breaks ties freely)
    assert f"cache entry {path} is corrupt (" in capsys.readouterr().err


def test_truncated_me5_weights_are_rebuilt(cache, capsys):
    from harness.pocket_models import _cached_me5_dir, me5_small_dir, model_dir_problem

    target = me5_small_dir()
    weights = target / "model.safetensors"
    size = weights.stat().st_size
    truncate(weights, 0.25)
    assert model_dir_problem(target) == f"model.safetensors: {size // 4} bytes, its header describes {size}"
    _cached_me5_dir.cache_clear()  # a new process
    assert me5_small_dir() == target and weights.stat().st_size == size
    assert f"cache entry {target} is corrupt (model.safetensors: {size // 4} bytes, sealed with {size})" \
        in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_a_damaged_debian_unpack_is_unpacked_again(cache, capsys):
    from harness.data import debian

    debs = sorted(Path.home().joinpath(".cache/harness/debian/debs").glob("dict-freedict-eng-rus_*.deb"))
    if not debs:
        pytest.skip("the dict-freedict-eng-rus .deb is not in the harness cache (harness fetch)")
    shutil.copy(debs[0], debian.cache_dir("debian", "debs"))  # a copy: the shared cache stays untouched
    root = debian.ensure_package("dict-freedict-eng-rus")
    victim = max((p for p in root.rglob("*") if p.is_file() and not p.is_symlink()), key=lambda p: p.stat().st_size)
    good = victim.read_bytes()
    truncate(victim)
    debian._VERIFIED.clear()  # a new process
    assert debian.ensure_package("dict-freedict-eng-rus") == root and victim.read_bytes() == good
    assert f"cache entry {root} is corrupt ({victim.relative_to(root)}: " in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Training checkpoints
# --------------------------------------------------------------------------------------------
def test_a_truncated_checkpoint_restarts_training_with_the_same_result(tmp_path, capsys):
    import torch

    from tests.test_train import _strip_wall, _train_tiny

    torch.set_num_threads(1)
    work = tmp_path / "work"
    first = _train_tiny(work, tmp_path / "first.pt")
    truncate(work / "checkpoint" / "state.pt")
    second = _train_tiny(work, tmp_path / "second.pt")  # the finished result is not trusted without weights
    assert second["resumed_from_steps"] == [] and _strip_wall(second["curve"]) == _strip_wall(first["curve"])
    wa, wb = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("first", "second"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    (line,) = corrupt_lines(capsys.readouterr().err)
    assert line.startswith(f"cache entry {work / 'checkpoint'} is corrupt (state.pt: ")
    assert line.endswith("training goes on without it (an older checkpoint or step 0)")


# --------------------------------------------------------------------------------------------
# Run ids follow the content of local inputs
# --------------------------------------------------------------------------------------------
def _beir(folder: Path, judged: list[str]) -> Path:
    return write_beir(folder, {f"d{i}": f"doc {i}" for i in range(3)}, {"q1": "doc"}, {"q1": judged})


def test_editing_a_beir_folder_gives_a_new_run_id(tmp_path):
    from harness.pipeline import plan_runs
    from harness.runs import run_id

    folder = _beir(tmp_path / "mine", ["d1"])

    def ids(*extra):
        runs = plan_runs("pocket", [f"dataset=beir:{folder}", *extra], method="random", lang="ko", seed=0,
                         settings=["zero-shot"])
        return run_id(runs[0]), runs[0]

    before, run = ids()
    assert set(run["dataset_hash"]) and "source_model_hash" not in run  # pocket:splade-tiny adds nothing
    assert ids()[0] == before  # same content, same id
    _beir(folder, ["d1", "d2"])  # the qrels edited
    assert ids()[0] != before
    registry = plan_runs("pocket", [], method="random", lang="ko", seed=0, settings=["zero-shot", "fine-tuned"])
    assert not [k for r in registry for k in r if k.endswith("_hash")]


def test_a_reference_on_an_edited_beir_folder_is_a_new_record(tmp_path):
    """The issue's case: after the qrels were edited, bm25 said "already recorded" with the old score."""
    from harness.references import evaluate_reference

    folder = _beir(tmp_path / "mine", ["d0"])
    runs_dir, messages = str(tmp_path / "runs"), []
    first = evaluate_reference("bm25-lite", f"beir:{folder}", runs_dir=runs_dir, echo=messages.append)
    _beir(folder, ["d0", "d1", "d2"])
    second = evaluate_reference("bm25-lite", f"beir:{folder}", runs_dir=runs_dir, echo=messages.append)
    assert second["run_id"] != first["run_id"] and not any("already recorded" in m for m in messages)
    assert second["metrics"]["recall@100"] == 1.0


def test_a_local_model_directory_enters_the_run_by_content(tmp_path):
    from harness.pipeline import plan_runs
    from harness.pocket_models import splade_tiny_dir

    model = tmp_path / "model"
    shutil.copytree(splade_tiny_dir(), model)

    def model_hash():
        return plan_runs("pocket", [f"source_model={model}"], method="random", lang="ko", seed=0,
                         settings=["zero-shot"])[0]["source_model_hash"]

    before = model_hash()
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    assert model_hash() != before


# --------------------------------------------------------------------------------------------
# kill -9: the fastText child dies with its parent, and the next start sweeps the debris
# --------------------------------------------------------------------------------------------
KILLED_TRAINING = """
import sys
sys.path.insert(0, {root!r})
from harness.static_vectors import train_static_vectors
from tests.test_static_vectors import two_topic_corpus
train_static_vectors(two_topic_corpus(20_000), dim=64, epochs=500, min_count=1)
"""


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="looks for processes in /proc")
def test_kill_9_of_the_harness_ends_the_fasttext_child_and_the_next_start_sweeps(cache):
    from harness.static_vectors import train_static_vectors

    script = KILLED_TRAINING.format(root=str(Path(__file__).parent.parent))
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "HARNESS_CACHE": str(cache)})
    workdir = cache / "fasttext"
    try:
        assert _wait_for(lambda: any(workdir.glob(".train.*.txt")) and _processes_mentioning(str(workdir)))
        parent.send_signal(signal.SIGKILL)
        assert _wait_for(lambda: not _processes_mentioning(str(workdir)), seconds=5), "fastText child orphaned"
        debris = sorted(p.name for p in workdir.iterdir())
        assert debris and all(name.startswith(".train.") for name in debris)  # kill -9 skips every finally
        train_static_vectors(two_topic_corpus(), **SMALL)  # the next start
        assert not list(workdir.glob(".*"))
    finally:  # whatever failed, leave no training behind
        parent.kill()
        parent.wait()
        for pid in _processes_mentioning(str(workdir)):
            os.kill(pid, signal.SIGKILL)


KILLED_WRITE = """
import os, signal, sys
sys.path.insert(0, {root!r})
from harness.util import atomic_dir
with atomic_dir({target!r}) as tmp:
    (tmp / "state.pt").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_write_killed_midway_is_swept_by_the_next_write(tmp_path):
    target = tmp_path / "train" / "checkpoint"
    script = KILLED_WRITE.format(root=str(Path(__file__).parent.parent), target=str(target))
    assert subprocess.run([sys.executable, "-c", script]).returncode == -signal.SIGKILL
    (left,) = (tmp_path / "train").iterdir()
    assert left.name.startswith(".checkpoint.pid") and left.name.endswith(".tmp")
    live = tmp_path / "train" / f"{util.owned_prefix('other')}x.tmp"  # this process's: alive, kept
    live.write_text("in progress")
    with atomic_dir(target) as tmp:
        (tmp / "state.pt").write_bytes(b"whole")
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == sorted(["checkpoint", live.name])


def _build_once(entry: str, log: str, start: float) -> str:
    """A spawned process: read the entry, else build it (slowly) under the lock; log every build."""
    import time

    from harness.util import read_or_build

    time.sleep(max(0.0, start - time.time()))  # both processes ask at the same moment

    def build() -> str:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        util.write_text_atomic(entry, "built")
        return "built"

    return read_or_build(entry, lambda: Path(entry).read_text() if Path(entry).exists() else None, build)


def test_two_processes_needing_one_entry_build_it_once(tmp_path):
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    entry, log = tmp_path / "entry.txt", tmp_path / "builds.log"
    start = time.time() + 2.0
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_build_once, [str(entry)] * 2, [str(log)] * 2, [start] * 2))
    assert results == ["built", "built"]
    assert len(log.read_text().split()) == 1  # the second process waited and read the first one's entry


def test_concurrent_tokenizer_builds_train_once(monkeypatch):
    """Two threads asking for the same WordPiece (as two sweep workers do) train it once."""
    import threading

    from harness import target_tokenizer

    calls, real = [], target_tokenizer.train_wordpiece

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(target_tokenizer, "train_wordpiece", counted)
    texts = [f"the cat {i} sat on the mat number {i % 7}" for i in range(200)]
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(target_tokenizer.cached_wordpiece("en", texts, 200)[1]))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(paths) == 2 and paths[0] == paths[1]
