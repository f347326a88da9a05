"""Leaderboards built from synthetic run records written with the real record code, and BM25 references."""
from __future__ import annotations

import csv
import json
import math
import statistics

import numpy as np
import pytest

from harness import stats
from harness.config import load_config, run_config
from harness.evaluate import read_trec_run, write_per_query
from harness.report import build_leaderboard
from harness.runs import RunDir, RunRecord
from harness.tables import MARK
from harness.util import HarnessError
from tests.conftest import write_beir

N_QUERIES = 40


def write_run(runs_dir, method, lang, setting, seed, ndcg, *, params=None, curve=None, status="ok", error=None):
    """A run record exactly as the pipeline lays it out (config.json, per_query.json, result.json)."""
    config = load_config("pocket")
    run = run_config(config, method=method, method_params=params or {}, lang=lang, seed=seed, setting=setting)
    return write_run_config(runs_dir, run, ndcg, curve=curve, status=status, error=error)


def write_run_config(runs_dir, run, ndcg, *, curve=None, status="ok", error=None):
    folder = RunDir.for_config(runs_dir, run)
    folder.write_json("config.json", run)
    if status != "ok":
        record = RunRecord.of(run, status=status, files={"config": "config.json"}, details={"error": error}).to_json()
        folder.write_json("result.json", record)
        return record
    per_query = {"ndcg@10": {f"q{i:02d}": float(v) for i, v in enumerate(ndcg)},
                 "recall@100": {f"q{i:02d}": float(min(1.0, v + 0.1)) for i, v in enumerate(ndcg)}}
    write_per_query(folder.file("per_query.json"), per_query)
    extra = {"counts": {"queries": len(ndcg)}}
    if curve is not None:
        extra.update(curve=curve, steps_to_95=curve[-1]["step"])
    metrics = {m: float(np.mean(list(v.values()))) for m, v in per_query.items()}
    record = RunRecord.of(run, metrics=metrics, timing={"evaluate": 1.0},
                          files={"config": "config.json", "per_query": "per_query.json"}, details=extra).to_json()
    folder.write_json("result.json", record)
    return record


@pytest.fixture
def runs(tmp_path):
    """random (baseline), sembridge (clearly better), mean (= random + noise), a reference, a failure."""
    rng = np.random.default_rng(0)
    base = {lang: rng.uniform(0.1, 0.6, size=N_QUERIES) for lang in ("ja", "ko")}
    systems = {}
    for lang in ("ja", "ko"):
        for seed in (0, 1):
            noise = rng.normal(0, 0.01, size=N_QUERIES)
            systems[("random", lang, seed)] = np.clip(base[lang] + noise, 0, 1)
            systems[("sembridge", lang, seed)] = np.clip(base[lang] + 0.3 + noise * (seed + 1), 0, 1)
            systems[("mean", lang, seed)] = np.clip(base[lang] + rng.normal(0, 0.01, size=N_QUERIES), 0, 1)
    runs_dir = tmp_path / "runs"
    for (method, lang, seed), values in systems.items():
        write_run(runs_dir, method, lang, "zero-shot", seed, values)
    for seed in (0, 1):
        curve = [{"step": s, "wall_seconds": 2.0 * s, "ndcg@10": 0.3 + 0.001 * s * (seed + 1), "loss": 1.0 / (1 + s)}
                 for s in (0, 40, 80)]
        write_run(runs_dir, "sembridge", "ko", "fine-tuned", seed, systems[("sembridge", "ko", seed)] + 0.01,
                  curve=curve)
    write_run(runs_dir, "eval", "ko", "zero-shot", 0, base["ko"] * 0.5, params={"model": "pocket:splade-tiny"})
    write_run(runs_dir, "focus", "ja", "zero-shot", 0, None, status="failed", error="HarnessError: boom | bad plan")
    return runs_dir, systems


