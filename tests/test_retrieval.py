"""Exact sparse search against brute-force dense dot products."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from harness.retrieval import default_chunk_size, search, top_k_row


def random_sparse(rng, n, dim, density, *, integer=True):
    """Non-negative sparse rows; small integer weights make many exact score ties."""
    m = sp.random(n, dim, density=density, format="csr", random_state=rng, dtype=np.float32)
    if integer:
        m.data = rng.integers(1, 4, size=m.nnz).astype(np.float32)
    return m


def brute_force(queries, docs, k, doc_ids, query_ids):
    """Dense float64 scores; sort by (score desc, doc id asc); drop non-positive."""
    scores = queries.toarray().astype(np.float64) @ docs.toarray().astype(np.float64).T
    run = {}
    for qi, qid in enumerate(query_ids):
        ranked = sorted(
            ((float(s), doc_ids[d]) for d, s in enumerate(scores[qi]) if s > 0), key=lambda p: (-p[0], p[1])
        )
        run[qid] = {d: s for s, d in ranked[:k]}
    return run


def assert_same_run(got, want, rel=1e-5):
    assert list(got) == list(want)
    for qid in want:
        assert list(got[qid]) == list(want[qid]), qid  # same documents in the same order
        assert list(got[qid].values()) == pytest.approx(list(want[qid].values()), rel=rel)


@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_matches_brute_force_with_ties(chunk_size):
    rng = np.random.default_rng(0)
    docs, queries = random_sparse(rng, 300, 50, 0.08), random_sparse(rng, 40, 50, 0.1)
    # ids whose string order differs from index order, so the id tie-break is really exercised
    doc_ids = [f"d{(i * 37) % 300}" for i in range(300)]
    query_ids = [f"q{i}" for i in range(40)]
    got = search(queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids, chunk_size=chunk_size, device="cpu")
    want = brute_force(queries, docs, 10, doc_ids, query_ids)
    assert_same_run(got, want)
    n_ties = sum(len(set(r.values())) < len(r) for r in want.values())
    assert n_ties > 10  # the data really has ties at the cut


def test_real_valued_scores_and_large_k():
    rng = np.random.default_rng(1)
    docs, queries = random_sparse(rng, 200, 80, 0.05, integer=False), random_sparse(rng, 15, 80, 0.2, integer=False)
    doc_ids, query_ids = [str(i) for i in range(200)], [str(i) for i in range(15)]
    got = search(queries, docs, 1000, doc_ids=doc_ids, query_ids=query_ids, device="cpu")
    assert_same_run(got, brute_force(queries, docs, 1000, doc_ids, query_ids))


def test_negative_and_zero_scores_are_dropped():
    docs = sp.csr_matrix(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    queries = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    run = search(queries, docs, 5, doc_ids=["a", "b", "c"], query_ids=["q1", "q2"], device="cpu")
    assert run == {"q1": {"a": 1.0}, "q2": {}}


def test_top_k_row_tie_break_by_id_rank():
    cols = np.array([0, 1, 2, 3])
    scores = np.array([2.0, 5.0, 2.0, 2.0], dtype=np.float32)
    rank = np.array([2, 0, 3, 1])  # doc 3 has the smallest id among the tied ones
    assert top_k_row(cols, scores, 3, rank) == [(1, 5.0), (3, 2.0), (0, 2.0)]


def test_chunk_size_bounds_the_score_block():
    assert default_chunk_size(1_000_000, 1 << 30, 16) == 67
    assert default_chunk_size(10, 1 << 30, 16) == 4096
    assert default_chunk_size(10**12, 1 << 30, 16) == 1


def test_bad_inputs_raise():
    docs, queries = sp.csr_matrix((3, 4), dtype=np.float32), sp.csr_matrix((1, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="dimensions"):
        search(queries, docs, doc_ids=["a", "b", "c"], query_ids=["q"])
    with pytest.raises(ValueError, match="unique"):
        search(sp.csr_matrix((1, 4)), docs, doc_ids=["a", "a", "c"], query_ids=["q"])


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(2)
    docs, queries = random_sparse(rng, 500, 64, 0.06), random_sparse(rng, 30, 64, 0.1)
    doc_ids, query_ids = [f"d{i}" for i in range(500)], [f"q{i}" for i in range(30)]
    cpu = search(queries, docs, 20, doc_ids=doc_ids, query_ids=query_ids, device="cpu")
    gpu = search(queries, docs, 20, doc_ids=doc_ids, query_ids=query_ids, device="cuda", chunk_size=8)
    assert_same_run(gpu, cpu)
