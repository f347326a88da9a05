"""The sweep over a tiny profile: skipping recorded cells, recording failures and going on."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness.evaluate import EvalResult
from harness.runs import RESULT, RunDir, write_record
from harness.sweep import sweep
from harness.util import HarnessError, read_json
from tests.conftest import fake_pipeline

PROFILE = """\
profile: tiny
languages: [ko, ja]
methods: [random, mean, nosuchmethod]
seeds: [0, 1]
settings: [zero-shot]
"""


@pytest.fixture
def profile(write_profile):
    return write_profile(PROFILE, "tiny")


@pytest.fixture
def fake_execute(monkeypatch):
    """pipeline.execute without models, through the real write_record; mean/ja has an invalid plan."""
    def outcome(run):
        if run["method"] == "mean" and run["lang"] == "ja":
            raise HarnessError("method 'mean' returned an invalid plan: row 3 sums to 0")
        return {"ndcg@10": {"q1": 0.5, "q2": 0.25 * (run["seed"] + 1)}}, {}

    return fake_pipeline(monkeypatch, outcome)  # the runs executed


def iter_results(runs_dir) -> list[dict]:
    return [read_json(p) for p in sorted(Path(runs_dir).glob(f"*/{RESULT}"))]


def cell_that_kills_its_worker_on_ja(run: dict, runs_dir: str, save_model: bool = False):
    """Stands in for a cell that runs out of memory: the kernel kills the worker outright.

    ko cells take longer, so one is in flight on the other worker when a ja cell kills its own."""
    time.sleep(0.5 if run["lang"] == "ja" else 3)
    if run["lang"] == "ja":
        os.kill(os.getpid(), signal.SIGKILL)
    folder = RunDir.for_config(runs_dir, run)
    evaluation = EvalResult(mean={"ndcg@10": 0.5}, per_query={"ndcg@10": {"q1": 0.5}}, n_queries=1, metrics=("ndcg@10",))
    write_record(folder, run, evaluation, {"q1": {"d1": 1.0}}, {"x": 0.1}, qrels={"q1": {"d1": 1}})
    return folder.id, "ran", None


def test_sweep_records_failures_and_goes_on(profile, fake_execute, tmp_path):
    runs_dir = str(tmp_path / "runs")
    lines = []
    summary = sweep(profile, runs_dir=runs_dir, echo=lines.append)
    # 3 methods x 2 languages x 2 seeds x 1 setting, less mean's seed 1 (deterministic: one zero-shot plan)
    assert summary.total == 10
    assert len(summary.ran) == 5 and summary.skipped == [] and len(summary.failed) == 5
    assert len(fake_execute) == 6  # 5 ok + 1 invalid plan; the unknown method never reaches execute
    records = iter_results(runs_dir)
    assert len(records) == 10
    failed = [r for r in records if r["status"] == "failed"]
    assert sorted((r["method"], r["lang"]) for r in failed) == sorted(
        [("mean", "ja")] + [("nosuchmethod", "ko")] * 2 + [("nosuchmethod", "ja")] * 2)
    assert all(r["metrics"] is None for r in failed)
    plan_error = next(r for r in failed if r["method"] == "mean")
    assert plan_error["error"] == "HarnessError: method 'mean' returned an invalid plan: row 3 sums to 0"
    assert "Traceback" in (tmp_path / "runs" / plan_error["run_id"] / "error.txt").read_text()
    unknown = next(r for r in failed if r["method"] == "nosuchmethod")
    assert unknown["error"].startswith("planning failed: unknown method 'nosuchmethod'")
    assert summary.line() == "10 cells: 5 ran, 0 already recorded, 5 failed"
    assert any(line.startswith("FAILED mean/ja/zero-shot/s0") for line in lines)


def test_second_sweep_skips_ok_cells_and_retries_failures(profile, fake_execute, tmp_path):
    runs_dir = str(tmp_path / "runs")
    sweep(profile, runs_dir=runs_dir, echo=lambda _: None)
    fake_execute.clear()
    summary = sweep(profile, runs_dir=runs_dir, echo=lambda _: None)
    assert len(summary.skipped) == 5 and summary.ran == [] and len(summary.failed) == 5
    assert [(r["method"], r["lang"], r["seed"]) for r in fake_execute] == [("mean", "ja", 0)]  # retried


def test_fail_fast_stops_at_first_failure(profile, fake_execute, tmp_path):
    runs_dir = str(tmp_path / "runs")
    summary = sweep(profile, runs_dir=runs_dir, overrides=["methods=[random, mean]"], echo=lambda _: None,
                    fail_fast=True)
    assert summary.stopped_early and len(summary.failed) == 1
    assert len(iter_results(runs_dir)) == len(summary.ran) + 1 < 8


def test_parallel_workers_record_real_failures(profile, tmp_path):
    """Spawned workers run the real pipeline.execute; a source model whose weights do not fit its config
    (whole files, so preflight passes it) fails every cell."""
    import json

    from tests.test_bad_input import tiny_model

    runs_dir = str(tmp_path / "runs")
    broken = tiny_model(tmp_path / "broken-model")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": 16, "intermediate_size": 32}))
    overrides = ["methods=[random]", "languages=[ko]", f"source_model={broken}"]
    summary = sweep(profile, runs_dir=runs_dir, overrides=overrides, workers=2, echo=lambda _: None)
    assert summary.total == 2 and len(summary.failed) == 2
    records = iter_results(runs_dir)
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all(r["error"] for r in records)


def test_a_killed_worker_fails_only_its_own_cells(profile, tmp_path, monkeypatch):
    import harness.sweep

    monkeypatch.setattr(harness.sweep, "_run_cell_in_worker", cell_that_kills_its_worker_on_ja)
    runs_dir = str(tmp_path / "runs")
    summary = sweep(profile, runs_dir=runs_dir, overrides=["methods=[random]"], workers=2, echo=lambda _: None)
    assert summary.total == 4 and len(summary.ran) == 2 and len(summary.failed) == 2
    outcome = {(r["lang"], r["seed"]): (r["status"], r.get("error")) for r in iter_results(runs_dir)}
    crashed = ("failed", "worker crashed: the process running this cell died (killed, e.g. out of memory)")
    assert outcome == {("ko", 0): ("ok", None), ("ko", 1): ("ok", None), ("ja", 0): crashed, ("ja", 1): crashed}


def test_missing_assets_stop_the_sweep_before_any_cell(profile, tmp_path):
    runs_dir = tmp_path / "runs"
    overrides = ["methods=[random]", "languages=[ko]", f"source_model={tmp_path / 'no-such-model'}"]
    with pytest.raises(HarnessError, match="1 missing .*no-such-model' does not exist"):
        sweep(profile, runs_dir=str(runs_dir), overrides=overrides, echo=lambda _: None)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_cheap_cells_run_first():
    from harness.sweep import Cell, cheap_first

    cells = [Cell(m, "ko", seed, setting) for m in ("a", "b") for seed in (0, 1) for setting in ("zero-shot", "fine-tuned")]
    order = [(c.setting, c.seed, c.method) for c in cheap_first(cells)]
    assert order == [("zero-shot", 0, "a"), ("zero-shot", 0, "b"), ("zero-shot", 1, "a"), ("zero-shot", 1, "b"),
                     ("fine-tuned", 0, "a"), ("fine-tuned", 0, "b"), ("fine-tuned", 1, "a"), ("fine-tuned", 1, "b")]


def test_source_models_multiply_the_grid(tmp_path):
    from harness.sweep import plan_cells

    path = tmp_path / "models.yaml"
    path.write_text(PROFILE.replace("nosuchmethod", "overlap") + "source_models: [pocket:splade-tiny, org/other-splade]\n")
    cells = plan_cells(str(path))
    # models x languages x (random and overlap: 2 seeds; mean, deterministic: the first seed)
    assert len(cells) == 2 * 2 * (2 + 1 + 2)
    models = [c.run["source_model"] for c in cells]
    assert models.count("pocket:splade-tiny") == models.count("org/other-splade") == 10
    assert len({RunDir.for_config(str(tmp_path), c.run).id for c in cells}) == 20
    assert all("source_models" not in c.run for c in cells)
    # the default (no source_models) gives exactly the runs of source_model alone
    single = plan_cells(str(path), ["source_models=[]"])
    assert [c.run for c in single] == [c.run for c in cells if c.run["source_model"] == "pocket:splade-tiny"]


@pytest.mark.parametrize("quiet", [False, True])
def test_the_sweep_command_says_its_summary_once(profile, fake_execute, tmp_path, quiet):
    from click.testing import CliRunner

    from harness.cli import main

    args = ["-q"] * quiet + ["sweep", profile, "--runs-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1  # failed cells
    assert result.output.count("10 cells: 5 ran, 0 already recorded, 5 failed") == 1


def test_the_pool_trains_each_pocket_teacher_once_before_its_cells(monkeypatch):
    """qg-distill cells with the pocket teacher: its training runs first, in the sweep's process, once per
    language; other objectives and other teachers need none. (The real training is tests/test_teacher.py's.)"""
    from harness import teacher
    from harness.sweep import prepare_teachers

    asked = []
    monkeypatch.setattr(teacher, "pocket_teacher_dir", lambda lang: asked.append(lang) or f"/cache/{lang}")
    qg = {"train.objective": "qg-distill", "train.teacher": teacher.POCKET_TEACHER}
    runs = [{"lang": "ko", **qg}, {"lang": "ko", **qg}, {"lang": "zh", **qg},
            {"lang": "ja", "train.objective": "splade"}, {"lang": "ru", **qg, "train.teacher": "/my/teacher"}]
    lines = []
    prepare_teachers(runs, lines.append)
    assert asked == ["ko", "zh"]
    assert lines == ["pocket query generator (ko): /cache/ko", "pocket query generator (zh): /cache/zh"]


def slow_cell(run: dict, runs_dir: str, save_model: bool = False):
    """A cell of 2 seconds in a worker, recorded for real."""
    time.sleep(2)
    folder = RunDir.for_config(runs_dir, run)
    evaluation = EvalResult(mean={"ndcg@10": 0.5}, per_query={"ndcg@10": {"q1": 0.5}}, n_queries=1, metrics=("ndcg@10",))
    write_record(folder, run, evaluation, {"q1": {"d1": 1.0}}, {"x": 0.1}, qrels={"q1": {"d1": 1}})
    return folder.id, "ran", None


def test_sigusr1_drains_the_pool_the_cells_in_flight_finish(profile, tmp_path, monkeypatch):
    import threading

    import harness.sweep

    monkeypatch.setattr(harness.sweep, "_run_cell_in_worker", slow_cell)
    runs_dir, lines = str(tmp_path / "runs"), []
    threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGUSR1)).start()  # workers are up, 2 cells in flight
    summary = sweep(profile, runs_dir=runs_dir, overrides=["methods=[random]", "seeds=[0, 1, 2]"], workers=2,
                    echo=lines.append)
    assert summary.total == 6 and summary.ok and summary.draining
    assert len(summary.ran) + summary.not_started == 6 and 2 <= len(summary.ran) <= 4
    assert len(iter_results(runs_dir)) == len(summary.ran)  # every cell that started was recorded whole
    assert "SIGUSR1: the cells in flight finish; no other cell starts" in lines
    assert lines[-1].endswith(f"(drained on SIGUSR1: {summary.not_started} cells not started)")
    again = sweep(profile, runs_dir=runs_dir, overrides=["methods=[random]", "seeds=[0, 1, 2]"], workers=1,
                  echo=lambda _: None)
    assert len(again.skipped) == len(summary.ran) and not again.draining  # the next sweep goes on


def test_sigusr1_drains_a_serial_sweep_after_its_cell(profile, tmp_path, monkeypatch):
    from tests.conftest import fake_pipeline

    def outcome(run):
        os.kill(os.getpid(), signal.SIGUSR1)  # arrives while the first cell runs
        return {"ndcg@10": {"q1": 0.5}}, {}

    executed = fake_pipeline(monkeypatch, outcome)
    summary = sweep(profile, runs_dir=str(tmp_path / "runs"), overrides=["methods=[random]"], echo=lambda _: None)
    assert len(executed) == 1 and len(summary.ran) == 1 and summary.not_started == 3
