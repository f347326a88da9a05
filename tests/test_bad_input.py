"""Bad input fails fast with one line and the conventional exit code (issue #20: nothing wrong passes).

Each case is the command a user types, the exit code and a fragment of the message: 2 with one
"error: ..." line for usage errors and bad input (click's own usage errors included), 1 with a FAIL
line for a method that fails `harness check-method`, 130 for Ctrl-C. Commands run in-process with
click's CliRunner; plugins and signals need a fresh process. None of the cases may adapt a model or
encode a corpus: a tripwire on both turns that into a failure, so a check that moves from preflight
to a later stage fails here even when its message is unchanged.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from tests.test_report import write_run


# -------------------------------------------------------------------------------------------
# Inputs: a tiny local masked LM, BEIR folders, profiles and run records, built once
# -------------------------------------------------------------------------------------------
def tiny_model(path: Path) -> Path:
    """A real BERT masked LM (hidden 8) with a WordPiece tokenizer, saved as Hugging Face does."""
    from transformers import BertConfig, BertForMaskedLM

    from harness.checks import SOURCE_WORDS, make_wordpiece

    tokenizer = make_wordpiece(SOURCE_WORDS)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def broken_models(root: Path, good: Path) -> None:
    """Model folders that are not models, or have no, truncated or unloadable pieces."""
    import shutil

    from transformers import T5Config

    (root / "model-empty").mkdir()
    (root / "model-junk").mkdir()
    (root / "model-junk" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    T5Config(d_model=8, num_layers=1, num_heads=1, d_ff=8, vocab_size=16).save_pretrained(root / "model-t5")
    for name in ("model-noweights", "model-truncated", "model-notokenizer"):
        shutil.copytree(good, root / name)
    (root / "model-noweights" / "model.safetensors").unlink()
    weights = root / "model-truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (root / "model-notokenizer" / name).unlink(missing_ok=True)


def beir_folder(path: Path, corpus: bytes, queries: bytes, qrels: bytes) -> Path:
    (path / "qrels").mkdir(parents=True)
    (path / "corpus.jsonl").write_bytes(corpus)
    (path / "queries.jsonl").write_bytes(queries)
    (path / "qrels" / "test.tsv").write_bytes(qrels)
    return path


CORPUS = b'{"_id": "d1", "text": "paris is the capital city"}\n{"_id": "d2", "text": "run the file"}\n'
QUERIES = b'{"_id": "q1", "text": "capital city"}\n'
QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"


def beir_folders(root: Path) -> None:
    beir_folder(root / "beir", CORPUS, QUERIES, QRELS)
    latin1 = '{"_id": "d3", "text": "caf\u00e9"}\n'.encode("latin-1")
    beir_folder(root / "beir-latin1", CORPUS + latin1, QUERIES, QRELS)
    beir_folder(root / "beir-nocorpus", b"", QUERIES, QRELS)
    beir_folder(root / "beir-noqueries", CORPUS, b"\n", QRELS)


def profiles(root: Path) -> None:
    (root / "list.yaml").write_text("- methods: [mean]\n- languages: [ko]\n")
    grid = (f"methods: [mean]\nlanguages: [ko]\nseeds: [0]\nsettings: [zero-shot]\nsource_model: {root / 'model'}\n"
            f"bridge_model: {root / 'model'}\ndataset: beir:{root / 'beir'}\n")
    (root / "grid.yaml").write_text(grid)
    (root / "grid-typo.yaml").write_text(grid + "eval:\n  metrics: [ndgc@10]\n")


def records(root: Path) -> None:
    """Two record folders: random and sembridge (ok), and the same plus a result.json that is a JSON list."""
    for name in ("records", "records-corrupt"):
        write_run(root / name, "random", "ko", "zero-shot", 0, [0.2, 0.4, 0.6])
        write_run(root / name, "sembridge", "ko", "zero-shot", 0, [0.3, 0.5, 0.7])
    (root / "records-corrupt" / "listed").mkdir()
    (root / "records-corrupt" / "listed" / "result.json").write_text("[1, 2]\n")
    (root / "a-file").write_text("not a folder\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    broken_models(root, tiny_model(root / "model"))
    beir_folders(root)
    profiles(root)
    records(root)
    return {"root": str(root)}


@pytest.fixture
def no_heavy_work(monkeypatch):
    """A tripwire: a case that gets as far as adapting a model or encoding a corpus fails."""
    from harness import pipeline
    from harness.encoder import SpladeEncoder

    def tripped(*args, **kwargs):
        raise AssertionError("bad input got past preflight: it reached the adaptation or the encoding")

    monkeypatch.setattr(pipeline, "adapt", tripped)
    monkeypatch.setattr(pipeline, "evaluate_encoder", tripped)
    monkeypatch.setattr(SpladeEncoder, "encode", tripped)


def invoke(args: list[str], inputs: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    """(exit code, stderr) of ``harness ARGS`` in this process; {root}, {runs}, {out} are filled in."""
    paths = {**inputs, "runs": str(tmp_path / "runs"), "out": str(tmp_path / "out")}
    result = CliRunner().invoke(main, [a.format(**paths) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the very thing this file is against
    return result.exit_code, result.stderr


RUN = ["run", "--lang", "ko", "--runs-dir", "{runs}"]
LOCAL = ["--set", "source_model={root}/model", "--set", "bridge_model={root}/model"]
EVAL = ["eval", "--dataset", "beir:{root}/beir", "--runs-dir", "{runs}", "--model"]
BOARD = ["leaderboard", "--out", "{out}", "--runs"]

CASES = [
    # 4. method parameters out of their declared ranges (check-method and run alike)
    ("sembridge-alpha-1", [*RUN, "--method", "sembridge", "--set", "method.alpha=1"], 2,
     "method 'sembridge': parameter 'alpha' must be > 1, got 1.0"),
    ("sembridge-temperature-0", [*RUN, "--method", "sembridge", "--set", "method.temperature=0"], 2,
     "parameter 'temperature' must be > 0"),
    ("wechsel-k-0", [*RUN, "--method", "wechsel", "--set", "method.k=0"], 2, "parameter 'k' must be >= 1, got 0"),
    ("check-method-alpha", ["check-method", "sembridge", "--set", "alpha=0.5"], 2, "'alpha' must be > 1"),
    ("check-method-k", ["check-method", "bridge-knn", "--set", "k=0"], 2, "'k' must be >= 1"),
    ("focus-lr-0", [*RUN, "--method", "focus", "--set", "method.lr=0"], 2, "parameter 'lr' must be > 0"),
    ("objective-param", [*RUN, "--method", "mean", "--setting", "fine-tuned", "--set", "objective=qg-distill",
                         "--set", "train.teacher_temperature=0"], 2, "'train.teacher_temperature' must be > 0"),
    ("clear-alpha", [*RUN, "--method", "mean", "--set", "train.clear_alpha=1.5"], 2,
     "'train.clear_alpha' must be >= 0 and <= 1"),
    # 4./7. seeds: negative (zero-shot and fine-tuned) and beyond 64 bits
    ("seed-negative-fine-tuned", [*RUN, "--method", "mean", "--setting", "fine-tuned", "--seed", "-1"], 2,
     "Invalid value for '--seed'"),
    ("seed-negative-zero-shot", [*RUN, "--method", "mean", "--setting", "zero-shot", "--seed", "-1"], 2,
     "Invalid value for '--seed'"),
    ("seed-65-bits", [*RUN, "--method", "mean", "--seed", str(2**65)], 2, "Invalid value for '--seed'"),
    ("sweep-seeds", ["sweep", "{root}/grid.yaml", "--runs-dir", "{runs}", "--set", "seeds=[0, -1]"], 2,
     "config key 'seeds' must hold numbers >= 0"),
    # 4./6. eval settings: top_k, metric names (in preflight, before the encode)
    ("top-k-0", [*RUN, "--method", "mean", "--set", "eval.top_k=0"], 2, "config key 'eval.top_k' must be >= 1, got 0"),
    ("metric-typo", [*RUN, "--method", "mean", "--set", "eval.metrics=[ndcg@10, ndgc@10]"], 2,
     "'ndgc@10' is not a ranx metric (did you mean 'ndcg@10'?)"),
    ("metric-cutoff", [*EVAL, "{root}/model", "--set", "eval.metrics=[ndcg@0]"], 2, "write ndcg@K with K >= 1"),
    ("metrics-empty", [*RUN, "--method", "mean", "--set", "eval.metrics=[]"], 2, "must be a non-empty list"),
    ("sweep-metric-typo", ["sweep", "{root}/grid-typo.yaml", "--runs-dir", "{runs}"], 2, "did you mean 'ndcg@10'"),
    ("backend-typo", [*EVAL, "{root}/model", "--set", "eval.backend=faiss"], 2,
     "config key 'eval.backend' must be one of 'exact', 'lucene-impact', 'seismic', got 'faiss'"),
    ("sweep-launcher-opt", ["sweep", "{root}/grid.yaml", "--runs-dir", "{runs}", "--launcher", "ray",
                            "--launcher-opt", "gpu"], 2, "--launcher-opt expects KEY=VALUE, got 'gpu'"),
    ("sweep-launcher-typo", ["sweep", "{root}/grid.yaml", "--runs-dir", "{runs}", "--launcher", "slurm"], 2,
     "Invalid value for '--launcher'"),
    # 4. a profile that is a YAML list
    ("profile-list", [*RUN, "--method", "mean", "--profile", "{root}/list.yaml"], 2,
     "a profile is a mapping of config keys (key: value lines), not a YAML list"),
    # 4. --model folders that are not models, or lack (whole) weights or a tokenizer
    ("model-empty", [*EVAL, "{root}/model-empty"], 2, "has no config.json"),
    ("model-junk-config", [*EVAL, "{root}/model-junk"], 2, "config.json is not a model configuration"),
    ("model-not-masked-lm", [*EVAL, "{root}/model-t5"], 2, "a 't5' model has no masked-LM head"),
    ("model-no-weights", [*EVAL, "{root}/model-noweights"], 2, "no weights in"),
    ("model-truncated", [*EVAL, "{root}/model-truncated"], 2, "model.safetensors: "),
    ("model-no-tokenizer", [*EVAL, "{root}/model-notokenizer"], 2, "has no tokenizer.json"),
    ("source-model-truncated", [*RUN, "--method", "mean", "--set", "source_model={root}/model-truncated",
                                "--set", "bridge_model={root}/model"], 2, "damaged or truncated"),
    # 4./8. BEIR folders: not UTF-8, empty corpus, empty queries (run: in preflight, before the adaptation)
    ("beir-latin1-run", [*RUN, "--method", "mean", *LOCAL, "--set", "dataset=beir:{root}/beir-latin1"], 2,
     "corpus.jsonl line 3: not UTF-8 text (byte 0xe9 at column 27): save the file as UTF-8"),
    ("beir-latin1-export", ["data", "export", "beir:{root}/beir-latin1", "{out}"], 2, "line 3: not UTF-8"),
    ("beir-empty-corpus", [*EVAL, "{root}/model", "--dataset", "beir:{root}/beir-nocorpus"], 2,
     "corpus.jsonl holds no documents"),
    ("beir-empty-queries", ["data", "export", "beir:{root}/beir-noqueries", "{out}"], 2,
     "queries.jsonl holds no queries"),
    # 4. a result.json that is a JSON list
    ("record-list-export", ["export", "{root}/records-corrupt/listed", "{out}"], 2,
     "result.json is not a run record (a JSON list)"),
    ("record-list-strict", [*BOARD, "{root}/records-corrupt", "--strict"], 2,
     "1 unreadable record(s) under"),
    # 4./7. tokenizer sizes
    ("vocab-size-negative", ["tokenizer", "train", "--lang", "ko", "--vocab-size", "-5"], 2,
     "config key 'tokenizer.vocab_size' must be >= 1, got -5"),
    ("vocab-size-0", ["tokenizer", "train", "--lang", "ko", "--vocab-size", "0"], 2, "'tokenizer.vocab_size' must be"),
    # 6. late validation, now early: objective name, unwritable runs folder
    ("objective-typo", [*RUN, "--method", "mean", "--set", "objective=splad"], 2, "did you mean 'splade'?"),
    ("runs-dir-unwritable", ["run", "--lang", "ko", "--method", "mean", "--runs-dir", "{root}/a-file/runs"], 2,
     "is not writable"),
    ("sweep-runs-dir-unwritable", ["sweep", "{root}/grid.yaml", "--runs-dir", "{root}/a-file/runs"], 2,
     "is not writable"),
    ("eval-runs-dir-unwritable", [*EVAL, "{root}/model", "--runs-dir", "{root}/a-file/runs"], 2, "is not writable"),
    ("reference-runs-dir-unwritable", ["reference", "--system", "bm25-lite", "--dataset", "beir:{root}/beir",
                                       "--runs-dir", "{root}/a-file/runs"], 2, "is not writable"),
    ("reference-metric-typo", ["reference", "--system", "bm25-lite", "--dataset", "beir:{root}/beir", "--runs-dir",
                               "{runs}", "--set", "eval.metrics=[recal@100]"], 2, "did you mean 'recall@100'"),
    # 7. values once accepted silently
    ("workers-0", ["sweep", "{root}/grid.yaml", "--runs-dir", "{runs}", "--workers", "0"], 2,
     "Invalid value for '--workers'"),
    ("workers-negative", ["sweep", "{root}/grid.yaml", "--runs-dir", "{runs}", "--workers", "-3"], 2,
     "Invalid value for '--workers'"),
    ("tune-workers-0", ["tune", "{root}/grid.yaml", "--runs-dir", "{runs}", "--workers", "0"], 2,
     "Invalid value for '--workers'"),
    ("batch-size-0", [*RUN, "--method", "mean", "--set", "encode.batch_size=0"], 2, "'encode.batch_size' must be >= 1"),
    ("lr-negative", [*RUN, "--method", "mean", "--set", "train.lr=-1"], 2, "'train.lr' must be > 0, got -1.0"),
    ("steps-0", [*RUN, "--method", "mean", "--set", "train.steps=0"], 2, "'train.steps' must be >= 1"),
    ("inspect-top-negative", ["inspect", "--method", "mean", "--lang", "ko", "--token", "x", "--top", "-1"], 2,
     "Invalid value for '--top'"),
    ("leaderboard-metric-typo", [*BOARD, "{root}/records", "--metric", "ndgc@10"], 2,
     "metric 'ndgc@10' is in no record (did you mean 'ndcg@10'?)"),
    ("leaderboard-baseline-typo", [*BOARD, "{root}/records", "--baseline", "randm"], 2,
     "baseline method 'randm' has no records (did you mean 'random'?)"),
]


@pytest.mark.parametrize("args, code, fragment", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_fails_fast_with_one_line(args, code, fragment, inputs, tmp_path, no_heavy_work):
    exit_code, stderr = invoke(args, inputs, tmp_path)
    assert (exit_code, fragment in stderr) == (code, True), stderr
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(lines) == 1, stderr


def test_a_corrupt_record_is_a_warning_on_stderr_and_the_rest_is_reported(inputs, tmp_path, no_heavy_work):
    exit_code, stderr = invoke([*BOARD, "{root}/records-corrupt"], inputs, tmp_path)
    assert exit_code == 0, stderr
    assert "warning: unreadable record listed: TypeError: result.json holds a JSON list" in stderr
    assert "| sembridge" in (tmp_path / "out" / "pocket.md").read_text()


def test_a_default_baseline_without_records_is_a_warning(inputs, tmp_path, no_heavy_work):
    import shutil

    shutil.copytree(Path(inputs["root"]) / "records", tmp_path / "runs")
    shutil.rmtree(next(p for p in (tmp_path / "runs").iterdir() if p.name.startswith("random-")))
    exit_code, stderr = invoke([*BOARD, "{runs}"], inputs, tmp_path)
    assert exit_code == 0 and "warning: baseline method 'random' has no records" in stderr


def test_a_damaged_record_is_run_again_with_a_warning(inputs, capsys):
    from harness.runs import RunDir

    folder = RunDir(Path(inputs["root"]) / "records-corrupt" / "listed")
    assert folder.done() and folder.recorded() is None  # the skip rule: like a failed record, run again
    assert "result.json is not a run record (a JSON list): running it again" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------
# Plugins and signals: a fresh process
# -------------------------------------------------------------------------------------------
PLUGINS = '''
import os
import signal
import time


def no_plan(ctx):
    """Returns None instead of a plan."""
    return None


def interrupted(ctx):
    """Ctrl-C while the method runs."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plugins")
    (root / "badplugs.py").write_text(PLUGINS)
    info = root / "badplugs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplugs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.methods]\nghost = no_such_module_here:method\n"
                                           "no-plan = badplugs:no_plan\ninterrupted = badplugs:interrupted\n")
    return dict(os.environ, PYTHONPATH=str(root))


