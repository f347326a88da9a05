"""Sharded, resumable index building on a tiny random BERT (built here, no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from harness.encoder import SpladeEncoder
from harness.index import MANIFEST, build_index, load_index, shard_name
from harness.util import HarnessError, read_json
from test_encoder import WORDS, tiny_bert, tiny_wordpiece

N_DOCS, SHARD = 23, 4  # 6 shards, the last one short


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def encoder():
    tok = tiny_wordpiece()
    return SpladeEncoder(tiny_bert(len(tok)), tok, device="cpu", query_max_length=16, doc_max_length=32)


def corpus(n: int = N_DOCS) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]
    return texts, [f"d{i:03d}" for i in range(n)]


def same(a, b) -> bool:
    a, b = a.tocsr(), b.tocsr()
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data))


def test_uninterrupted_build_matches_one_shot_encoding(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, batch_size=3)
    docs, doc_ids = load_index(tmp_path / "idx")
    assert doc_ids == ids and docs.shape == (N_DOCS, encoder.vocab_size) and docs.nnz > 0
    whole = encoder.encode(texts, kind="document", batch_size=3)
    np.testing.assert_allclose(docs.toarray(), whole.toarray(), rtol=1e-5, atol=1e-6)
    manifest = read_json(tmp_path / "idx" / MANIFEST)
    assert manifest["complete"] and len(manifest["shards"]) == 6
    assert sum(s["nnz"] for s in manifest["shards"].values()) == docs.nnz


def test_interrupted_build_resumes_without_recomputing(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "ref", shard_size=SHARD)
    reference, _ = load_index(tmp_path / "ref")

    def stop_after_three(i: int, n: int) -> None:
        if i == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, on_shard=stop_after_three)
    with pytest.raises(HarnessError, match="incomplete .3/6 shards"):
        load_index(tmp_path / "idx")
    first = {i: (tmp_path / "idx" / shard_name(i)).stat().st_mtime_ns for i in range(3)}
    assert not (tmp_path / "idx" / shard_name(3)).exists()

    computed: list[int] = []
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, on_shard=lambda i, n: computed.append(i))
    assert computed == [3, 4, 5]  # shards 0-2 were not encoded again
    assert {i: (tmp_path / "idx" / shard_name(i)).stat().st_mtime_ns for i in range(3)} == first
    docs, doc_ids = load_index(tmp_path / "idx")
    assert same(docs, reference) and doc_ids == ids

    computed.clear()  # a complete index: nothing to do
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, on_shard=lambda i, n: computed.append(i))
    assert computed == []


def test_a_listed_shard_whose_file_vanished_is_rebuilt(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD)
    reference, _ = load_index(tmp_path / "idx")
    (tmp_path / "idx" / shard_name(1)).unlink()
    computed: list[int] = []
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, on_shard=lambda i, n: computed.append(i))
    assert computed == [1] and same(load_index(tmp_path / "idx")[0], reference)


def test_other_corpus_or_encoder_is_refused(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts[:8], ids[:8], tmp_path / "idx", shard_size=SHARD)
    with pytest.raises(HarnessError, match="different n_docs, doc_ids_hash"):
        build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD)
    with pytest.raises(HarnessError, match="different shard_size"):
        build_index(encoder, texts[:8], ids[:8], tmp_path / "idx", shard_size=3)
    tok = tiny_wordpiece()
    other = SpladeEncoder(tiny_bert(len(tok), seed=1), tok, device="cpu", doc_max_length=32)
    with pytest.raises(HarnessError, match="different encoder"):
        build_index(other, texts[:8], ids[:8], tmp_path / "idx", shard_size=SHARD)


def test_shards_are_plain_scipy_npz(encoder, tmp_path):
    texts, ids = corpus(5)
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD)
    shard = sp.load_npz(tmp_path / "idx" / shard_name(1))
    assert shard.shape == (1, encoder.vocab_size) and shard.dtype == np.float32
    assert not list((tmp_path / "idx").glob(".*tmp"))  # no temp files left behind


def test_bad_input_and_missing_index(encoder, tmp_path):
    with pytest.raises(HarnessError, match="2 texts but 1 doc ids"):
        build_index(encoder, ["a", "b"], ["x"], tmp_path / "idx")
    with pytest.raises(HarnessError, match="not an index"):
        load_index(tmp_path / "nothing")


def test_ranks_share_a_build_and_match_a_single_process(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "one", shard_size=SHARD)
    reference, _ = load_index(tmp_path / "one")
    written = []
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, rank=1, world=2,
                on_shard=lambda i, n: written.append(i))
    assert written == [1, 3, 5]
    with pytest.raises(HarnessError, match="incomplete"):  # rank 0 has not run yet
        load_index(tmp_path / "idx")
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, rank=0, world=2,
                on_shard=lambda i, n: written.append(i))
    assert written == [1, 3, 5, 0, 2, 4]
    docs, doc_ids = load_index(tmp_path / "idx")
    assert doc_ids == ids and same(docs, reference)
    assert read_json(tmp_path / "idx" / MANIFEST)["shards"] == read_json(tmp_path / "one" / MANIFEST)["shards"]


def test_a_killed_rank_is_finished_by_the_next_build(encoder, tmp_path):
    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "one", shard_size=SHARD)
    reference, _ = load_index(tmp_path / "one")

    def die_after_first(i: int, n: int) -> None:
        raise Interrupt

    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, rank=1, world=2)
    with pytest.raises(Interrupt):
        build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, rank=0, world=2, on_shard=die_after_first)
    written = []  # a single-process build picks up exactly the two shards rank 0 left
    build_index(encoder, texts, ids, tmp_path / "idx", shard_size=SHARD, on_shard=lambda i, n: written.append(i))
    assert written == [2, 4]
    docs, _ = load_index(tmp_path / "idx")
    assert same(docs, reference)


def test_rank_outside_world_is_refused(encoder, tmp_path, monkeypatch):
    texts, ids = corpus()
    with pytest.raises(HarnessError, match="rank 2 of world 2"):
        build_index(encoder, texts, ids, tmp_path / "idx", rank=2, world=2)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HarnessError, match="RANK / WORLD_SIZE"):
        build_index(encoder, texts, ids, tmp_path / "idx")


RANK_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from harness.encoder import SpladeEncoder
from harness.index import build_index
from test_encoder import tiny_bert, tiny_wordpiece
from test_index import corpus
tok = tiny_wordpiece()
encoder = SpladeEncoder(tiny_bert(len(tok)), tok, device="cpu", query_max_length=16, doc_max_length=32)
texts, ids = corpus()
build_index(encoder, texts, ids, {out!r}, shard_size={shard})
"""