def md_table_rows(text, heading):
    """The rows of the GitHub table under ``## heading`` as {system: [cells]}."""
    table = text.split(f"## {heading}\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    return rows[0], {r[0]: r[1:] for r in rows[2:]}


def fmt_cell(values):
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def test_table_contents(runs, tmp_path):
    runs_dir, systems = runs
    paths = build_leaderboard(runs_dir, tmp_path / "out", name="lb", n_resamples=2000,
                              header={"command": "harness leaderboard", "commit": "abc123", "machine": "test"})
    assert [p.name for p in paths[:3]] == ["lb.md", "lb.tex", "lb.csv"]
    md = (tmp_path / "out" / "lb.md").read_text()
    headers, rows = md_table_rows(md, "nDCG@10")
    assert headers == ["system", "ja ZS", "ko ZS", "avg ZS", "ko FT", "avg FT"]
    assert list(rows) == ["mean", "random", "sembridge", "unadapted pocket:splade-tiny"]  # references last
    per_seed = {k: float(np.mean(v)) for k, v in systems.items()}
    sem_ko = [per_seed[("sembridge", "ko", s)] for s in (0, 1)]
    assert rows["sembridge"][1] == f"**{fmt_cell(sem_ko)}**†"  # best in column, significant
    rnd_ja = [per_seed[("random", "ja", s)] for s in (0, 1)]
    assert rows["random"][0] == fmt_cell(rnd_ja)  # the baseline is never marked
    assert "†" not in rows["mean"][0] + rows["mean"][1]
    assert rows["unadapted pocket:splade-tiny"][0] == "–" and rows["unadapted pocket:splade-tiny"][2] == "–"
    assert rows["unadapted pocket:splade-tiny"][1] == f"{per_seed_eval(runs_dir):.3f}↓"  # significantly worse
    avg = statistics.mean([statistics.mean([per_seed[("mean", lang, s)] for s in (0, 1)]) for lang in ("ja", "ko")])
    assert rows["mean"][2] == f"{avg:.3f}"
    assert "commit: `abc123`" in md and "command: `harness leaderboard`" in md
    assert "## Failed cells" in md and "focus" in md and "boom / bad plan" in md
    assert "## R@100" in md
    head, conv = md_table_rows(md, "Convergence: nDCG@10 on libreoffice-help-ko-dev during fine-tuning (ko)")
    assert head == ["system", "seeds", "budget", "@10%", "@25%", "@50%", "@100%", "AUC", "steps to random's final"]
    # sembridge seeds: 0.3 + 0.001 s (seed + 1) at s = 0, 40, 80 -> mean 0.3 + 0.0015 s; no random curve
    assert conv["sembridge"] == ["2", "80", "0.312", "0.330", "0.360", "0.420", "0.360", "never"]


def per_seed_eval(runs_dir):
    [path] = [p for p in runs_dir.glob("eval-*/per_query.json")]
    return float(np.mean(list(json.loads(path.read_text())["ndcg@10"].values())))


def test_significance_matches_independent_holm(runs, tmp_path):
    runs_dir, systems = runs
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=2000)
    rows = list(csv.DictReader(open(tmp_path / "out" / "lb.csv")))
    tested = [r for r in rows if r["p"]]
    # zero-shot: mean and sembridge in ja and ko, plus the reference in ko (no baseline in the FT column)
    assert sorted((r["system"], r["lang"]) for r in tested) == sorted(
        [("mean", "ja"), ("mean", "ko"), ("sembridge", "ja"), ("sembridge", "ko"), ("unadapted pocket:splade-tiny", "ko")])
    raw = {}
    for r in tested:
        if r["system"] == "unadapted pocket:splade-tiny":
            continue
        a = stats.average_over_seeds([_scores(systems[(r["system"], r["lang"], s)]) for s in (0, 1)])
        b = stats.average_over_seeds([_scores(systems[("random", r["lang"], s)]) for s in (0, 1)])
        raw[(r["system"], r["lang"])] = stats.randomization_test(a, b, n_resamples=2000, seed=0)
        assert float(r["p"]) == pytest.approx(raw[(r["system"], r["lang"])], rel=1e-3)
    ps = [float(r["p"]) for r in tested]
    m = len(ps)
    for r in tested:  # Holm by hand: sort, multiply by (m - rank), running maximum
        ranked = sorted(ps)
        running = 0.0
        for k, p in enumerate(ranked):
            running = max(running, min(1.0, (m - k) * p))
            if p == float(r["p"]):
                break
        assert float(r["p_adjusted"]) == pytest.approx(running, rel=1e-3)
    significant = {(r["system"], r["lang"]) for r in tested if r["significant"] == "1"}
    assert ("sembridge", "ko") in significant and ("mean", "ko") not in significant


def _scores(values):
    return {f"q{i:02d}": float(v) for i, v in enumerate(values)}


