"""Sweeps beyond one machine: the same cells and records under submitit (its local executor) and Ray.

Real jobs run the real pipeline on a tiny model: 4 cells, the two of a source model whose weights do not
fit its config fail and are recorded failed; sweeping again runs exactly those two again (their records
are rewritten) and skips the two recorded ok (theirs are untouched). (Repairing the model would give
new run ids: a local model's content hash is part of the run id.) Skips when the ``scale`` extra is not installed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runs import RESULT, RunDir
from harness.sweep import plan_cells, sweep
from harness.util import HarnessError, read_json
from tests.test_bad_input import CORPUS, QRELS, QUERIES, beir_folder, tiny_model


def grid(root: Path) -> str:
    """methods [random] x ko x seeds [0, 1] x source models [good, broken]: 4 zero-shot cells."""
    good, broken = tiny_model(root / "good"), tiny_model(root / "broken")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": 16, "intermediate_size": 32}))
    beir_folder(root / "beir", CORPUS, QUERIES, QRELS)
    (root / "grid.yaml").write_text(
        f"methods: [random]\nlanguages: [ko]\nseeds: [0, 1]\nsettings: [zero-shot]\n"
        f"source_models: [{good}, {broken}]\nbridge_model: {good}\ntarget_tokenizer: {good}\n"
        f"dataset: beir:{root / 'beir'}\n")
    return str(root / "grid.yaml")


def statuses(runs_dir: Path) -> dict[str, tuple[str, str]]:
    """run id -> (status, source model folder name) of every record."""
    out = {}
    for path in sorted(runs_dir.glob(f"*/{RESULT}")):
        record, config = read_json(path), read_json(path.parent / "config.json")
        out[record["run_id"]] = (record["status"], Path(config["source_model"]).name)
    return out


def sweep_twice(tmp_path: Path, launcher: str, options: dict) -> None:
    profile, runs = grid(tmp_path), tmp_path / "runs"
    planned = {RunDir.for_config(str(runs), c.run).id for c in plan_cells(profile)}
    assert len(planned) == 4
    first = sweep(profile, runs_dir=str(runs), echo=lambda _: None, save_model=False, launcher=launcher,
                  launcher_options=options)
    assert first.total == 4 and len(first.ran) == 2 and len(first.failed) == 2 and first.skipped == []
    records = statuses(runs)
    assert set(records) == planned  # the cells of the plan, recorded under their run ids
    assert sorted(records.values()) == [("failed", "broken")] * 2 + [("ok", "good")] * 2
    assert {f["run_id"] for f in first.failed} == {rid for rid, (s, _) in records.items() if s == "failed"}
    assert all("size mismatch" in f["error"] or "ignore_mismatched_sizes" in f["error"] for f in first.failed)
    stamps = {rid: (runs / rid / RESULT).stat().st_mtime_ns for rid in records}
    second = sweep(profile, runs_dir=str(runs), echo=lambda _: None, save_model=False, launcher=launcher,
                   launcher_options=options)
    assert sorted(second.skipped) == sorted(first.ran) and second.ran == []  # recorded ok: not run again
    assert sorted(f["run_id"] for f in second.failed) == sorted(f["run_id"] for f in first.failed)
    assert statuses(runs) == records
    rewritten = {rid for rid in records if (runs / rid / RESULT).stat().st_mtime_ns != stamps[rid]}
    assert rewritten == {f["run_id"] for f in first.failed}  # the failed cells ran again, the ok ones did not


def test_submitit_local_executor_records_and_resumes(tmp_path):
    pytest.importorskip("submitit", reason="the scale extra (submitit) is not installed")
    sweep_twice(tmp_path, "submitit", {"cluster": "local", "timeout_min": 10})
    assert any((tmp_path / "runs" / ".submitit").iterdir())  # the jobs' logs


def test_ray_local_cluster_records_and_resumes(tmp_path):
    ray = pytest.importorskip("ray", reason="the scale extra (ray) is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sweep_twice(tmp_path, "ray", {})
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()


def test_local_launcher_gives_the_same_records(tmp_path):
    """The default launcher (today's pool) on the same grid: the same run ids and statuses."""
    sweep_twice(tmp_path, "local", {})


def test_launcher_errors_are_one_line(tmp_path):
    profile = grid(tmp_path)
    with pytest.raises(HarnessError, match="unknown launcher 'slurm'; launchers: local, submitit, ray"):
        sweep(profile, runs_dir=str(tmp_path / "runs"), launcher="slurm")
    with pytest.raises(HarnessError, match="the local launcher takes no options"):
        sweep(profile, runs_dir=str(tmp_path / "runs"), launcher_options={"partition": "gpu"})
    pytest.importorskip("ray")
    with pytest.raises(HarnessError, match="the ray launcher takes address, .* not partition"):
        sweep(profile, runs_dir=str(tmp_path / "runs"), launcher="ray", launcher_options={"partition": "gpu"})


@pytest.mark.parametrize("launcher", ["ray", "submitit"])
def test_a_missing_launcher_package_is_one_line_naming_the_extra(tmp_path, launcher):
    profile = grid(tmp_path)
    code = (f"import sys; sys.modules[{launcher!r}] = None; from harness.cli import main; "
            f"main(['sweep', {profile!r}, '--runs-dir', {str(tmp_path / 'runs')!r}, '--launcher', {launcher!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("sweep:")]
    assert lines == [f"error: --launcher {launcher} needs the '{launcher}' package, which is not installed: "
                     "pip install 'sparse-transfer-harness[scale]' (from a checkout: pip install -e '.[scale]')"]
    assert not list((tmp_path / "runs").glob(f"*/{RESULT}"))  # nothing ran, nothing recorded


def test_launcher_options_are_key_value():
    from harness.launchers import parse_options

    assert parse_options(["timeout_min=60", "partition=gpu"]) == {"timeout_min": 60, "partition": "gpu"}
    with pytest.raises(HarnessError, match="--launcher-opt expects KEY=VALUE, got 'gpu'"):
        parse_options(["gpu"])


def cell_whose_process_dies_on_broken(run: dict, runs_dir: str, save_model: bool, threads: int):
    """Stands in for a job killed outright (out of memory, node lost): no record, no outcome."""
    import os

    from harness.launchers import remote_cell

    if Path(run["source_model"]).name == "broken":
        os._exit(3)
    return remote_cell(run, runs_dir, save_model, threads)


@pytest.mark.parametrize("launcher", ["submitit", "ray"])
def test_a_job_that_dies_is_recorded_failed_by_the_sweep(tmp_path, monkeypatch, launcher):
    pytest.importorskip(launcher, reason=f"the scale extra ({launcher}) is not installed")
    import harness.launchers

    # the jobs cannot import this test module: its functions travel by value (Ray has its own cloudpickle)
    pickler = pytest.importorskip("ray.cloudpickle" if launcher == "ray" else "cloudpickle")
    pickler.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(harness.launchers, "remote_cell", cell_whose_process_dies_on_broken)
    options = {"cluster": "local", "timeout_min": 10} if launcher == "submitit" else {"init_num_cpus": 2}
    runs = tmp_path / "runs"
    try:
        summary = sweep(grid(tmp_path), runs_dir=str(runs), echo=lambda _: None, save_model=False,
                        launcher=launcher, launcher_options=options)
    finally:
        pickler.unregister_pickle_by_value(sys.modules[__name__])
    assert len(summary.ran) == 2 and len(summary.failed) == 2
    assert sorted(statuses(runs).values()) == [("failed", "broken")] * 2 + [("ok", "good")] * 2
    cause = {"submitit": "the process ended without a result (killed, e.g. out of memory, or timed out); log: ",
             "ray": "The worker died unexpectedly"}[launcher]
    for failed in summary.failed:
        assert failed["error"].startswith(f"{launcher} (") and " job failed: " in failed["error"]
        assert cause in failed["error"], failed["error"]
        assert read_json(runs / failed["run_id"] / RESULT)["error"] == failed["error"]
