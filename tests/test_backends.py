"""Search backends over sparse vectors (eval.backend): Lucene impact index and seismic against exact search.

Synthetic SPLADE-like vectors (Zipf term popularity, log-normal weights, as bench/large_index.py).
The Lucene tests skip, naming what is missing, without Pyserini/pyjnius/Java 21+; seismic's without
pyseismic-lsr.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

from harness.backends import search
from harness.util import HarnessError
from tests.test_lucene import lucene_or_skip

VOCAB, N_DOCS, N_QUERIES = 2000, 3000, 60


def synthetic(rng: np.random.Generator, n: int, nnz: int) -> sp.csr_matrix:
    p = 1.0 / (np.arange(VOCAB) + 20.0)
    cols = rng.choice(VOCAB, size=(n, nnz), p=p / p.sum())
    weights = rng.lognormal(-0.5, 0.8, size=(n, nnz)).astype(np.float32)
    m = sp.csr_matrix((weights.ravel(), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, VOCAB))
    m.sum_duplicates()
    return m


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(0)
    docs, queries = synthetic(rng, N_DOCS, 60), synthetic(rng, N_QUERIES, 12)
    doc_ids = [f"d{i}" for i in rng.permutation(N_DOCS)]  # ids not in matrix order: the tie-break is by id
    return queries, docs, doc_ids, [f"q{i}" for i in range(N_QUERIES)]


def quantized(m: sp.csr_matrix, scale: int = 100) -> sp.csr_matrix:
    out = m.copy()
    out.data = np.rint(out.data.astype(np.float64) * scale).astype(np.float32)
    out.eliminate_zeros()
    return out


def test_lucene_impact_is_exact_search_of_the_quantized_vectors(collection, tmp_path):
    """Same top 10, same order (ties by doc id), same integer scores as exact search over round(w * 100)."""
    lucene_or_skip()
    queries, docs, doc_ids, query_ids = collection
    run, info = search("lucene-impact", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids, workdir=tmp_path)
    expect, _ = search("exact", quantized(queries), quantized(docs), 10, doc_ids=doc_ids, query_ids=query_ids)
    assert list(run) == query_ids
    assert [list(run[q].items()) for q in query_ids] == [list(expect[q].items()) for q in query_ids]
    assert info["quantization"] == "round(weight * 100)" and info["index_seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # the temporary index is gone


def test_lucene_impact_departs_from_exact_float_search_only_within_the_quantization_error(collection, tmp_path):
    lucene_or_skip()
    queries, docs, doc_ids, query_ids = collection
    run, _ = search("lucene-impact", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids, workdir=tmp_path)
    exact, _ = search("exact", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids)
    position = {d: i for i, d in enumerate(doc_ids)}
    delta = 0.5 / 100  # rounding error of one quantized weight
    identical = 0
    for i, q in enumerate(query_ids):
        query = queries[i]
        scores = np.asarray((docs @ query.T).todense()).ravel()
        # |w_q w_d - round(w_q) round(w_d)| <= delta (w_q + w_d) + delta^2 per shared term; bound it per query
        bound = float(np.abs(query.data).sum() * delta + query.nnz * (docs.data.max() * delta + delta ** 2))
        tenth = min(exact[q].values())
        assert all(scores[position[d]] >= tenth - 2 * bound for d in run[q]), q
        identical += list(run[q]) == list(exact[q])
    recall = np.mean([len(set(run[q]) & set(exact[q])) / len(exact[q]) for q in query_ids])
    assert recall > 0.95 and identical > N_QUERIES // 2  # quantization moves few documents across the cut


def test_seismic_is_approximate_with_high_recall_and_its_knobs_matter(collection):
    pytest.importorskip("seismic", reason="pyseismic-lsr (the scale extra) is not installed")
    queries, docs, doc_ids, query_ids = collection
    exact, _ = search("exact", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids)

    def recall(**options):
        run, info = search("seismic", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids, options=options)
        assert list(run) == query_ids and all(len(run[q]) == 10 for q in query_ids)
        assert all(list(r.values()) == sorted(r.values(), reverse=True) for r in run.values())
        return np.mean([len(set(run[q]) & set(exact[q])) / 10 for q in query_ids]), info

    good, info = recall()
    assert good >= 0.9 and info["search"] == {"query_cut": 10, "heap_factor": 0.7}
    crude, _ = recall(query_cut=1, n_postings=50)  # one query term, short posting lists
    assert crude < good - 0.2


def test_an_unknown_backend_is_one_line(collection):
    queries, docs, doc_ids, query_ids = collection
    with pytest.raises(HarnessError, match="unknown search backend 'faiss'; backends: exact, lucene-impact, seismic"):
        search("faiss", queries, docs, 10, doc_ids=doc_ids, query_ids=query_ids)


def test_eval_backend_is_a_run_key_omitted_while_exact(tmp_path):
    """``harness eval`` with each backend on a BEIR folder: exact keeps the old run id (no key in the config),
    the others record their engine; on 5 documents every backend ranks the same documents."""
    from harness.evaluate import read_trec_run
    from harness.pipeline import evaluate_model
    from harness.util import read_json
    from tests.conftest import write_beir
    from tests.test_bad_input import tiny_model
    from tests.test_lucene import CORPUS, QRELS, QUERIES

    lucene_or_skip()
    pytest.importorskip("seismic", reason="pyseismic-lsr (the scale extra) is not installed")
    model = str(tiny_model(tmp_path / "model"))
    beir = f"beir:{write_beir(tmp_path / 'beir', CORPUS, QUERIES, {q: [d] for q, d in QRELS.items()}, lang='en')}"
    runs = tmp_path / "runs"
    records = {}
    for backend in ("exact", "lucene-impact", "seismic"):
        overrides = [] if backend == "exact" else [f"eval.backend={backend}"]
        records[backend] = evaluate_model(model, beir, profile="pocket", overrides=overrides, runs_dir=str(runs),
                                          echo=lambda _: None)
    explicit = evaluate_model(model, beir, profile="pocket", overrides=["eval.backend=exact"], runs_dir=str(runs),
                              echo=lambda _: None)
    assert explicit["run_id"] == records["exact"]["run_id"]  # reported, not run again: the same id
    assert len({r["run_id"] for r in records.values()}) == 3
    assert "eval.backend" not in read_json(runs / records["exact"]["run_id"] / "config.json")
    assert "search" not in records["exact"]
    for backend in ("lucene-impact", "seismic"):
        assert read_json(runs / records[backend]["run_id"] / "config.json")["eval.backend"] == backend
        assert records[backend]["search"]["backend"] == backend
    rankings = {b: read_trec_run(runs / r["run_id"] / "run.trec") for b, r in records.items()}
    assert {q: set(d) for q, d in rankings["lucene-impact"].items()} == {q: set(d) for q, d in rankings["exact"].items()}


def test_a_sweep_cell_searches_with_its_backend(tmp_path):
    """pipeline.execute (through the sweep) hands eval.backend to the search and records the engine."""
    from harness.sweep import sweep
    from harness.util import read_json
    from tests.test_launchers import grid

    pytest.importorskip("seismic", reason="pyseismic-lsr (the scale extra) is not installed")
    profile, runs = grid(tmp_path), tmp_path / "runs"
    summary = sweep(profile, runs_dir=str(runs), overrides=[f"source_models=[{tmp_path / 'good'}]",
                                                             "eval.backend=seismic"], echo=lambda _: None,
                    save_model=False)
    assert summary.total == 2 and len(summary.ran) == 2 and summary.ok
    for rid in summary.ran:
        record = read_json(runs / rid / "result.json")
        assert record["search"]["backend"] == "seismic" and record["search"]["engine"].startswith("seismic")
        assert read_json(runs / rid / "config.json")["eval.backend"] == "seismic"


def test_eval_seismic_settings_reach_the_engine_and_are_recorded(tmp_path):
    from harness.sweep import sweep
    from harness.util import read_json
    from tests.test_launchers import grid

    pytest.importorskip("seismic", reason="pyseismic-lsr (the scale extra) is not installed")
    profile, runs = grid(tmp_path), tmp_path / "runs"
    summary = sweep(profile, runs_dir=str(runs), overrides=[f"source_models=[{tmp_path / 'good'}]",
                                                             "eval.backend=seismic",
                                                             "eval.seismic={query_cut: 3, n_postings: 50}"],
                    echo=lambda _: None, save_model=False)
    assert summary.ok and len(summary.ran) == 2
    search = read_json(runs / summary.ran[0] / "result.json")["search"]
    assert search["search"]["query_cut"] == 3 and search["build"]["n_postings"] == 50
    assert search["search"]["heap_factor"] == 0.7  # the others keep seismic's defaults


@pytest.mark.parametrize("setting, message", [
    ("{query_cutt: 3}", "eval.seismic: unknown setting 'query_cutt' (did you mean 'query_cut'?)"),
    ("{heap_factor: -1}", "eval.seismic: heap_factor must be a number > 0, got -1"),
])
def test_bad_eval_seismic_settings_fail_before_any_work(setting, message):
    from harness.config import load_config, run_config
    from harness.pipeline import preflight

    run = run_config(load_config("pocket", [f"eval.seismic={setting}"]), method="random", method_params={},
                     lang="ko", seed=0, setting="zero-shot")
    with pytest.raises(HarnessError, match=re.escape(message)):
        preflight([run])


def test_eval_seismic_is_left_out_of_run_ids_while_unset():
    from harness.config import load_config, run_config

    run = run_config(load_config("pocket", []), method="random", method_params={}, lang="ko", seed=0,
                     setting="zero-shot")
    assert "eval.seismic" not in run