def test_rebuild_is_byte_identical(runs, tmp_path):
    runs_dir, _ = runs
    first = build_leaderboard(runs_dir, tmp_path / "a", name="lb", n_resamples=500)
    second = build_leaderboard(runs_dir, tmp_path / "b", name="lb", n_resamples=500)
    names = sorted(p.name for p in first)
    assert names == sorted(p.name for p in second)
    assert {"lb.md", "lb.tex", "lb.csv", "lb-zero-shot.png"} <= set(names)
    assert any(n.startswith("lb-convergence-ko") for n in names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    png = (tmp_path / "a" / "lb-zero-shot.png").read_bytes()
    assert b"Software" not in png and b"matplotlib" not in png.lower()


def test_latex_output(runs, tmp_path):
    runs_dir, _ = runs
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), test="t-test", correction="bh")
    tex = (tmp_path / "out" / "lb.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\mathbf{" in tex and "^{\\dagger}" in tex
    assert "paired t-test" in tex and "Benjamini-Hochberg" in tex
    assert "unadapted pocket:splade-tiny" in tex
    body = [line for line in tex.splitlines() if line.startswith("SemBridge")]  # display names
    assert len(body) == 1 and body[0].count("&") == 5
    assert "\\multicolumn{3}{c}{zero-shot}" in tex and "\\cmidrule(lr){2-4}" in tex  # two-level header
    assert "\\resizebox{\\linewidth}" in tex and "0." not in body[0]  # fits the page; .xxx numbers
    lines = tex.splitlines()
    reference = next(i for i, line in enumerate(lines) if line.startswith("unadapted"))
    assert lines[reference - 1] == "\\midrule"  # a rule between the methods and the reference systems
    assert "\\mathbf" not in lines[reference]  # bold marks the best method, never a reference system


def test_latex_compiles_with_booktabs(runs, tmp_path):
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-recommended)")
    runs_dir, _ = runs
    build_leaderboard(runs_dir, tmp_path, name="lb", metrics=("ndcg@10", "recall@100"))
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                                        "\\begin{document}\n\\input{lb.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in done.stdout and (tmp_path / "paper.pdf").stat().st_size > 0


def test_method_variants_get_their_own_rows(tmp_path):
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(1)
    for alpha in (2.0, 4.0):
        write_run(runs_dir, "sembridge", "ko", "zero-shot", 0, rng.uniform(size=10), params={"alpha": alpha})
    write_run(runs_dir, "random", "ko", "zero-shot", 0, rng.uniform(size=10))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=200)
    _, rows = md_table_rows((tmp_path / "out" / "lb.md").read_text(), "nDCG@10")
    assert list(rows) == ["random", "sembridge", "sembridge (alpha=2)"]  # the declared default (4) goes unsaid


def test_an_ablation_grid_keeps_the_default_row_plain_and_tests_variants_against_it(tmp_path):
    """Variants name only what they change: the default (the usual value of every key) stays "sembridge",
    the baseline of the tests; a config-key variant (another bridge) is a row of its own."""
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(4)
    config = load_config("pocket")
    variants = [({"alpha": 4.0}, {}), ({"alpha": 2.0}, {}), ({"alpha": 8.0}, {}), ({"alpha": 4.0, "bias": "stale"}, {}),
                ({"alpha": 4.0}, {"bridge_model": "pocket:muse-v3"})]
    for params, keys in variants:
        run = run_config(config, method="sembridge", method_params=params, lang="ko", seed=0, setting="zero-shot")
        write_run_config(runs_dir, {**run, **keys}, rng.uniform(size=30))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=200,
                      baseline="sembridge")
    md = (tmp_path / "out" / "lb.md").read_text()
    _, rows = md_table_rows(md, "nDCG@10")
    assert sorted(rows) == ["sembridge", "sembridge (alpha=2)", "sembridge (alpha=8)", "sembridge (bias=stale)",
                            "sembridge (bridge_model=pocket:muse-v3)"]
    assert "than sembridge, adjusted" in md and "4 comparisons" in md


