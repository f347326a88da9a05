"""Benchmark: exact sparse search over a 1M-document SPLADE-like index on this machine's CPU.

    python bench/large_index.py                  # 1,000,000 docs, 1,000 queries (~3-4 min on 2 cores)
    python bench/large_index.py --docs 200000    # scaled down

Synthetic vectors: vocabulary 30,522, ~120 distinct terms per document and ~20 per query, drawn
from a Zipf-like term popularity (p ~ 1/(rank + 20), as bench/retrieval.py: a few terms fire in
most documents, which is what makes SPLADE posting lists long), log-normal weights.

Reported, all measured in this run: seconds to generate the document matrix (the stand-in for
encoding) and to build the inverted index (D^T in CSR, as ``harness.retrieval.search`` does on
CPU), search throughput with ``harness.retrieval.search`` on the whole index and on a baseline
subset of it (the first ``--baseline-docs`` documents) with the same queries, the throughput ratio
(linear scaling would give baseline/docs), peak RSS against the 24 GB budget, and an exactness check
of the top 10 against brute force (dense dot products) for a few queries.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from harness.retrieval import default_chunk_size, estimate_peak_bytes, search  # noqa: E402

GIB = 1 << 30
BUDGET_BYTES = 24 * 10**9  # the machine's 24 GB


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--baseline-docs", type=int, default=100_000, help="subset searched as the baseline")
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--vocab", type=int, default=30_522)
    p.add_argument("--doc-nnz", type=int, default=120)
    p.add_argument("--query-nnz", type=int, default=20)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--check-queries", type=int, default=5, help="queries checked against brute force")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def term_probabilities(vocab: int) -> np.ndarray:
    p = 1.0 / (np.arange(vocab) + 20.0)
    return p / p.sum()


def synthetic_rows(rng: np.random.Generator, n: int, nnz: int, cdf: np.ndarray) -> sp.csr_matrix:
    """n rows of ~nnz distinct terms (repeated draws merge), log-normal weights, float32."""
    cols = np.searchsorted(cdf, rng.random(n * nnz) * cdf[-1]).astype(np.int32)
    weights = rng.lognormal(mean=-0.5, sigma=0.8, size=n * nnz).astype(np.float32)
    indptr = np.arange(0, n * nnz + 1, nnz, dtype=np.int64)
    m = sp.csr_matrix((weights, cols, indptr), shape=(n, len(cdf)))
    m.sum_duplicates()  # a term drawn twice in one row is one activation (weights add)
    return m


def synthetic_matrix(rng: np.random.Generator, n: int, nnz: int, cdf: np.ndarray, block: int = 100_000) -> sp.csr_matrix:
    """Generated in blocks so the temporaries stay small next to the result."""
    return sp.vstack([synthetic_rows(rng, min(block, n - s), nnz, cdf) for s in range(0, n, block)], format="csr")


CPU: dict[str, float] = {}  # process CPU seconds per stage: on a shared machine wall time moves with the load


def timed(fn, *args, stage: str = "", **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    CPU[stage] = time.process_time() - cpu
    return out, time.perf_counter() - start


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def brute_force_agrees(queries: sp.csr_matrix, docs: sp.csr_matrix, run: dict, ids: list[str], n: int) -> str:
    """Top-10 of ``search`` vs dense dot products (ties broken by id, as search does)."""
    bad = 0
    for i in range(min(n, queries.shape[0])):
        scores = np.asarray(docs @ queries[i].toarray().ravel(), dtype=np.float64)
        order = np.lexsort((np.arange(len(scores)), -scores))[:10]
        expect = [ids[j] for j in order if scores[j] > 0]
        got = list(run[f"q{i}"])[:10]
        bad += got != expect
    return f"{min(n, queries.shape[0]) - bad}/{min(n, queries.shape[0])} queries identical"


def main() -> None:
    from tabulate import tabulate

    args = parse_args()
    base_n = min(args.baseline_docs, max(1, args.docs // 10))
    rng = np.random.default_rng(args.seed)
    cdf = np.cumsum(term_probabilities(args.vocab))

    load_before = os.getloadavg()[0]
    docs, t_gen = timed(synthetic_matrix, rng, args.docs, args.doc_nnz, cdf, stage="gen")
    queries = synthetic_matrix(rng, args.queries, args.query_nnz, cdf)
    doc_ids, query_ids = [f"d{i}" for i in range(args.docs)], [f"q{i}" for i in range(args.queries)]
    index, t_index = timed(lambda: docs.T.astype(np.float32).tocsr(), stage="index")  # what the CPU scorer builds
    del index

    run, t_search = timed(search, queries, docs, args.k, doc_ids=doc_ids, query_ids=query_ids, device="cpu",
                           stage="search")
    subset = docs[:base_n]
    _, t_base = timed(search, queries, subset, args.k, doc_ids=doc_ids[:base_n], query_ids=query_ids,
                    device="cpu", stage="base")
    check = brute_force_agrees(queries, docs, run, doc_ids, args.check_queries)

    qps, qps_base = args.queries / t_search, args.queries / t_base
    chunk = default_chunk_size(args.docs)
    estimate = estimate_peak_bytes(args.docs, docs.nnz, args.vocab, chunk) + docs.data.nbytes + docs.indices.nbytes
    rows = [
        ["documents x vocab", f"{args.docs:,} x {args.vocab:,}", f"{docs.nnz / args.docs:.1f} nnz/doc, "
         f"{(docs.data.nbytes + docs.indices.nbytes + docs.indptr.nbytes) / GIB:.2f} GiB CSR"],
        ["queries", f"{args.queries:,}", f"{queries.nnz / args.queries:.1f} nnz/query, top {args.k}"],
        ["generate docs (encode stand-in)", f"{t_gen:.1f} s", f"{args.docs / t_gen:,.0f} docs/s; cpu {CPU['gen']:.1f} s"],
        ["build inverted index (D^T CSR)", f"{t_index:.1f} s", f"cpu {CPU['index']:.1f} s; search() builds it again per call"],
        [f"search {args.docs:,} docs", f"{t_search:.1f} s", f"{qps:,.1f} queries/s (chunk {chunk} queries); "
         f"cpu {CPU['search']:.1f} s"],
        [f"baseline: search {base_n:,} docs", f"{t_base:.1f} s", f"{qps_base:,.1f} queries/s; cpu {CPU['base']:.1f} s"],
        ["throughput ratio full / baseline", f"{qps / qps_base:.3f}", f"linear scaling: {base_n / args.docs:.3f}"],
        ["peak RSS", f"{peak_rss_bytes() / GIB:.2f} GiB", f"{100 * peak_rss_bytes() / BUDGET_BYTES:.0f}% of the 24 GB "
         f"budget (estimate for search + matrix: {estimate / GIB:.2f} GiB)"],
        ["exactness vs brute force (top 10)", check, ""],
        ["load average (1 min) before / after", f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
         f"{os.cpu_count()} cores; a shared machine inflates wall times"],
    ]
    print(tabulate(rows, headers=["what", "value", "note"], tablefmt="github"))


if __name__ == "__main__":
    main()
