"""Benchmark: sparse search over a 1M-document SPLADE-like index on this machine's CPU: exact search,
seismic (approximate) and a Lucene impact index, side by side.

    python bench/large_index.py                  # 1,000,000 docs, 1,000 queries (seismic built 200k in 9 min on 2 loaded cores)
    python bench/large_index.py --docs 200000    # scaled down
    python bench/large_index.py --engines exact,seismic   # a subset of the engines table

Synthetic vectors: vocabulary 30,522, ~120 distinct terms per document and ~20 per query, drawn
from a Zipf-like term popularity (p ~ 1/(rank + 20), as bench/retrieval.py: a few terms fire in
most documents, which is what makes SPLADE posting lists long), log-normal weights.

Reported, all measured in this run. First table (exact scaling): seconds to generate the document
matrix (the stand-in for encoding) and to build the inverted index (D^T in CSR, as
``harness.retrieval.search`` does on CPU), search throughput with ``harness.retrieval.search`` on the
whole index and on a baseline subset of it (the first ``--baseline-docs`` documents) with the same
queries, the throughput ratio (linear scaling would give baseline/docs), peak RSS against the 24 GB
budget, and an exactness check of the top 10 against brute force (dense dot products) for a few queries.

Second table (engines, ``harness.backends``): each engine runs in a fresh process that loads the same
matrices, so its peak RSS is its own (matrices + engine; for Lucene the in-process JVM too): build
seconds (exact: D^T; seismic: its index; Lucene: writing the JsonVectorCollection + indexing),
queries/s, recall@10 against exact search (the share of exact's top 10 found), and the throughput
against the fastest engine whose recall is at least as high (1.00: nothing at that recall or better is
faster). Threads: exact is one scipy thread; seismic and Lucene use ``--threads``.
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
    p.add_argument("--engines", default="exact,seismic,lucene-impact", help="engines of the second table ('' for none)")
    p.add_argument("--seismic", default="10:0.7,20:0.9",
                   help="seismic search settings query_cut:heap_factor, comma-separated (one index for all)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of seismic and Lucene")
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
    print(tabulate(rows, headers=["what", "value", "note"], tablefmt="github"), flush=True)
    if args.engines:
        print()
        print(engines_table(args, docs, queries), flush=True)


# --------------------------------------------------------------------------------------------
# Engines side by side, each in its own process
# --------------------------------------------------------------------------------------------
def engines_table(args: argparse.Namespace, docs: sp.csr_matrix, queries: sp.csr_matrix) -> str:
    import tempfile

    from tabulate import tabulate

    with tempfile.TemporaryDirectory(prefix="large-index-") as tmp:
        data = Path(tmp) / "vectors.npz"
        np.savez(data, **{f"d_{k}": v for k, v in csr_parts(docs).items()},
                 **{f"q_{k}": v for k, v in csr_parts(queries).items()})
        results = []
        for engine in args.engines.split(","):
            results += in_child(engine.strip(), str(data), args, tmp)
    exact = next((r for r in results if r["engine"] == "exact"), None)
    for r in results:  # compared as printed: equal recall is equal to 3 decimals
        r["recall"] = round(recall_at_10(r["top10"], exact["top10"]), 3) if exact else float("nan")
    rows = []
    for r in results:
        best = max(o["qps"] for o in results if o["recall"] >= r["recall"] or np.isnan(r["recall"]))
        rows.append([r["label"], f"{r['build_s']:.1f}", f"{r['qps']:,.1f}", f"{r['peak_rss'] / GIB:.2f}",
                     f"{r['recall']:.3f}", f"{r['qps'] / best:.2f}", r["note"]])
    return tabulate(rows, headers=["engine", "build s", "queries/s", "peak RSS GiB", "recall@10 vs exact",
                                   "q/s vs fastest at >= recall", "note"], tablefmt="github")


def csr_parts(m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": np.array(m.shape)}


def load_csr(npz: dict, prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix((npz[f"{prefix}_data"], npz[f"{prefix}_indices"], npz[f"{prefix}_indptr"]),
                         shape=tuple(npz[f"{prefix}_shape"]))


def recall_at_10(run: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    found = [len(set(run.get(q, [])) & set(top)) / len(top) for q, top in exact.items() if top]
    return float(np.mean(found)) if found else float("nan")


def in_child(engine: str, data: str, args: argparse.Namespace, tmp: str) -> list[dict]:
    """Run one engine in a spawned process (its own peak RSS); a failure is a row saying why."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child_main, args=(engine, data, args.k, args.seismic, args.threads, tmp, child))
    process.start()
    child.close()
    try:
        results = parent.recv()
    except EOFError:
        results = [{"engine": engine, "label": engine, "error": f"the process died (exit {process.exitcode})"}]
    process.join()
    nan = float("nan")
    return [r if "error" not in r else {**r, "build_s": nan, "qps": nan, "peak_rss": 0, "top10": {},
                                          "note": f"FAILED: {r['error']}"} for r in results]