def test_a_key_value_baseline_tests_each_objective_against_splade_of_the_same_method(tmp_path):
    """--baseline train.objective=splade: clear is tested against splade at the same initialization,
    never against the other method's splade; zero-shot (no training keys) has no such row, so no test."""
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.5, size=40)
    config = load_config("pocket")
    scores = {("random", "splade"): base, ("random", "clear"): base + 0.3, ("sembridge", "splade"): base + 0.3,
              ("sembridge", "clear"): base + 0.3 + rng.normal(0, 0.01, size=40)}
    for (method, objective), values in scores.items():
        for seed in (0, 1):
            run = run_config(config, method=method, method_params={}, lang="ko", seed=seed, setting="fine-tuned")
            write_run_config(runs_dir, {**run, "train.objective": objective}, np.clip(values, 0, 1))
        write_run(runs_dir, method, "ko", "zero-shot", 0, rng.uniform(size=40))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=500,
                      baseline="train.objective=splade")
    md = (tmp_path / "out" / "lb.md").read_text()
    headers, rows = md_table_rows(md, "nDCG@10")
    ft = headers.index("ko FT")
    assert rows["random (train.objective=clear)"][ft - 1].endswith(MARK)  # +0.3 over random's splade
    assert not rows["sembridge (train.objective=clear)"][ft - 1].endswith(MARK)  # = sembridge's splade
    assert "than the train.objective=splade row of the same method" in md and "2 comparisons" in md
    # the low-resource slice (a key left out of the other ids) is its own system, tested against its own splade
    for objective, shift in (("splade", 0.0), ("clear", 0.3)):
        run = run_config(config, method="random", method_params={}, lang="ko", seed=0, setting="fine-tuned")
        write_run_config(runs_dir, {**run, "train.objective": objective, "train.pairs_fraction": 0.1},
                         np.clip(base - 0.05 + shift, 0, 1))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=500,
                      baseline="train.objective=splade")
    md = (tmp_path / "out" / "lb.md").read_text()
    _, rows = md_table_rows(md, "nDCG@10")
    assert "random (train.objective=clear, train.pairs_fraction=0.1)" in rows and "3 comparisons" in md
    with pytest.raises(HarnessError, match="no record has that value"):
        build_leaderboard(runs_dir, tmp_path / "bad", name="lb", metrics=("ndcg@10",), n_resamples=50,
                          baseline="train.objective=splat", require_baseline=True)


def test_control_language_goes_last_and_stays_out_of_the_average(tmp_path):
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(2)
    means = {}
    for lang in ("en", "ja", "ko"):
        for method in ("random", "sembridge"):
            values = rng.uniform(size=12)
            means[(method, lang)] = float(np.mean(values))
            write_run(runs_dir, method, lang, "zero-shot", 0, values)
    write_run(runs_dir, "sembridge", "ko", "zero-shot", 1, rng.uniform(size=12))
    write_run(runs_dir, "bm25", "ko", "zero-shot", 0, rng.uniform(size=12))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=200)
    md = (tmp_path / "out" / "lb.md").read_text()
    headers, rows = md_table_rows(md, "nDCG@10")
    assert headers == ["system", "ja ZS", "ko ZS", "en ZS", "avg ZS"]
    assert rows["random"][3] == f"{(means[('random', 'ja')] + means[('random', 'ko')]) / 2:.3f}"
    assert "without the control en" in md
    assert ("Seeds per cell of the methods: zero-shot: 2 seeds (1 cell), 1 seed (5 cells) "
            "(reference systems: one run each, they have no seed).") in md
    build_leaderboard(runs_dir, tmp_path / "all", name="lb", metrics=("ndcg@10",), n_resamples=200, controls=())
    headers, rows = md_table_rows((tmp_path / "all" / "lb.md").read_text(), "nDCG@10")
    assert headers == ["system", "en ZS", "ja ZS", "ko ZS", "avg ZS"]
    assert rows["random"][3] == f"{sum(means[('random', lang)] for lang in ('en', 'ja', 'ko')) / 3:.3f}"


def test_dev_columns_are_shown_but_not_averaged_with_test_collections(tmp_path):
    runs_dir = tmp_path / "runs"
    config = load_config("pocket")
    values = {"gnome-help-ko": np.full(10, 0.5), "libreoffice-help-ko-dev": np.full(10, 0.1),
              "gnome-help-ja": np.full(10, 0.3)}
    for dataset, ndcg in values.items():
        lang = dataset.split("-")[2]
        run = run_config(config, method="random", method_params={}, lang=lang, seed=0, setting="zero-shot")
        write_run_config(runs_dir, {**run, "dataset": dataset}, ndcg)
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=50)
    headers, rows = md_table_rows((tmp_path / "out" / "lb.md").read_text(), "nDCG@10")
    assert len(headers) == 5 and rows["random"][-1] == "0.400"  # (0.5 + 0.3) / 2, the dev 0.1 left out


