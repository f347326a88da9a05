"""Sweep variants: a ``methods`` entry ``name(param=value, ...)`` is the method with those parameters
(ablations), recorded as the method itself; configs/pocket-ablations.yaml plans."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.sweep import method_variant, plan_cells, sweep
from harness.util import HarnessError, read_json
from tests.conftest import fake_pipeline

ROOT = Path(__file__).resolve().parent.parent

PROFILE = """\
profile: tiny-ablations
languages: [ko]
methods: [sembridge, "sembridge(bias=stale)", "sembridge(alpha=2, copy_overlap=false)", "mean(copy_overlap=nope)"]
seeds: [0]
settings: [zero-shot]
method_params:
  sembridge: {fuzzy_match_all: false}
"""


def test_method_variant_parses_parameters():
    assert method_variant("sembridge") == ("sembridge", [])
    assert method_variant("sembridge(bias=stale, alpha=2.5)") == ("sembridge", ["method.bias=stale", "method.alpha=2.5"])
    # a config key sets that key for the variant's cells (the bridge ablations), not a method parameter
    assert method_variant('sembridge(bridge_prefix="", alpha=2)') == ("sembridge", ['bridge_prefix=""', "method.alpha=2"])
    for bad in ("sembridge(bias)", "sembridge(", "sembridge()"):
        with pytest.raises(HarnessError, match="name\\(param=value"):
            method_variant(bad)


def test_variants_are_the_method_with_their_parameters(write_profile, monkeypatch, tmp_path):
    profile = write_profile(PROFILE, "tiny-ablations")
    cells = {c.method: c for c in plan_cells(profile)}
    base, stale, alpha = cells["sembridge"], cells["sembridge(bias=stale)"], cells["sembridge(alpha=2, copy_overlap=false)"]
    assert base.run["method"] == stale.run["method"] == alpha.run["method"] == "sembridge"
    assert "bias" not in base.run["method_params"] and stale.run["method_params"]["bias"] == "stale"
    assert alpha.run["method_params"]["alpha"] == 2.0 and alpha.run["method_params"]["copy_overlap"] is False
    # the profile's method_params of the name apply to every variant
    assert all(c.run["method_params"]["fuzzy_match_all"] is False for c in (base, stale, alpha))
    assert "must be true or false" in cells["mean(copy_overlap=nope)"].error
    calls = fake_pipeline(monkeypatch, lambda run: ({"ndcg@10": {"q1": 0.5}}, {}))
    summary = sweep(profile, runs_dir=str(tmp_path / "runs"), echo=lambda _: None)
    assert len(calls) == 3 and len(summary.failed) == 1 and len(set(summary.ran)) == 3  # three distinct run ids
    failed = read_json(next((tmp_path / "runs").glob("mean-*/result.json")))
    assert failed["status"] == "failed" and failed["method"] == "mean"


def test_config_key_variants_change_the_run_config(write_profile):
    profile = write_profile(PROFILE.replace('"mean(copy_overlap=nope)"', '"sembridge(bridge_model=pocket:muse-v3)"'),
                            "tiny-ablations")
    cells = {c.method: c for c in plan_cells(profile)}
    use = cells["sembridge(bridge_model=pocket:muse-v3)"].run
    assert use["bridge_model"] == "pocket:muse-v3" and cells["sembridge"].run["bridge_model"] == "pocket:me5-small"
    assert use["method"] == "sembridge" and "bridge_model" not in use["method_params"]


def test_objective_variants_share_one_zero_shot_cell(write_profile):
    profile = write_profile(PROFILE.replace('"mean(copy_overlap=nope)"', '"sembridge(train.objective=clear)"')
                            .replace("settings: [zero-shot]", "settings: [zero-shot, fine-tuned]"), "tiny-ablations")
    cells = plan_cells(profile)
    clear = [c for c in cells if c.method == "sembridge(train.objective=clear)"]
    assert [c.setting for c in clear] == ["fine-tuned"]  # its zero-shot run is plain sembridge's
    assert clear[0].run["train.objective"] == "clear"
    from harness.runs import run_id

    assert len({run_id(c.run) for c in cells}) == len(cells)


def test_a_method_that_fails_to_load_stops_the_sweep_before_any_cell(write_profile, monkeypatch, tmp_path):
    from harness import method_specs

    def broken(name):
        raise method_specs.MethodLoadError(f"method '{name}' (builtin) fails to load: ModuleNotFoundError: torch")

    monkeypatch.setattr(method_specs, "get_method", broken)
    profile = write_profile(PROFILE, "tiny-ablations")
    with pytest.raises(method_specs.MethodLoadError, match="fails to load"):
        sweep(profile, runs_dir=str(tmp_path / "runs"), echo=lambda _: None)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_pocket_ablations_profile_plans():
    cells = plan_cells(str(ROOT / "configs" / "pocket-ablations.yaml"), ["languages=[ko]"])
    assert cells and not [c.error for c in cells if c.error]
    assert {c.setting for c in cells} == {"zero-shot"}
    from harness.runs import run_id

    assert len({run_id(c.run) for c in cells}) == len(cells)  # every variant and seed is its own run


def test_deterministic_methods_run_zero_shot_once_and_fine_tune_every_seed(write_profile):
    profile = write_profile("profile: seeds\nlanguages: [ko]\nmethods: [sembridge, random, nosuch]\n"
                            "seeds: [0, 1, 2]\nsettings: [zero-shot, fine-tuned]\n", "seeds")
    cells = plan_cells(profile)
    planned = {(c.method, c.setting): sorted(x.seed for x in cells if (x.method, x.setting) == (c.method, c.setting))
               for c in cells}
    assert planned[("sembridge", "zero-shot")] == [0]  # its plan does not depend on the seed
    assert planned[("sembridge", "fine-tuned")] == planned[("random", "zero-shot")] == [0, 1, 2]
    assert planned[("nosuch", "zero-shot")] == [0, 1, 2]  # an unknown method still gets its failure records


def test_exclude_leaves_cells_out_and_a_bad_pattern_is_one_error(write_profile):
    profile = write_profile("profile: ex\nlanguages: [ko, en]\nmethods: [random]\nseeds: [0, 1]\n"
                            "settings: [zero-shot, fine-tuned]\nexclude: [{lang: en, setting: fine-tuned}]\n", "ex")
    cells = {(c.lang, c.setting, c.seed) for c in plan_cells(profile)}
    assert cells == {(lang, s, seed) for lang in ("ko", "en") for s in ("zero-shot", "fine-tuned") for seed in (0, 1)
                     if (lang, s) != ("en", "fine-tuned")}
    with pytest.raises(HarnessError, match="exclude: .* is not a mapping"):
        plan_cells(profile, ["exclude=[{language: en}]"])
