"""Hybrid systems: recorded runs fused by ranx (``harness fuse RUN RUN ...``), recorded like any run.

A fusion reads the inputs' ``run.trec`` and the collection's ``qrels.trec`` from their run folders (no
model is loaded, no collection rebuilt), fuses the rankings with ``ranx.fuse`` (reciprocal rank fusion,
Cormack et al. 2009, k = 60 by default: no weight to tune, so nothing is chosen by looking at the test
collection) and writes a record with method ``fusion``. Its ``method_params`` name the fused systems by
method, so the seeds of one combination (sembridge seed 0 + BM25, seed 1 + BM25, ...) are one row of a
leaderboard; the input run ids are in its config (``fusion.inputs``) and so in its run id. The record
takes the seed of its learned input and the setting "fine-tuned" when any input is fine-tuned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.references import LUCENE
from harness.runs import RunDir, write_record
from harness.tables import REFERENCE_METHODS
from harness.util import Echo, HarnessError, read_json, stage

FUSIONS = ("rrf",)
SAME = ("dataset", "lang", "profile")  # what every input must share


def fuse_runs(folders: Sequence[Path], *, runs_dir: str, method: str = "rrf", k: int = 60, force: bool = False,
              echo: Echo = print) -> dict[str, Any]:
    """Fuse the recorded runs in ``folders`` and write (or find) the fused record under ``runs_dir``."""
    if method not in FUSIONS:
        raise HarnessError(f"unknown fusion '{method}'; fusions: {', '.join(FUSIONS)}")
    if len(folders) < 2:
        raise HarnessError("fuse needs at least two runs")
    records = [_input(Path(f)) for f in folders]
    run = fused_config(records, method, k)
    folder = RunDir.for_config(runs_dir, run)
    if not force and (done := folder.recorded()) is not None:
        echo(f"fusion of {', '.join(run['fusion.inputs'])}: already recorded in {folder.path}; --force re-runs it")
        return done
    from harness.evaluate import evaluate, read_trec_qrels, read_trec_run

    timing: dict[str, float] = {}
    with stage(timing, "evaluate", echo):
        rankings = [read_trec_run(Path(r["_folder"]) / r["files"]["run"]) for r in records]
        qrels = read_trec_qrels(Path(records[0]["_folder"]) / records[0]["files"]["qrels"])
        ranking = rrf(rankings, k=k, top_k=run["eval.top_k"])
        evaluation = evaluate(qrels, ranking, metrics=tuple(run["eval.metrics"]))
    record = write_record(folder, run, evaluation, ranking, timing, qrels=qrels,
                          extra={"reference": {"fusion": f"ranx.fuse {method} (k={k})",
                                               "inputs": run["fusion.inputs"]}})
    echo(f"fusion on {run['dataset']}: " + ", ".join(f"{m} {v:.4f}" for m, v in evaluation.mean.items())
         + f" -> {folder.path}")
    return record


def _input(folder: Path) -> dict[str, Any]:
    """An input's ok record (with its config and folder), whose TREC files are present."""
    record = RunDir(folder).result()
    if record.get("status", "ok") != "ok":
        raise HarnessError(f"run {folder.name} is recorded as failed: fuse ok runs only")
    for name in ("run", "qrels"):
        path = folder / record.get("files", {}).get(name, f"{name}.trec")
        if not path.is_file():
            raise HarnessError(f"{path} is missing (a checkout of records/ has no TREC files): fuse runs in a folder "
                               f"that holds them, or re-run {folder.name} there")
    return {**record, "config": read_json(folder / record["files"]["config"]), "_folder": str(folder)}


def fused_config(records: list[dict[str, Any]], method: str, k: int) -> dict[str, Any]:
    """The fused run's config: the shared collection, the inputs' systems and ids, the learned input's seed."""
    first = records[0]
    for key in SAME:
        values = {r[key] for r in records}
        if len(values) > 1:
            raise HarnessError(f"fuse runs of one collection: the inputs differ in {key} ({', '.join(sorted(values))})")
    learned = [r for r in records if r["method"] not in REFERENCE_METHODS] or records
    config = first["config"]
    params = {"fusion": method, "k": k, "systems": [system_name(r) for r in records]}
    return {"method": "fusion", "method_params": params,
            "lang": first["lang"], "dataset": first["dataset"], "profile": first["profile"],
            "setting": "fine-tuned" if any(r["setting"] == "fine-tuned" for r in records) else "zero-shot",
            "seed": learned[0]["seed"], "eval.metrics": config["eval.metrics"], "eval.top_k": config["eval.top_k"],
            "fusion.inputs": [r["run_id"] for r in records]}


def system_name(record: dict[str, Any]) -> str:
    """What a leaderboard calls an input: its method; Lucene's BM25 "bm25", the harness's own "bm25-lite"."""
    if record["method"] == "bm25" and record.get("method_params", {}).get("analyzer") != LUCENE:
        return "bm25-lite"
    return record["method"]


def rrf(rankings: list[dict[str, dict[str, float]]], *, k: int, top_k: int) -> dict[str, dict[str, float]]:
    """Reciprocal rank fusion by ``ranx.fuse``; each query's top ``top_k``, score desc then doc id asc."""
    from ranx import Run, fuse

    queries = sorted(set().union(*rankings))
    runs = [Run({q: ranking.get(q) or {} for q in queries if ranking.get(q)}) for ranking in rankings]
    fused = fuse(runs=runs, method="rrf", params={"k": k}).to_dict()
    return {q: dict(sorted(fused.get(q, {}).items(), key=lambda item: (-item[1], item[0]))[:top_k]) for q in queries}