def test_no_records_is_an_error(tmp_path):
    from harness.util import HarnessError

    with pytest.raises(HarnessError, match="no run records"):
        build_leaderboard(tmp_path / "empty", tmp_path / "out")


# -------------------------------------------------------------------------------------------
# BM25 reference on a BEIR folder written here
# -------------------------------------------------------------------------------------------
CORPUS = {
    "d1": "bounce keys ignore quickly repeated key presses",
    "d2": "change the wallpaper of the desktop background",
    "d3": "connect to a wireless network wifi network settings",
    "d4": "keyboard shortcuts for the desktop",
    "d5": "wireless printer setup",
}
QUERIES = {"q1": "repeated key presses", "q2": "wireless network", "q3": "desktop wallpaper"}
QRELS = {"q1": "d1", "q2": "d3", "q3": "d2"}


@pytest.fixture
def beir_dir(tmp_path):
    return write_beir(tmp_path / "beir", CORPUS, QUERIES, {q: [d] for q, d in QRELS.items()})


def reference_bm25(query, k1=0.9, b=0.4):
    """Textbook Okapi BM25 (Lucene idf), written with plain loops."""
    docs = {d: t.split() for d, t in CORPUS.items()}
    avgdl = sum(len(t) for t in docs.values()) / len(docs)
    scores = {}
    for d, terms in docs.items():
        score = 0.0
        for term in query.split():
            df = sum(term in t for t in docs.values())
            tf = terms.count(term)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(terms) / avgdl))
        if score > 0:
            scores[d] = score
    return scores


def test_bm25_reference_record(beir_dir, tmp_path):
    from harness.references import evaluate_reference

    runs_dir = tmp_path / "runs"
    messages = []
    record = evaluate_reference("bm25-lite", f"beir:{beir_dir}", runs_dir=str(runs_dir), echo=messages.append)
    assert record["status"] == "ok" and record["method"] == "bm25" and record["lang"] == "und"
    assert record["method_params"] == {"k1": 0.9, "b": 0.4, "analyzer": "auto"}
    assert record["reference"]["analyzer"].startswith("unicode")
    folder = runs_dir / record["run_id"]
    run = read_trec_run(folder / "run.trec")
    for qid, text in QUERIES.items():
        expected = reference_bm25(text)
        assert list(run[qid]) == sorted(expected, key=lambda d: (-expected[d], d))
        assert run[qid] == pytest.approx(expected, rel=1e-5)
    per_query = json.loads((folder / "per_query.json").read_text())
    assert per_query["ndcg@10"] == {"q1": 1.0, "q2": 1.0, "q3": 1.0}
    again = evaluate_reference("bm25-lite", f"beir:{beir_dir}", runs_dir=str(runs_dir), echo=messages.append)
    assert again == record and "already recorded" in messages[-1]
    paths = build_leaderboard(runs_dir, tmp_path / "out", name="refs", baseline="random", n_resamples=100)
    _, rows = md_table_rows(paths[0].read_text(), "nDCG@10")
    assert rows["bm25"][0] == "1.000"  # bold marks the best method; a reference system is not one


def test_reference_record_has_mean_metrics(beir_dir, tmp_path):
    from harness.references import evaluate_reference

    record = evaluate_reference("bm25-lite", f"beir:{beir_dir}", runs_dir=str(tmp_path / "runs"), echo=lambda _: None)
    assert record["metrics"]["ndcg@10"] == pytest.approx(1.0)


