"""Metrics through ranx against hand-computed values; TREC and per-query files."""
from __future__ import annotations

import math

import pytest

from harness.evaluate import evaluate, read_per_query, read_trec_run, write_per_query, write_trec_run

QRELS = {
    "q1": {"d1": 1},
    "q2": {"d2": 1, "d3": 1},
    "q3": {"d9": 1},  # not in the run
}
RUN = {
    "q1": {"d1": 3.0, "d5": 2.0},  # relevant at rank 1
    "q2": {"d4": 9.0, "d2": 8.0, "d3": 7.5},  # relevant at ranks 2 and 3
    "q4": {"d1": 1.0},  # no judgments
}


def test_hand_computed_metrics():
    result = evaluate(QRELS, RUN)
    assert result.per_query["mrr@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert result.mean["mrr@10"] == pytest.approx(0.5)
    ndcg_q2 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert result.per_query["ndcg@10"]["q2"] == pytest.approx(ndcg_q2)
    assert result.mean["ndcg@10"] == pytest.approx((1 + ndcg_q2 + 0) / 3)
    assert result.per_query["recall@100"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert (result.n_queries, result.missing_in_run, result.missing_in_qrels) == (3, 1, 1)


def test_cutoff_and_recall():
    run = {"q2": {f"x{i}": 100.0 - i for i in range(10)} | {"d2": 1.0, "d3": 0.5}}  # relevant at 11, 12
    result = evaluate({"q2": QRELS["q2"]}, run, metrics=("mrr@10", "recall@11", "ndcg@10"))
    assert result.mean == {"mrr@10": 0.0, "recall@11": 0.5, "ndcg@10": 0.0}


def test_ties_follow_the_run_order():
    """Equal scores: the run's order (what search decided) is the ranking, not ranx's."""
    qrels = {"q": {"b": 1}}
    assert evaluate(qrels, {"q": {"a": 1.0, "b": 1.0}}, ["mrr@10"]).mean["mrr@10"] == 0.5
    assert evaluate(qrels, {"q": {"b": 1.0, "a": 1.0}}, ["mrr@10"]).mean["mrr@10"] == 1.0


def test_empty_run_scores_zero():
    result = evaluate(QRELS, {}, ["mrr@10"])
    assert result.mean["mrr@10"] == 0.0 and result.missing_in_run == 3


def test_trec_run_round_trip(tmp_path):
    path = write_trec_run(tmp_path / "run.trec", RUN, tag="splade")
    lines = path.read_text().splitlines()
    assert lines[2] == "q2 Q0 d4 1 9 splade"
    assert read_trec_run(path) == RUN
    with pytest.raises(ValueError):
        write_trec_run(tmp_path / "bad.trec", {"q 1": {"d": 1.0}}, tag="t")
    assert not (tmp_path / "bad.trec").exists()


@pytest.mark.parametrize("name", ["per_query.tsv", "per_query.json"])
def test_per_query_round_trip(tmp_path, name):
    per_query = evaluate(QRELS, RUN).per_query
    path = write_per_query(tmp_path / name, per_query)
    assert read_per_query(path) == per_query
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp files left behind
