"""End to end on the real pocket assets: the README's main job and the reference measurements.

These run the CLI as a user does. The first run on a machine builds the caches (me5-small,
datasets, the Korean WordPiece, bridge vectors of both vocabularies); later runs reuse them.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def harness(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def only_result(runs: Path) -> dict:
    (path,) = runs.glob("*/result.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("lang, expected", [("en", 0.740), ("ko", 0.084)])
def test_unadapted_splade_tiny_matches_reference_measurement(tmp_path, lang, expected):
    """REFERENCE.md measured MRR@10 of unadapted splade-tiny on the GNOME help collections."""
    harness("eval", "--model", "pocket:splade-tiny", "--dataset", f"gnome-help-{lang}", "--runs-dir", str(tmp_path))
    record = only_result(tmp_path)
    assert record["counts"]["queries"] == 348
    assert record["metrics"]["mrr@10"] == pytest.approx(expected, abs=0.03)


def test_main_job_sembridge_ko_zero_shot(tmp_path):
    """README's main-job command, then the same run again: reported, not repeated; --force reuses caches."""
    runs = tmp_path / "runs"
    args = ("run", "--method", "sembridge", "--lang", "ko", "--setting", "zero-shot", "--runs-dir", str(runs))
    harness(*args)
    record = only_result(runs)
    assert record["status"] == "ok" and record["method"] == "sembridge" and record["lang"] == "ko"
    assert set(record["metrics"]) == {"ndcg@10", "recall@100", "mrr@10"}
    folder = runs / record["run_id"]
    for name in record["files"].values():
        assert (folder / name).stat().st_size > 0
    assert record["plan"]["copied"] > 0 and record["plan"]["mixed"] > 0
    # the transferred model must beat the unadapted English model on Korean (MRR@10 0.084)
    assert record["metrics"]["mrr@10"] > 0.084

    again = harness(*args)
    assert "already recorded" in again.stdout
    harness(*args, "--force")
    forced = only_result(runs)
    assert forced["plan"]["bridge_source_cache"] == "hit" and forced["plan"]["bridge_target_cache"] == "hit"
    assert forced["timing"]["bridge_source"] < 5.0
    assert forced["metrics"] == record["metrics"]  # same config and seed: same numbers


def test_inspect_shows_a_korean_token_built_from_its_english_meaning():
    """After the main job the caches are warm: 파일 ("file") is mixed from 'file'-like source tokens."""
    out = harness("inspect", "--method", "sembridge", "--lang", "ko", "--token", "파일", "--top", "3")
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("파일 (id ") and lines[0].endswith("mixed")
    assert any(line.split()[1] in ("file", "files") for line in lines[1:])


def test_torchrun_two_processes_fine_tune_and_record_once(tmp_path):
    """DDP on CPU (gloo) under torchrun: both ranks train, rank 0 alone evaluates and writes the record."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness.cli",
           "run", "--method", "random", "--lang", "ko", "--setting", "fine-tuned", "--runs-dir", str(runs),
           "--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    record = only_result(runs)
    assert record["status"] == "ok" and record["setting"] == "fine-tuned"
    assert [p["step"] for p in record["curve"]] == [0, 2, 4]
    assert "rank 1: done; rank 0 evaluates and writes the record" in out.stdout + out.stderr
    checkpoint = runs / record["run_id"] / "train"
    assert any(checkpoint.iterdir())


def test_training_pairs_come_from_the_configured_train_dataset():
    from harness.data import load_collection
    from harness.pipeline import training_pairs
    from harness.util import HarnessError

    japanese = training_pairs({"train_dataset": "libreoffice-help-ja", "lang": "ko"})  # not the run's language
    assert japanese == load_collection("libreoffice-help-ja").train_pairs
    assert japanese != load_collection("libreoffice-help-ko").train_pairs
    with pytest.raises(HarnessError, match="'gnome-help-ko' has no training pairs"):
        training_pairs({"train_dataset": "gnome-help-ko", "lang": "ko"})


def test_curve_points_use_train_eval_dataset_and_the_record_the_run_dataset(tmp_path):
    """train.eval_dataset moves only the in-training curve; the final numbers stay on the run's dataset."""
    def fine_tune(runs: Path, *extra: str) -> dict:
        harness("run", "--method", "random", "--lang", "ko", "--setting", "fine-tuned", "--runs-dir", str(runs),
                "--set", "train.steps=2", "--set", "train.eval_every=2", *extra)
        return only_result(runs)

    same = fine_tune(tmp_path / "same", "--set", "train.eval_dataset=null")  # curve on the run's dataset
    assert same["curve"][-1]["ndcg@10"] == pytest.approx(same["metrics"]["ndcg@10"])
    moved = fine_tune(tmp_path / "moved", "--set", "train.eval_dataset=gnome-help-ja")
    config = json.loads((tmp_path / "moved" / moved["run_id"] / "config.json").read_text())
    assert config["train.eval_dataset"] == "gnome-help-ja"
    assert moved["metrics"] == same["metrics"]  # same training, same final evaluation on gnome-help-ko
    assert moved["curve"][-1]["ndcg@10"] != pytest.approx(same["curve"][-1]["ndcg@10"])


def test_eval_also_scores_the_same_model_on_more_collections_each_its_own_column(tmp_path):
    """eval.also: the final model on more collections, recorded in the run folder; each matches a run made
    on that collection alone, and is a leaderboard column of its own."""
    from harness.tables import load_records

    runs = tmp_path / "runs"
    base = ("run", "--method", "overlap", "--lang", "ko", "--setting", "zero-shot", "--no-save-model")
    harness(*base, "--runs-dir", str(runs), "--set", "eval.also=['gnome-help-{lang}-x-en', gnome-help-en, 'gnome-help-{lang}']")
    record = only_result(runs)
    assert sorted(record["also"]) == ["gnome-help-en", "gnome-help-ko", "gnome-help-ko-x-en"]
    assert record["also"]["gnome-help-ko"]["metrics"] == record["metrics"]  # the run's own collection again
    for also in record["also"].values():
        assert all((runs / record["run_id"] / path).stat().st_size > 0 for path in also["files"].values())
    alone = tmp_path / "alone"
    harness(*base, "--runs-dir", str(alone), "--set", "dataset=gnome-help-en")
    assert only_result(alone)["metrics"] == record["also"]["gnome-help-en"]["metrics"]
    entries = load_records(runs).entries
    assert sorted(e.column.dataset for e in entries) == ["gnome-help-en", "gnome-help-ko", "gnome-help-ko",
                                                         "gnome-help-ko-x-en"]
