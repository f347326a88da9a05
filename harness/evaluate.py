"""Retrieval metrics with ranx, per-query scores, and TREC run / qrels / per-query files.

ranx re-sorts a run by score and breaks ties its own way; we hand it rank-derived scores instead
(strictly decreasing in the order of the run dict), so metrics follow exactly the ranking that
``harness.retrieval.search`` produced (score desc, doc id asc) and reruns give identical numbers.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.util import HarnessError, atomic_path, cache_dir, write_json_atomic

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")
# ranx's metric names (ranx.metrics.metric_switch); a name takes a cutoff @K and a relevance level -lN
RANX_METRICS = ("ndcg", "recall", "mrr", "precision", "map", "hits", "hit_rate", "f1", "r-precision", "dcg",
                "dcg_burges", "ndcg_burges", "bpref", "rbp")
_METRIC = re.compile(r"(?P<name>[a-z_-]+?)(?P<cut>@[1-9][0-9]*|\.[0-9]+)?(?P<level>-l[0-9]+)?")

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


def check_metrics(metrics: Any, where: str = "eval.metrics") -> tuple[str, ...]:
    """``metrics`` if every name is one ranx computes (``ndcg@10``, ``recall@100``, ``mrr``, ``rbp.95``);
    else a HarnessError naming the first bad one, with "did you mean"."""
    if not isinstance(metrics, (list, tuple)) or not metrics:
        raise HarnessError(f"{where} must be a non-empty list of metric names, e.g. [ndcg@10, recall@100]; "
                           f"got {metrics!r}")
    for metric in metrics:
        problem = metric_problem(metric)
        if problem:
            raise HarnessError(f"{where}: {metric!r} {problem}")
    return tuple(metrics)


def metric_problem(metric: Any) -> str | None:
    """Why ``metric`` is not a ranx metric name ("is not ...", with "did you mean"), or None."""
    match = _METRIC.fullmatch(metric) if isinstance(metric, str) else None
    if match is not None and match["name"] in RANX_METRICS:
        return None
    name, sep, rest = str(metric).partition("@")
    if name in RANX_METRICS:
        return f"has a bad cutoff: write {name}@K with K >= 1 (e.g. {name}@10)"
    close = difflib.get_close_matches(name, RANX_METRICS, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}{sep}{rest}'?)" if close else ""
    return f"is not a ranx metric{hint}; ranx names: {', '.join(RANX_METRICS)}, with a cutoff @K (e.g. ndcg@10)"


def evaluate(qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS) -> EvalResult:
    """Score ``run`` against ``qrels``; queries missing from the run count as 0."""
    metrics = tuple(dict.fromkeys(metrics))
    judged = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items() if docs}
    if not judged:
        raise ValueError("qrels contain no judged queries")
    if not any(r > 0 for docs in judged.values() for r in docs.values()):
        _warn_once("the qrels judge no document relevant (every relevance <= 0): every metric is 0; "
                   "check the relevance column of the qrels")
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


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning on stderr, once per process (evaluate runs at every curve point)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


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