def test_bm25_wordpiece_analyzer_and_cjk_bigrams(beir_dir, tmp_path):
    from harness.checks import make_wordpiece
    from harness.references import evaluate_reference, unicode_terms

    assert unicode_terms("東京タワー and Ｔｏｋｙｏ 駅") == ["東京", "京タ", "タワ", "ワー", "and", "tokyo", "駅"]
    tokenizer_dir = tmp_path / "tok"
    make_wordpiece(sorted({w for t in [*CORPUS.values(), *QUERIES.values()] for w in t.split()})).save_pretrained(
        tokenizer_dir)
    record = evaluate_reference("bm25-lite", f"beir:{beir_dir}", runs_dir=str(tmp_path / "runs"),
                                overrides=[f"target_tokenizer={tokenizer_dir}"], params={"analyzer": "wordpiece"},
                                echo=lambda _: None)
    assert record["reference"]["analyzer"] == f"target WordPiece {tokenizer_dir}"
    run = read_trec_run(tmp_path / "runs" / record["run_id"] / "run.trec")
    expected = reference_bm25(QUERIES["q2"])  # whole-word vocabulary: the same terms as whitespace splitting
    assert run["q2"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_dense_bridge_reference_on_tiny_collection(tmp_path):
    """The pocket bridge model as a dense retriever (about a minute on CPU: the model is rebuilt)."""
    from pathlib import Path

    from harness.references import evaluate_reference

    fixture = Path(__file__).parent / "fixtures" / "beir-tiny"
    record = evaluate_reference("dense-bridge", f"beir:{fixture}", runs_dir=str(tmp_path), echo=lambda _: None)
    assert record["method_params"]["query_prefix"] == "query: " and record["reference"]["dim"] > 0
    run = read_trec_run(tmp_path / record["run_id"] / "run.trec")
    assert next(iter(run["q1"])) == "d1" and next(iter(run["q2"])) == "d3"
    assert all(-1.0 <= s <= 1.0 for docs in run.values() for s in docs.values())  # cosine


def test_grid_coverage_lists_the_missing_cells(runs, tmp_path):
    from harness.report import GridCells

    runs_dir, _ = runs
    recorded = {r.parent.name: json.loads(r.read_text()) for r in runs_dir.glob("*/result.json")}
    ok = sorted(rid for rid, r in recorded.items() if r["status"] == "ok" and r["method"] == "sembridge")
    cells = {rid: ("sembridge", recorded[rid]["lang"], recorded[rid]["setting"], recorded[rid]["seed"]) for rid in ok}
    cells["focus-ja-zero-shot-s0-x"] = ("focus", "ja", "zero-shot", 0)  # recorded as failed: still missing
    cells["overlap-ko-fine-tuned-s2-y"] = ("overlap", "ko", "fine-tuned", 2)
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=100,
                      grid=GridCells("tiny", cells))
    md = (tmp_path / "out" / "lb.md").read_text()
    assert f"- grid: `harness sweep tiny`: {len(ok)} of {len(ok) + 2} cells recorded" in md
    section = md.split("## Cells not recorded yet", 1)[1]
    assert "- zero-shot, seed 0 (1): focus/ja\n- fine-tuned, seed 2 (1): overlap/ko\n" in section


def test_convergence_reports_fractions_area_and_steps_to_the_baseline():
    from harness.tables import Entry, convergence

    def entry(method, seed, values):
        curve = [{"step": s, "ndcg@10": v} for s, v in zip((0, 20, 40, 80), values)]
        record = {"method": method, "lang": "ko", "dataset": "d-test", "setting": "fine-tuned", "seed": seed,
                  "run_id": f"{method}-{seed}", "curve": curve}
        return Entry(record, {"train.eval_dataset": "d-dev"}, {}, label=method)

    rows = {r.label: r for r in convergence([entry("random", 0, [0.1, 0.2, 0.3, 0.4]),
                                             entry("sembridge", 0, [0.2, 0.3, 0.4, 0.5]),
                                             entry("sembridge", 1, [0.2, 0.3, 0.4, 0.5]),
                                             entry("mean", 0, [0.1, 0.1, 0.1, 0.1])], "ndcg@10", "random")}
    assert {r.dataset for r in rows.values()} == {"d-dev"}  # the curve's own collection
    assert rows["sembridge"].reaches_baseline == 40 and rows["random"].reaches_baseline == 80
    assert rows["mean"].reaches_baseline is None and rows["sembridge"].seeds == 2
    assert rows["random"].at == pytest.approx({0.1: 0.14, 0.25: 0.2, 0.5: 0.3, 1.0: 0.4})
    # trapezoids: 20 * .15 + 20 * .25 + 40 * .35 = 22 over a budget of 80
    assert rows["random"].auc == pytest.approx(22 / 80)