def test_two_concurrent_processes_build_one_index(encoder, tmp_path):
    """torchrun-style: RANK / WORLD_SIZE from the environment, both processes running at once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    texts, ids = corpus()
    build_index(encoder, texts, ids, tmp_path / "one", shard_size=SHARD)
    reference, _ = load_index(tmp_path / "one")
    script = RANK_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "idx"), shard=SHARD)
    procs = [subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2"},
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    docs, doc_ids = load_index(tmp_path / "idx")
    assert doc_ids == ids and same(docs, reference)
    assert read_json(tmp_path / "idx" / MANIFEST)["complete"]


def test_pipeline_evaluation_through_the_on_disk_index_matches_in_memory(encoder, tmp_path):
    from harness.config import load_config, run_config
    from harness.data.base import Collection
    from harness.pipeline import evaluate_encoder

    texts, ids = corpus()
    queries = {f"q{i}": " ".join(texts[i].split()[:2]) for i in range(0, N_DOCS, 3)}
    qrels = {f"q{i}": {ids[i]: 1} for i in range(0, N_DOCS, 3)}
    collection = Collection("toy", "xx", dict(zip(ids, texts)), queries, qrels, "here", "CC0")
    run = run_config(load_config("pocket"), method="eval", method_params={}, lang="xx", seed=0, setting="zero-shot")
    run["encode.batch_size"] = 4
    memory, ranking = evaluate_encoder(run, encoder, collection, show_progress=False)
    disk, disk_ranking = evaluate_encoder(run, encoder, collection, show_progress=False, index_dir=tmp_path / "idx")
    assert disk.mean == memory.mean and disk_ranking == ranking
    assert read_json(tmp_path / "idx" / MANIFEST)["complete"]
