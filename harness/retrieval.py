"""Exact top-k retrieval over sparse (SPLADE) vectors.

CPU: per chunk of queries, a sparse x sparse product ``Q_chunk @ D^T`` (scipy). With ``D^T`` in
CSR form this walks one posting list per query term -- an inverted index -- so the work is
sum(document frequency of the query terms), not n_docs x vocab. CUDA: ``D @ Q_chunk^T`` with
torch sparse (cuSPARSE SpMM) into a dense (n_docs x chunk) block, then top-k on the GPU.

Queries are processed in chunks sized so that the score block stays within ``score_budget_bytes``
(default 1 GiB: 1M documents -> ~90 queries per chunk on CPU). Ranking is deterministic: score
descending, then document id ascending; non-positive scores are dropped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from harness.device import resolve_device

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse

SCORE_BUDGET_BYTES = 1 << 30
# A sparse score entry costs a float32 value + an int32/int64 column index (+ scipy temporaries).
SPARSE_ENTRY_BYTES = 16
DENSE_ENTRY_BYTES = 4

Run = dict[str, dict[str, float]]


def search(
    query_matrix: "scipy.sparse.csr_matrix",
    doc_matrix: "scipy.sparse.csr_matrix",
    k: int = 100,
    *,
    doc_ids: Sequence[str],
    query_ids: Sequence[str],
    chunk_size: int | None = None,
    device: str | None = None,
    score_budget_bytes: int = SCORE_BUDGET_BYTES,
) -> Run:
    """Exact top-``k`` documents per query by dot product: ``{qid: {docid: score}}`` in rank order.

    Every query id is present; a query sharing no positive score with any document maps to {}.
    """
    _check_inputs(query_matrix, doc_matrix, k, doc_ids, query_ids)
    doc_ids = [str(d) for d in doc_ids]
    query_ids = [str(q) for q in query_ids]
    doc_rank = id_ranks(doc_ids)
    use_cuda = resolve_device(device).startswith("cuda")
    entry = DENSE_ENTRY_BYTES if use_cuda else SPARSE_ENTRY_BYTES
    chunk = chunk_size or default_chunk_size(doc_matrix.shape[0], score_budget_bytes, entry)
    candidates = (_cuda_scorer if use_cuda else _cpu_scorer)(doc_matrix)
    run: Run = {}
    for start in range(0, query_matrix.shape[0], chunk):
        block = query_matrix.tocsr()[start : start + chunk]
        for offset, (cols, scores) in enumerate(candidates(block, k)):
            top = top_k_row(cols, scores, k, doc_rank)
            run[query_ids[start + offset]] = {doc_ids[c]: s for c, s in top}
    return run


def default_chunk_size(n_docs: int, budget_bytes: int = SCORE_BUDGET_BYTES, entry_bytes: int = SPARSE_ENTRY_BYTES) -> int:
    """Queries per chunk so that a (chunk x n_docs) score block fits ``budget_bytes``."""
    return max(1, min(4096, budget_bytes // max(1, n_docs * entry_bytes)))


def estimate_peak_bytes(
    n_docs: int, doc_nnz: int, vocab: int, chunk: int, *, cuda: bool = False
) -> int:
    """Rough peak memory of ``search`` beyond its inputs: the transposed index + one score block."""
    if cuda:  # CSR docs on GPU (int64 indices) + dense query chunk + dense score block
        return doc_nnz * 12 + (n_docs + 1) * 8 + chunk * vocab * 4 + chunk * n_docs * 4 * 2
    return doc_nnz * 12 + (vocab + 1) * 8 + chunk * n_docs * SPARSE_ENTRY_BYTES


# -------------------------------------------------------------------------------------------
# Ranking
# -------------------------------------------------------------------------------------------
def top_k_row(cols: "np.ndarray", scores: "np.ndarray", k: int, doc_rank: "np.ndarray", *,
              positive_only: bool = True) -> list[tuple[int, float]]:
    """The k best (doc index, score) pairs: score desc, doc id asc; scores <= 0 dropped when ``positive_only``
    (a sparse dot product of 0 means no shared term)."""
    import numpy as np

    if positive_only:
        keep = scores > 0
        cols, scores = cols[keep], scores[keep]
    if len(scores) > k:
        # Keep everything tied with the k-th score so that the id tie-break sees all of them.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        cols, scores = cols[keep], scores[keep]
    order = np.lexsort((doc_rank[cols], -scores))[:k]
    return list(zip(cols[order].tolist(), scores[order].tolist()))


def id_ranks(doc_ids: list[str]) -> "np.ndarray":
    """rank[i] = position of doc_ids[i] in ascending id order (ties broken by id, not index)."""
    import numpy as np

    order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__)
    rank = np.empty(len(doc_ids), dtype=np.int64)
    rank[order] = np.arange(len(doc_ids))
    return rank


# -------------------------------------------------------------------------------------------
# Score computation: a scorer is built once per search (the index), then called per chunk
# -------------------------------------------------------------------------------------------
def _cpu_scorer(doc_matrix: Any) -> Any:
    """D^T in CSR form (vocab x n_docs): row j is the posting list of term j."""
    import numpy as np

    index = doc_matrix.T.astype(np.float32).tocsr()

    def candidates(block: Any, k: int) -> Any:
        """Per query: (doc indices, scores) of every document sharing a term with it."""
        scores = (block.tocsr().astype(np.float32) @ index).tocsr()
        for row in range(scores.shape[0]):
            lo, hi = scores.indptr[row], scores.indptr[row + 1]
            yield scores.indices[lo:hi], scores.data[lo:hi]

    return candidates


def _cuda_scorer(doc_matrix: Any) -> Any:
    """Documents as a torch CSR tensor on the GPU; scores via SpMM into a dense block."""
    import torch

    csr = doc_matrix.tocsr()
    docs = torch.sparse_csr_tensor(
        torch.from_numpy(csr.indptr.astype("int64")),
        torch.from_numpy(csr.indices.astype("int64")),
        torch.from_numpy(csr.data.astype("float32")),
        size=csr.shape,
    ).to("cuda")

    def candidates(block: Any, k: int) -> Any:
        """Top-k on the GPU; every doc tied with the k-th score goes to the CPU tie-break."""
        queries = torch.from_numpy(block.toarray().astype("float32")).to("cuda")
        scores = torch.sparse.mm(docs, queries.T.contiguous()).T  # chunk x n_docs
        kth = scores.topk(min(k, scores.shape[1]), dim=1).values[:, -1:]
        rows, cols = ((scores >= kth) & (scores > 0)).nonzero(as_tuple=True)
        values = scores[rows, cols].cpu().numpy()
        rows, cols = rows.cpu().numpy(), cols.cpu().numpy()
        bounds = _row_bounds(rows, block.shape[0])
        for row in range(block.shape[0]):
            yield cols[bounds[row] : bounds[row + 1]], values[bounds[row] : bounds[row + 1]]

    return candidates


def _row_bounds(rows: "np.ndarray", n_rows: int) -> "np.ndarray":
    """Start offsets of each row in a row-sorted index list (torch nonzero is row-major)."""
    import numpy as np

    return np.searchsorted(rows, np.arange(n_rows + 1))


# -------------------------------------------------------------------------------------------
def _check_inputs(queries: Any, docs: Any, k: int, doc_ids: Sequence[str], query_ids: Sequence[str]) -> None:
    if queries.shape[1] != docs.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dimensions, documents {docs.shape[1]}")
    if len(doc_ids) != docs.shape[0] or len(query_ids) != queries.shape[0]:
        raise ValueError(
            f"{len(query_ids)} query ids for {queries.shape[0]} queries, {len(doc_ids)} doc ids for {docs.shape[0]} docs"
        )
    if len(set(doc_ids)) != len(doc_ids) or len(set(query_ids)) != len(query_ids):
        raise ValueError("query ids and document ids must be unique")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


