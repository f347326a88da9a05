"""`harness fuse`: recorded runs fused by reciprocal rank fusion into a record of their own."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.evaluate import EvalResult
from harness.runs import RunDir, write_record
from harness.util import read_json

QRELS = {"q1": {"d2": 1}, "q2": {"d3": 1}}


def record(runs_dir, method, ranking, *, seed=0, setting="zero-shot", dataset="gnome-help-ko", params=None):
    run = {"method": method, "method_params": params or {}, "lang": "ko", "dataset": dataset, "profile": "pocket",
           "setting": setting, "seed": seed, "eval.metrics": ["ndcg@10", "mrr@10"], "eval.top_k": 100}
    folder = RunDir.for_config(runs_dir, run)
    evaluation = EvalResult(mean={"ndcg@10": 0.5}, per_query={"ndcg@10": {"q1": 0.5, "q2": 0.5}}, n_queries=2,
                            metrics=("ndcg@10",))
    write_record(folder, run, evaluation, ranking, {"evaluate": 0.1}, qrels=QRELS)
    return folder.id


def fuse(*args):
    result = CliRunner().invoke(main, ["fuse", *args, "--json"])
    return result.exit_code, result.output


def test_rrf_of_a_learned_run_and_bm25_is_a_fine_tuned_record_of_its_own(tmp_path):
    runs = str(tmp_path / "runs")
    learned = record(runs, "sembridge", {"q1": {"d1": 9.0, "d2": 8.0, "d3": 1.0}, "q2": {"d3": 2.0, "d1": 1.0}},
                     seed=2, setting="fine-tuned")
    bm25 = record(runs, "bm25", {"q1": {"d2": 30.0, "d4": 20.0}, "q2": {"d1": 5.0, "d3": 4.0}},
                  params={"k1": 0.9, "b": 0.4, "analyzer": "lucene"})
    code, out = fuse(learned, bm25, "--runs-dir", runs)
    assert code == 0, out
    fused = json.loads(out[out.index("{"):])
    assert fused["method"] == "fusion" and fused["setting"] == "fine-tuned" and fused["seed"] == 2
    assert fused["method_params"] == {"fusion": "rrf", "k": 60, "systems": ["sembridge", "bm25"]}
    # by hand, k = 60, q1: d2 = 1/62 + 1/61, d1 = 1/61, d4 = 1/62, d3 = 1/63
    ranking = {}
    for line in (tmp_path / "runs" / fused["run_id"] / "run.trec").read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        ranking.setdefault(qid, []).append((doc, float(score)))
    assert [d for d, _ in ranking["q1"]] == ["d2", "d1", "d4", "d3"]
    assert ranking["q1"][0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert [d for d, _ in ranking["q2"]] == ["d1", "d3"]  # 1/62 + 1/61 each: the tie goes to the lower doc id
    assert fused["metrics"]["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert read_json(tmp_path / "runs" / fused["run_id"] / "config.json")["fusion.inputs"] == [learned, bm25]
    code, again = fuse(learned, bm25, "--runs-dir", runs)
    assert code == 0 and json.loads(again[again.index("{"):])["run_id"] == fused["run_id"]


def test_fusions_are_one_leaderboard_row_per_combination(tmp_path):
    from harness.tables import assign_labels, load_records

    runs = str(tmp_path / "runs")
    bm25 = record(runs, "bm25", {"q1": {"d2": 3.0}, "q2": {"d3": 1.0}},
                  params={"k1": 0.9, "b": 0.4, "analyzer": "auto"})
    for seed in (0, 1):
        learned = record(runs, "random", {"q1": {"d1": 1.0}, "q2": {"d3": 1.0}}, seed=seed, setting="fine-tuned")
        assert fuse(learned, bm25, "--runs-dir", runs)[0] == 0
    entries = [e for e in load_records(runs).entries if e.record["method"] == "fusion"]
    assign_labels(entries)
    assert {e.label for e in entries} == {"random + bm25-lite (rrf)"} and len(entries) == 2


def test_bad_fusions_are_one_line_errors(tmp_path):
    runs = str(tmp_path / "runs")
    a = record(runs, "random", {"q1": {"d1": 1.0}})
    b = record(runs, "bm25", {"q1": {"d1": 1.0}}, dataset="gnome-help-ja")
    code, out = fuse(a, b, "--runs-dir", runs)
    assert code == 2 and "the inputs differ in dataset (gnome-help-ja, gnome-help-ko)" in out
    assert fuse(a, "--runs-dir", runs)[1].count("at least two runs") == 1
    (tmp_path / "runs" / a / "run.trec").unlink()
    c = record(runs, "bm25", {"q1": {"d1": 1.0}})
    code, out = fuse(a, c, "--runs-dir", runs)
    assert code == 2 and "run.trec is missing (a checkout of records/ has no TREC files)" in out
    code, out = fuse("no-such-run", c, "--runs-dir", runs)
    assert code == 2 and "no run 'no-such-run'" in out
