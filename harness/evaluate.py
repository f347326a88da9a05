"""Retrieval metrics with ranx, per-query scores, and TREC run / qrels / per-query files.

ranx re-sorts a run by score and breaks ties its own way; we hand it rank-derived scores instead
(strictly decreasing in the order of the run dict), so metrics follow exactly the ranking that
``harness.retrieval.search`` produced (score desc, doc id asc) and reruns give identical numbers.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.util import atomic_path, cache_dir, write_json_atomic

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass
class EvalResult:
    """Mean metrics over the queries with judgments, and each query's score per metric."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]  # metric -> qid -> score
    n_queries: int
    missing_in_run: int = 0  # judged queries absent from the run (scored 0)
    missing_in_qrels: int = 0  # run queries without judgments (dropped)
    metrics: tuple[str, ...] = field(default=DEFAULT_METRICS)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = list(self.metrics)
        return out


def evaluate(qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS) -> EvalResult:
    """Score ``run`` against ``qrels``; queries missing from the run count as 0."""
    metrics = tuple(dict.fromkeys(metrics))
    judged = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items() if docs}
    if not judged:
        raise ValueError("qrels contain no judged queries")
    ranked = {str(q): _rank_scores(docs) for q, docs in run.items() if str(q) in judged and docs}
    per_query = _ranx_per_query(judged, ranked, metrics)
    mean = {m: float(sum(scores.values()) / len(scores)) for m, scores in per_query.items()}
    run_ids = {str(q) for q in run}
    return EvalResult(
        mean=mean,
        per_query=per_query,
        n_queries=len(judged),
        missing_in_run=len(judged.keys() - run_ids),
        missing_in_qrels=len(run_ids - judged.keys()),
        metrics=metrics,
    )


def _rank_scores(docs: dict[str, float]) -> dict[str, float]:
    """Scores n, n-1, ..., 1 in the run's order (the order is the ranking)."""
    n = len(docs)
    return {str(d): float(n - i) for i, d in enumerate(docs)}


def _ranx_per_query(qrels: Qrels, run: Run, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per-query scores; queries without results score 0 (as every ranx metric gives them)."""
    qids = sorted(qrels)
    present = [q for q in qids if q in run]
    per_query = {m: {q: 0.0 for q in qids} for m in metrics}
    if not present:
        return per_query
    ranx = _import_ranx()
    # Plain dicts in one shared key order: ranx pairs qrels and run rows by position. (Its
    # Qrels/Run objects and make_comparable cost seconds of uncached numba compilation.)
    # ranx 0.3.21 fails on a single metric with return_mean=False; a repeated name avoids it.
    names = list(metrics) if len(metrics) > 1 else list(metrics) * 2
    scores = ranx.evaluate({q: qrels[q] for q in present}, {q: run[q] for q in present}, names, return_mean=False)
    for m in metrics:
        per_query[m].update(zip(present, (float(x) for x in scores[m])))
    return per_query


def _import_ranx() -> Any:
    """Import ranx late: it fixes numba's threading layer for the whole process."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))
    import ranx

    return ranx


# -------------------------------------------------------------------------------------------
# Files
# -------------------------------------------------------------------------------------------
def write_trec_run(path: Path | str, run: Run, tag: str) -> Path:
    """TREC run file (``qid Q0 docid rank score tag``), ranks in the order of each query's dict."""
    _check_no_whitespace(tag, run)
    lines = [
        f"{qid} Q0 {docid} {rank} {score:.9g} {tag}"
        for qid, docs in run.items()
        for rank, (docid, score) in enumerate(docs.items(), start=1)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return Path(path)


def write_trec_qrels(path: Path | str, qrels: Qrels) -> Path:
    """TREC qrels file (``qid 0 docid rel``), one line per judgement, in the order of the dict."""
    _check_no_whitespace("0", qrels)
    lines = [f"{qid} 0 {docid} {int(rel)}" for qid, docs in qrels.items() for docid, rel in docs.items()]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return Path(path)


def read_trec_qrels(path: Path | str) -> Qrels:
    """Inverse of ``write_trec_qrels``."""
    qrels: Qrels = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, docid, rel = line.split()
            qrels.setdefault(qid, {})[docid] = int(rel)
    return qrels


def read_trec_run(path: Path | str) -> Run:
    """Inverse of ``write_trec_run`` (documents ordered by rank)."""
    rows: dict[str, list[tuple[int, str, float]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, docid, rank, score, _tag = line.split()
            rows.setdefault(qid, []).append((int(rank), docid, float(score)))
    return {q: {d: s for _, d, s in sorted(r)} for q, r in rows.items()}


def write_per_query(path: Path | str, per_query: dict[str, dict[str, float]]) -> Path:
    """Per-query scores: TSV (``qid`` + one column per metric) for ``.tsv``, else JSON."""
    path = Path(path)
    if path.suffix != ".tsv":
        write_json_atomic(path, per_query)
        return path
    metrics = list(per_query)
    qids = sorted({q for scores in per_query.values() for q in scores})
    lines = ["\t".join(["qid", *metrics])]
    lines += ["\t".join([q, *(repr(float(per_query[m].get(q, 0.0))) for m in metrics)]) for q in qids]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_per_query(path: Path | str) -> dict[str, dict[str, float]]:
    """Inverse of ``write_per_query``."""
    path = Path(path)
    if path.suffix != ".tsv":
        return json.loads(path.read_text(encoding="utf-8"))
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    metrics = header.split("\t")[1:]
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for row in rows:
        qid, *values = row.split("\t")
        for m, v in zip(metrics, values):
            out[m][qid] = float(v)
    return out


def _check_no_whitespace(tag: str, run: Run | Qrels) -> None:
    """TREC files are whitespace-separated: ids or a tag with spaces would corrupt them."""
    bad = [s for s in (tag, *run, *(d for docs in run.values() for d in docs)) if not s or any(c.isspace() for c in s)]
    if bad:
        raise ValueError(f"TREC fields must be non-empty and contain no whitespace: {bad[:3]!r}")
