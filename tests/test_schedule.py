"""Learning-rate schedules: linear (default, unchanged), constant and cosine after warm-up; with a
constant schedule and fixed warm-up steps a longer budget continues the shorter run exactly."""
from __future__ import annotations

import pytest

from tests.test_train import tiny_evaluate, tiny_mlm, tiny_pairs, tiny_run, tiny_tokenizer


def factors(**over):
    import torch

    from harness.train import _optimizer

    run = {"train.steps": 10, "train.lr": 1.0, "train.warmup_ratio": 0.2, "train.weight_decay": 0.01, **over}
    _, scheduler = _optimizer(run, torch.nn.Linear(2, 2))
    return [scheduler.lr_lambdas[0](step) for step in range(10)]


def test_linear_is_the_default_and_unchanged():
    assert factors() == pytest.approx([1 / 3, 2 / 3, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert factors(**{"train.schedule": "linear"}) == factors()


def test_constant_and_cosine_after_warm_up():
    assert factors(**{"train.schedule": "constant"}) == pytest.approx([1 / 3, 2 / 3] + [1.0] * 8)
    cosine = factors(**{"train.schedule": "cosine"})
    assert cosine[2] == pytest.approx(1.0) and cosine[-1] == pytest.approx(0.5 * (1 - 0.9238795), abs=1e-6)
    assert all(a >= b for a, b in zip(cosine[2:], cosine[3:]))
    assert factors(**{"train.warmup_steps": 4})[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_unset_keys_stay_out_of_run_ids_and_bad_values_are_one_error(write_profile):
    from harness.config import load_config, run_config
    from harness.util import HarnessError

    plain = write_profile("profile: plain\n", "plain")  # sets neither key (the pocket profile now sets both)
    run = run_config(load_config(plain), method="random", method_params={}, lang="ko", seed=0, setting="fine-tuned")
    assert "train.schedule" not in run and "train.warmup_steps" not in run
    tuned = run_config(load_config("pocket"), method="random", method_params={}, lang="ko", seed=0, setting="fine-tuned")
    assert tuned["train.schedule"] == "constant" and tuned["train.warmup_steps"] == 50
    with pytest.raises(HarnessError, match="'train.schedule' must be one of 'linear', 'constant', 'cosine'"):
        load_config("pocket", ["train.schedule=step"])


def test_a_longer_constant_budget_continues_the_shorter_run(tmp_path):
    from harness.train import fine_tune

    tok, pairs = tiny_tokenizer(), tiny_pairs(40, seed=1)
    curves = []
    for steps in (12, 24):
        run = tiny_run(**{"train.steps": steps, "train.schedule": "constant", "train.warmup_steps": 2})
        result = fine_tune(run, tiny_mlm(len(tok)), tok, pairs=pairs, evaluate=tiny_evaluate(pairs),
                           work_dir=tmp_path / str(steps), echo=lambda _: None)
        curves.append([{k: v for k, v in p.items() if k != "wall_seconds"} for p in result["curve"]])
    short, long = curves
    assert [p["step"] for p in long] == [0, 6, 12, 18, 24]
    assert long[:3] == short
