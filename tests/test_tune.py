"""`harness tune`: the recipe grid runs on the dev collection, resumes, and picks by the fairness rule."""
from __future__ import annotations

import pytest

from harness.runs import RunDir
from harness.util import HarnessError
from tests.conftest import fake_pipeline

PROFILE = """\
profile: tinytune
train_dataset: libreoffice-help-{lang}-train
train:
  steps: 40
tune:
  grid: {train.lr: [1.0e-5, 1.0e-4], train.batch_size: [8, 16]}
  methods: [random, sembridge]
  languages: [ko, ja]
  seeds: [0]
"""


@pytest.fixture
def profile(write_profile):
    return write_profile(PROFILE, "tinytune")


@pytest.fixture
def fake_execute(monkeypatch):
    """Real records without models: dev score grows with lr; sembridge beats random by 0.1."""
    def outcome(run):
        score = 0.3 + 1000 * run["train.lr"] + (0.1 if run["method"] == "sembridge" else 0.0)
        score -= 0.01 * (run["train.batch_size"] == 16)
        return {"ndcg@10": {"q1": score}}, {"curve": [{"step": s, "ndcg@10": score * s / 40} for s in (0, 20, 30, 40)]}

    return fake_pipeline(monkeypatch, outcome)


def test_trials_are_dev_runs_of_every_combination(profile):
    from harness.tune import plan_trials

    trials = plan_trials(profile)
    assert len(trials) == 4 * 2 * 2
    assert {t.run["dataset"] for t in trials} == {"libreoffice-help-ko-dev", "libreoffice-help-ja-dev"}
    assert {t.run["setting"] for t in trials} == {"fine-tuned"}
    assert {(t.run["train.lr"], t.run["train.batch_size"]) for t in trials} == {
        (1e-5, 8), (1e-5, 16), (1e-4, 8), (1e-4, 16)}
    assert len({RunDir.for_config("runs", t.run).id for t in trials}) == 16


def test_tune_picks_one_recipe_and_resumes(profile, tmp_path, fake_execute):
    from harness.tune import tune

    out = tune(profile, runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "lb"), name="tinytune-tuning",
               echo=lambda _: None)
    text = out.read_text()
    assert len(fake_execute) == 16
    assert "pick: train.batch_size=8, train.lr=0.0001 (mean dev ndcg@10 0.4500)" in text
    assert "| train.batch_size=8, train.lr=1e-05 " in text and "0.3100" in text  # random ko at lr 1e-5
    assert "random: gain in last 25%" in text and "+0.1000" in text  # 0.4 - 0.4 * 30/40 for the best random
    assert "cost: 0.01 h" in text and "trials: 16 (16 recorded, 0 failed)" in text
    assert "- records produced at commit(s): " in text
    tune(profile, runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "lb"), name="tinytune-tuning",
         echo=lambda _: None)
    assert len(fake_execute) == 16  # recorded trials are not run again
    assert out.read_text() == text


def test_tune_refuses_training_on_the_dev_pages(profile):
    from harness.tune import plan_trials

    with pytest.raises(HarnessError, match="holds the pages of the dev collection.*train_dataset=libreoffice-help-"):
        plan_trials(profile, ["train_dataset=libreoffice-help-{lang}"])


def test_bad_grid_is_one_clear_error(profile):
    from harness.tune import plan_trials

    with pytest.raises(HarnessError, match="unknown config key 'train.lrr'.*did you mean 'train.lr'"):
        plan_trials(profile, ["tune.grid={train.lrr: [1]}"])
    with pytest.raises(HarnessError, match="needs a non-empty list"):
        plan_trials(profile, ["tune.grid={train.lr: 0.1}"])


def test_converged_budget_needs_every_later_cut_to_be_flat():
    from harness.tune import converged_budget

    def curve(values):
        return [{"step": 100 * i, "ndcg@10": v} for i, v in enumerate(values)]

    rising = curve([0.20, 0.30, 0.36, 0.40, 0.42, 0.43, 0.432, 0.433, 0.433])
    # cut at 600: .432 - value at 450 (.425) = .007; at 700: .433 - .4305 = .0025, and flat from there
    assert converged_budget([rising], "ndcg@10") == 700
    wobble = curve([0.20, 0.30, 0.36, 0.36, 0.40, 0.41, 0.43, 0.45, 0.47])  # flat at 300, then it climbs again
    assert converged_budget([wobble], "ndcg@10") is None
    assert converged_budget([rising, curve([0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])], "ndcg@10") == 700
    assert converged_budget([], "ndcg@10") is None


def test_tune_trials_run_under_a_launcher(profile, tmp_path, fake_execute):
    """The trials are a sweep's cells: under submitit (its in-process debug executor) they are run, recorded
    and picked from exactly as in the local pool."""
    pytest.importorskip("submitit", reason="the scale extra (submitit) is not installed")
    from harness.tune import tune

    out = tune(profile, runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "lb"), name="tinytune-tuning",
               echo=lambda _: None, launcher="submitit", launcher_options={"cluster": "debug"})
    assert len(fake_execute) == 16
    assert "pick: train.batch_size=8, train.lr=0.0001 (mean dev ndcg@10 0.4500)" in out.read_text()
    with pytest.raises(HarnessError, match="unknown launcher 'slurm'"):
        tune(profile, runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "lb"), name="x", launcher="slurm")
