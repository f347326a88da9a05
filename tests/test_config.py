import pytest

from harness.config import SCHEMA, load_config, method_overrides, run_config
from harness.runs import run_id
from harness.util import HarnessError


def test_pocket_profile_resolves_with_overrides():
    config = load_config("pocket", ["train.lr=1e-4", "encode.max_active_dims=64", "objective=clear"])
    assert config["train.lr"] == 1e-4 and config["encode.max_active_dims"] == 64
    assert config["train.objective"] == "clear" and config["source_model"] == "pocket:splade-tiny"
    assert set(config) == set(SCHEMA)


def test_paper_profile_loads():
    assert load_config("paper")["bridge_model"] == "BAAI/bge-m3"


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    ("train.steps=abc", "config key 'train.steps' must be int, got 'abc'"),
    ("train.bf16=3", "config key 'train.bf16' must be bool"),
    ("nokey", "--set expects key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(HarnessError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        load_config("pocket", [override])


def test_unknown_profile_and_bad_file(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'pocket'"):
        load_config("pockt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("encode:\n  batch_sise: 4\n")
    with pytest.raises(HarnessError, match="encode.batch_sise"):
        load_config(str(bad))


def test_run_config_and_id():
    config = load_config("pocket")
    zs = run_config(config, method="mean", method_params={"copy_overlap": True}, lang="ko", seed=0, setting="zero-shot")
    assert zs["dataset"] == "gnome-help-ko" and not any(k.startswith("train.") for k in zs)
    ft = run_config(config, method="mean", method_params={"copy_overlap": True}, lang="ko", seed=0, setting="fine-tuned")
    assert ft["train_dataset"] == "libreoffice-help-ko-train"  # the training pages only (dev held out)
    assert run_id(zs) != run_id(ft) and run_id(zs) == run_id(dict(zs))
    other = load_config("pocket", ["train.lr=1e-3"])
    # training keys do not change a zero-shot run's identity
    assert run_id(run_config(other, method="mean", method_params={"copy_overlap": True}, lang="ko", seed=0,
                             setting="zero-shot")) == run_id(zs)
    assert run_id(zs).startswith("mean-ko-zero-shot-s0-")
    assert method_overrides(["method.alpha=2", "train.lr=1"]) == {"alpha": 2}


def test_curve_collection_stays_out_of_the_run_id_unless_set():
    """Records made before train.eval_dataset existed keep their ids; setting it makes a distinct run."""
    args = dict(method="mean", method_params={"copy_overlap": True}, lang="ko", seed=0, setting="fine-tuned")
    plain = run_config(load_config("pocket", ["train.eval_dataset=null"]), **args)
    assert "train.eval_dataset" not in plain
    assert run_config(load_config("pocket"), **args)["train.eval_dataset"] == "libreoffice-help-ko-dev"
    cheap = run_config(load_config("pocket", ["train.eval_dataset=gnome-help-{lang}"]), **args)
    assert cheap["train.eval_dataset"] == "gnome-help-ko" and run_id(cheap) != run_id(plain)
    assert "train.eval_dataset" not in run_config(load_config("paper"), **{**args, "setting": "zero-shot"})


def test_per_language_values_with_a_default(write_profile):
    from harness.config import load_config, run_config

    profile = write_profile("profile: perlang\ndataset:\n  '*': gnome-help-{lang}\n  ar: libreoffice-ui-tips-ar\n"
                            "tokenizer: {recipe: {ja: wordpiece-seg}}\n", "perlang")
    config = load_config(profile)

    def run(lang):
        return run_config(config, method="random", method_params={}, lang=lang, seed=0, setting="zero-shot")

    assert run("ar")["dataset"] == "libreoffice-ui-tips-ar" and run("ko")["dataset"] == "gnome-help-ko"
    assert run("ja")["tokenizer.recipe"] == "wordpiece-seg" and "tokenizer.recipe" not in run("ko")  # unlisted: unset
    from harness.runs import run_id

    def pocket_id(*overrides):
        return run_id(run_config(load_config("pocket", list(overrides)), method="random", method_params={},
                                 lang="ko", seed=0, setting="zero-shot"))

    assert pocket_id() == pocket_id("dataset=gnome-help-{lang}")  # a mapping resolves to the same run id