def child_main(engine: str, data: str, k: int, seismic: str, threads: int, tmp: str, conn) -> None:
    try:
        npz = np.load(data)
        docs, queries = load_csr(npz, "d"), load_csr(npz, "q")
        doc_ids = [f"d{i}" for i in range(docs.shape[0])]
        query_ids = [f"q{i}" for i in range(queries.shape[0])]
        runner = {"exact": run_exact, "seismic": run_seismic, "lucene-impact": run_lucene}[engine]
        conn.send(runner(docs, queries, doc_ids, query_ids, k=k, seismic=seismic, threads=threads, tmp=tmp))
    except Exception as err:  # noqa: BLE001 - the table says why an engine could not run
        conn.send([{"engine": engine, "label": engine, "error": f"{type(err).__name__}: {err}".splitlines()[0]}])


def top10(run: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    return {q: list(ranked)[:10] for q, ranked in run.items()}


def row(engine: str, label: str, build_s: float, search_s: float, n_queries: int, run: dict, note: str) -> dict:
    return {"engine": engine, "label": label, "build_s": build_s, "qps": n_queries / search_s,
            "peak_rss": peak_rss_bytes(), "top10": top10(run), "note": note}


def run_exact(docs, queries, doc_ids, query_ids, *, k, threads, **_) -> list[dict]:
    _, build_s = timed(lambda: docs.T.astype(np.float32).tocsr(), stage="index")
    run, search_s = timed(search, queries, docs, k, doc_ids=doc_ids, query_ids=query_ids, device="cpu", stage="s")
    return [row("exact", "exact (harness.retrieval.search)", build_s, search_s, len(query_ids), run,
                "1 thread; search() builds D^T itself (included in q/s)")]


def run_seismic(docs, queries, doc_ids, query_ids, *, k, seismic, threads, **_) -> list[dict]:
    from importlib.metadata import version

    from harness.backends import SEISMIC_BUILD, seismic_index, seismic_query

    index, build_s = timed(seismic_index, docs, doc_ids, threads, stage="build")
    rows = []
    for setting in seismic.split(","):
        cut, heap = setting.split(":")
        run, search_s = timed(seismic_query, index, queries, k, query_ids, doc_ids, threads,
                              query_cut=int(cut), heap_factor=float(heap), stage="s")
        rows.append(row("seismic", f"seismic query_cut {cut}, heap_factor {heap}", build_s, search_s, len(query_ids),
                        run, f"pyseismic-lsr {version('pyseismic-lsr')}, {threads} threads, "
                             f"n_postings {SEISMIC_BUILD['n_postings']}"))
    return rows


def run_lucene(docs, queries, doc_ids, query_ids, *, k, threads, tmp, **_) -> list[dict]:
    from harness.lucene import impact_search

    (run, info), _ = timed(impact_search, queries, docs, k, doc_ids=doc_ids, query_ids=query_ids, workdir=tmp,
                           threads=threads, stage="lucene")
    return [row("lucene-impact", "Lucene impact index (weights x100)", info["index_seconds"], info["search_seconds"],
                len(query_ids), run, f"Anserini via pyjnius, {threads} threads; build = JSON + index")]


if __name__ == "__main__":
    main()