def test_variants_get_labels_and_the_default_variant_is_the_baseline(tmp_path):
    """A parameter only some records carry (left out at its default) makes a variant row; with several
    rows of the baseline method, the default one is the baseline and the tests run."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.6, size=N_QUERIES)
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "sembridge", "ko", "zero-shot", 0, base)
    write_run(runs_dir, "sembridge", "ko", "zero-shot", 0, np.clip(base - 0.2, 0, 1), params={"copy_overlap": False})
    write_run(runs_dir, "sembridge", "ko", "zero-shot", 0, np.clip(base + 0.01, 0, 1), params={"alpha": 8.0})
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", n_resamples=2000, baseline="sembridge",
                      header={"command": "c", "commit": "x", "machine": "m"})
    _, rows = md_table_rows((tmp_path / "out" / "lb.md").read_text(), "nDCG@10")
    assert set(rows) == {"sembridge", "sembridge (alpha=8)", "sembridge (copy_overlap=False)"}
    assert rows["sembridge (copy_overlap=False)"][0].endswith("↓")  # tested against the default row


def test_a_value_that_changes_only_with_the_column_is_no_variant(tmp_path):
    """The pocket profile's per-language tokenizer recipes (ko wordpiece-seg, zh wordpiece-bert) keep one
    row per method; two recipes in one column are two rows."""
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(2)
    for lang in ("ko", "zh"):
        for method in ("sembridge", "random"):
            write_run(runs_dir, method, lang, "zero-shot", 0, rng.uniform(size=10))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=200)
    _, rows = md_table_rows((tmp_path / "out" / "lb.md").read_text(), "nDCG@10")
    assert set(rows) == {"random", "sembridge"}
    config = load_config("pocket", ["tokenizer.recipe=unigram"])
    run = run_config(config, method="sembridge", method_params={}, lang="ko", seed=0, setting="zero-shot")
    write_run_config(runs_dir, run, rng.uniform(size=10))
    build_leaderboard(runs_dir, tmp_path / "out", name="lb", metrics=("ndcg@10",), n_resamples=200)
    _, rows = md_table_rows((tmp_path / "out" / "lb.md").read_text(), "nDCG@10")
    assert {"sembridge (tokenizer.recipe=unigram)", "sembridge (tokenizer.recipe=wordpiece-seg)"} <= set(rows)


@pytest.mark.parametrize("label, shown", [
    ("sembridge (alpha=2)", "SemBridge (alpha=2)"),
    ("bm25 (analyzer=lucene)", "BM25 (Lucene)"),
    ("bm25 (analyzer=auto)", "BM25-lite"),
    ("sembridge + bm25 (rrf)", "SemBridge + BM25 (RRF)"),  # a fusion row (harness fuse)
    ("random-mvn", "random (MVN)"),
])
def test_tex_display_names(label, shown):
    from harness.report import display_name

    assert display_name(label) == shown


def test_past_eight_systems_lines_differ_by_dash_and_marker():
    """Colours repeat after the palette's 8: a repeated colour gets another dash pattern and marker, so no
    two of up to 32 systems look alike in a convergence plot (FOCUS and SemBridge once shared a blue)."""
    from harness.report import LINES, color_map, repeat_of

    labels = [f"system {i:02d}" for i in range(18)]
    colors = color_map(labels)
    looks = {(colors[label], LINES[repeat_of(label, colors) % len(LINES)]) for label in labels}
    assert len(looks) == len(labels) and len(set(colors.values())) == 8


def test_a_grid_leaderboard_reads_only_its_own_profiles_records(runs, tmp_path):
    """Profiles share records/: `leaderboard --grid pocket` must not mix in another profile's records."""
    from click.testing import CliRunner

    from harness.cli import main

    runs_dir, systems = runs
    other = run_config(load_config("pocket-ablations"), method="fvt", method_params={}, lang="ko", seed=0,
                       setting="zero-shot")
    write_run_config(runs_dir, other, systems[("random", "ko", 0)])

    def systems_in(*args):
        out = tmp_path / "out"
        result = CliRunner().invoke(main, ["-q", "leaderboard", "--runs", str(runs_dir), "--out", str(out),
                                           "--name", "lb", *args])
        assert result.exit_code == 0, result.output
        return md_table_rows((out / "lb.md").read_text(), "nDCG@10")[1]

    assert "fvt" in systems_in()  # no filter: every record in the folder
    assert "fvt" not in systems_in("--grid", "pocket") and "sembridge" in systems_in("--grid", "pocket")
