"""Search backends over learned sparse vectors: the run's ``eval.backend``.

- ``exact`` (default): ``harness.retrieval.search``, exact dot products (CPU inverted index or CUDA).
- ``lucene-impact``: a Lucene impact index of the quantized vectors (``harness.lucene.impact_search``,
  Pyserini's SPLADE setup; weights ``round(w * 100)``): exact on the quantized vectors, so it differs
  from ``exact`` only where quantization reorders or ties documents. Needs the ``lucene`` extra.
- ``seismic``: Seismic (PyPI ``pyseismic-lsr``; Bruch et al., SIGIR 2024), approximate search that
  prunes posting lists into blocks with summaries and skips blocks; its knobs are ``SEISMIC_BUILD`` and
  ``SEISMIC_SEARCH`` below (seismic's own defaults for MS MARCO scale), each set by the run's
  ``eval.seismic``. Its index build clusters with random k-means and documents no seed; three builds
  of the same vectors ranked identically in a check here (with aggressive pruning, where a different
  clustering would show). Needs the ``scale`` extra.

Every backend returns ``{qid: {docid: score}}`` in rank order (score desc, then doc id asc), every query
present, plus a dict of information about the engine and its seconds.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.util import HarnessError

BACKENDS = ("exact", "lucene-impact", "seismic")
SEISMIC_HINT = "pip install 'sparse-transfer-harness[scale]' (from a checkout: pip install -e '.[scale]')"
SEISMIC_BUILD = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.4, "min_cluster_size": 2}
SEISMIC_SEARCH = {"query_cut": 10, "heap_factor": 0.7}


def search(backend: str, queries: Any, docs: Any, k: int, *, doc_ids: Sequence[str], query_ids: Sequence[str],
           workdir: Path | str | None = None, device: str | None = None,
           options: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Top-``k`` per query with ``backend``; ``options`` tune seismic (build and search keys)."""
    doc_ids, query_ids = [str(d) for d in doc_ids], [str(q) for q in query_ids]
    if backend == "exact":
        from harness.retrieval import search as exact

        started = time.perf_counter()
        run = exact(queries, docs, k, doc_ids=doc_ids, query_ids=query_ids, device=device)
        return run, {"engine": "harness exact", "search_seconds": round(time.perf_counter() - started, 3)}
    if backend == "lucene-impact":
        from harness.lucene import impact_search

        return impact_search(queries, docs, k, doc_ids=doc_ids, query_ids=query_ids, workdir=workdir)
    if backend == "seismic":
        return seismic_search(queries, docs, k, doc_ids=doc_ids, query_ids=query_ids, **(options or {}))
    raise HarnessError(f"unknown search backend '{backend}'; backends: {', '.join(BACKENDS)}")


def check_seismic_options(options: dict[str, Any]) -> None:
    """``eval.seismic`` names only seismic's build and search settings, with numbers > 0."""
    import difflib

    known = [*SEISMIC_BUILD, *SEISMIC_SEARCH]
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"settings: {', '.join(known)}"
            raise HarnessError(f"eval.seismic: unknown setting '{key}' ({hint})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise HarnessError(f"eval.seismic: {key} must be a number > 0, got {value!r}")


def preflight(backend: str) -> None:
    """Fail before any encoding when the backend's packages are missing (starts nothing)."""
    if backend == "lucene-impact":
        from harness.lucene import preflight_parts

        preflight_parts()
    elif backend == "seismic":
        _seismic()


def _seismic() -> Any:
    try:
        import seismic
    except ImportError:
        raise HarnessError(f"eval.backend seismic needs pyseismic-lsr, which is not installed: {SEISMIC_HINT}") from None
    return seismic


def seismic_index(docs: Any, doc_ids: list[str], threads: int = 0, **build: Any) -> Any:
    """A SeismicIndex over the CSR rows of ``docs`` (dimension j is the component "j")."""
    import numpy as np

    seismic = _seismic()
    csr = docs.tocsr().astype(np.float32)
    csr.sort_indices()
    dataset = seismic.SeismicDataset()
    csr.sum_duplicates()
    dataset.add_documents_by_id(doc_ids, csr.indices.astype(np.int64), csr.data, csr.indptr.astype(np.int64))
    with stdout_to_stderr():  # seismic prints its configuration and progress on stdout (--json prints records there)
        return seismic.SeismicIndex.build_from_dataset(dataset, **{**SEISMIC_BUILD, **build}, num_threads=threads)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 onto 2 for the block: what native code prints reaches stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def seismic_query(index: Any, queries: Any, k: int, query_ids: list[str], doc_ids: list[str], threads: int = 0,
                  **params: Any) -> dict[str, dict[str, float]]:
    """Search a SeismicIndex; results come back in any order and are put in ``query_ids`` order."""
    import numpy as np

    seismic = _seismic()
    string = seismic.get_seismic_string()
    csr = queries.tocsr().astype(np.float32)
    rank = {d: i for i, d in enumerate(sorted(doc_ids))}
    rows = [i for i in range(csr.shape[0]) if csr.indptr[i + 1] > csr.indptr[i]]
    run: dict[str, dict[str, float]] = {q: {} for q in query_ids}
    if not rows:
        return run
    components = [np.array([str(c) for c in csr.indices[csr.indptr[i]:csr.indptr[i + 1]]], dtype=string) for i in rows]
    values = [np.ascontiguousarray(csr.data[csr.indptr[i]:csr.indptr[i + 1]]) for i in rows]
    results = index.batch_search(np.array([query_ids[i] for i in rows], dtype=string), components, values, k=int(k),
                                 **{**SEISMIC_SEARCH, **params}, num_threads=threads)
    for hits in results:
        if hits:
            ranked = sorted(((doc, float(score)) for _, score, doc in hits if score > 0),
                            key=lambda pair: (-pair[1], rank[pair[0]]))
            run[hits[0][0]] = dict(ranked)
    return run


def seismic_search(queries: Any, docs: Any, k: int, *, doc_ids: list[str], query_ids: list[str],
                   threads: int = 0, **options: Any) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Build a Seismic index over ``docs`` and search ``queries`` (approximate)."""
    from importlib.metadata import version

    build = {key: options.pop(key) for key in list(options) if key in SEISMIC_BUILD}
    started = time.perf_counter()
    index = seismic_index(docs, doc_ids, threads, **build)
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    run = seismic_query(index, queries, k, query_ids, doc_ids, threads, **options)
    info = {"engine": f"seismic (pyseismic-lsr {version('pyseismic-lsr')})", "build": {**SEISMIC_BUILD, **build},
            "search": {**SEISMIC_SEARCH, **options}, "index_seconds": round(index_seconds, 3),
            "search_seconds": round(time.perf_counter() - started, 3)}
    return run, info