@pytest.mark.parametrize("method, code, fragment", [
    ("ghost", 1, "FAIL: method 'ghost' (plugin:badplugs) fails to load: ModuleNotFoundError"),
    ("no-plan", 1, "FAIL: 'no-plan' raised HarnessError on the fixtures: method 'no-plan' returned NoneType, "
                   "not a TransferPlan"),
    ("interrupted", 130, "interrupted"),
])
def test_broken_plugins_and_ctrl_c_in_a_fresh_process(method, code, fragment, plugin_env):
    # a job started in the background (`cmd &` without job control) inherits SIGINT ignored, and Python
    # then never raises KeyboardInterrupt: give the child the default disposition a terminal would
    out = subprocess.run([sys.executable, "-m", "harness.cli", "check-method", method], capture_output=True,
                         text=True, env=plugin_env, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert (out.returncode, fragment in out.stderr) == (code, True), out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


# -------------------------------------------------------------------------------------------
# Warnings and file modes
# -------------------------------------------------------------------------------------------
def test_qrels_without_a_relevant_document_warn_on_stderr(capsys):
    from harness.evaluate import evaluate

    result = evaluate({"q1": {"d1": 0}, "q2": {"d2": 0}}, {"q1": {"d1": 1.0}, "q2": {"d1": 1.0}}, ["ndcg@10"])
    assert result.mean == {"ndcg@10": 0.0}
    assert "warning: the qrels judge no document relevant" in capsys.readouterr().err


def test_atomic_writes_end_with_the_umask_mode(inputs, tmp_path, no_heavy_work):
    from harness.util import atomic_dir, write_json_atomic

    umask = os.umask(0o022)
    os.umask(umask)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
    exit_code, _ = invoke([*BOARD, "{root}/records"], inputs, tmp_path)  # a leaderboard as a group reads it
    assert exit_code == 0 and stat.S_IMODE((tmp_path / "out" / "pocket.md").stat().st_mode) == 0o666 & ~umask
