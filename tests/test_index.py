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
