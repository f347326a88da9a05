"""The architecture holds: one-way imports, the plugin API boundary, one table of method resources,
byte-stable run ids, and a new objective in one file."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The flow, one layer per line: a module may import its own layer and earlier ones, never a later one.
# Every module of the harness package must be placed here (a new one fails the test until it is).
LAYERS = [
    ["harness", "harness.util", "harness.registry", "harness.params", "harness.device", "harness.vocab",
     "harness.stats"],                                                                        # foundation
    ["harness.objectives", "harness.objectives.base", "harness.config"],                     # config + contracts
    ["harness.assets", "harness.pocket_models", "harness.data", "harness.data.*", "harness.target_tokenizer",
     "harness.segmented_tokenizer",
     "harness.bridge", "harness.static_vectors"],                                             # assets
    ["harness.api", "harness.method_specs", "harness.checks", "methods", "methods.*"],        # plan
    ["harness.transplant"],                                                                   # transplant
    ["harness.encoder", "harness.splade_head", "harness.objectives.*", "harness.train", "harness.teacher"],  # train
    ["harness.retrieval", "harness.index", "harness.lucene", "harness.backends"],             # search
    ["harness.evaluate"],                                                                     # evaluate
    ["harness.runs", "harness.model_card"],                                                   # record
    ["harness.tables", "harness.report"],                                                     # report
    ["harness.pipeline", "harness.references", "harness.fusion", "harness.teacher_eval", "harness.sweep",
     "harness.launchers",
     "harness.tune", "harness.cli",
     "harness.__main__"],                                                                     # runners
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer naming ``module`` exactly, else the one whose ``prefix.*`` covers it."""
    exact = [i for i, names in enumerate(LAYERS) if module in names]
    wild = [i for i, names in enumerate(LAYERS) for n in names if n.endswith(".*") and module.startswith(n[:-1])]
    if not exact and not wild:
        raise KeyError(module)
    return (exact or wild)[0]


def project_imports(path: Path) -> set[str]:
    """Every harness/methods module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ("harness", "methods"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in ("harness", "methods")}
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_module_has_a_layer():
    unplaced = []
    for path in sources("harness", "methods"):
        try:
            layer_of(module_name(path))
        except KeyError:
            unplaced.append(module_name(path))
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """``module imports dep`` lines for every import of a later layer than the importer's."""
    return [f"{me} (layer {layer_of(me)}) imports {dep} (layer {layer_of(dep)})"
            for me, path in sorted(modules.items()) for dep in sorted(project_imports(path))
            if layer_of(dep) > layer_of(me)]


def test_no_module_imports_a_later_stage():
    modules = {module_name(p): p for p in sources("harness", "methods")}
    checked = sum(len(project_imports(p)) for p in modules.values())
    assert checked > 100  # the scan sees the imports, including those inside functions
    upward = upward_imports(modules)
    assert not upward, "imports against the flow:\n" + "\n".join(upward)


def test_layer_check_catches_an_upward_import(tmp_path):
    """The rule can fail: a record module importing the pipeline inside a function is reported."""
    bad = tmp_path / "runs.py"
    bad.write_text("def f():\n    from harness.pipeline import execute\n")
    assert upward_imports({"harness.runs": bad}) == ["harness.runs (layer 8) imports harness.pipeline (layer 10)"]


def test_methods_import_only_the_public_api():
    leaks = [f"{module_name(p)} imports {dep}" for p in sources("methods") for dep in project_imports(p)
             if dep.startswith("harness") and dep != "harness.api"]
    assert not leaks, leaks


def test_api_exports_exactly_its_all():
    import harness.api as api

    assert sorted(set(api.__all__)) == sorted(api.__all__)
    assert all(hasattr(api, name) for name in api.__all__)
    public = {n for n, v in vars(api).items() if not n.startswith("_") and getattr(v, "__module__", "") == "harness.api"}
    assert public <= set(api.__all__), public - set(api.__all__)
    assert "get_method" not in api.__all__ and "MethodSpec" not in api.__all__  # runner internals


def test_runner_and_check_method_provide_exactly_the_method_resources():
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from harness.api import METHOD_RESOURCES, MethodContext
    from harness.checks import fixture_context, make_wordpiece
    from harness.pipeline import method_context

    fixture = fixture_context()
    tok = make_wordpiece(["a", "b", "c"])
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1,
                                       num_attention_heads=1, intermediate_size=8))
    run = {"bridge_prefix": None, "device": "cpu", "bridge_model": "pocket:me5-small", "lang": "ko", "seed": 0}
    runner = method_context(run, model, tok, tok)  # resources are lazy: nothing is built here
    assert set(fixture.resources) == set(runner.resources) == set(METHOD_RESOURCES)
    for name in METHOD_RESOURCES:  # each resource has an accessor of the same name
        assert callable(getattr(MethodContext, name))
    assert isinstance(runner.source_embeddings, torch.Tensor)


# The ids the pocket runs had before the glue refactor (computed at commit 8cb1412 with the pocket profile
# of that commit, kept as a fixture: the profile itself may change, the code must not move the ids).
GOLDEN_PROFILE = str(ROOT / "tests" / "fixtures" / "pocket-at-8cb1412.yaml")
GOLDEN_RUN_IDS = {
    "bm25/gnome-help-en": "bm25-en-zero-shot-s0-540a455c856c",
    "bm25/gnome-help-ko": "bm25-ko-zero-shot-s0-33df20e12c01",
    "dense-bridge/gnome-help-en": "dense-bridge-en-zero-shot-s0-e47596e0cce6",
    "dense-bridge/gnome-help-ko": "dense-bridge-ko-zero-shot-s0-28343b3acea3",
    "eval/pocket:splade-tiny/gnome-help-en": "eval-en-zero-shot-s0-f95d4fdb8972",
    "eval/pocket:splade-tiny/gnome-help-ko": "eval-ko-zero-shot-s0-a518b8c8eb73",
    "focus/ko/fine-tuned/s0": "focus-ko-fine-tuned-s0-f2cdb0f65bd7",
    "focus/ko/zero-shot/s0": "focus-ko-zero-shot-s0-52d3bf3e5df1",
    "mean/ko/fine-tuned/s0": "mean-ko-fine-tuned-s0-5eedb86c6d8c",
    "mean/ko/zero-shot/s0": "mean-ko-zero-shot-s0-4e417d195372",
    "overlap/ko/fine-tuned/s0": "overlap-ko-fine-tuned-s0-c931383c5ef8",
    "overlap/ko/zero-shot/s0": "overlap-ko-zero-shot-s0-258ab97472d6",
    "random-lr/zh/fine-tuned/s2": "random-zh-fine-tuned-s2-d6d7eeef4a53",
    "random-lr/zh/zero-shot/s2": "random-zh-zero-shot-s2-73c59c26a440",
    "random/ko/fine-tuned/s0": "random-ko-fine-tuned-s0-1e1c34f481c7",
    "random/ko/zero-shot/s0": "random-ko-zero-shot-s0-f2e8d090ec9a",
    "sembridge-alpha2/ja/fine-tuned/s1": "sembridge-ja-fine-tuned-s1-4723a20c1129",
    "sembridge-alpha2/ja/zero-shot/s1": "sembridge-ja-zero-shot-s1-b0ae1c7cd7f9",
    "sembridge-evalds/ru/fine-tuned/s0": "sembridge-ru-fine-tuned-s0-4ff94796b9d9",
    "sembridge-evalds/ru/zero-shot/s0": "sembridge-ru-zero-shot-s0-99707756cd76",
    "sembridge/ko/fine-tuned/s0": "sembridge-ko-fine-tuned-s0-03fc4ec5d7ed",
    "sembridge/ko/zero-shot/s0": "sembridge-ko-zero-shot-s0-442307954064",
    "wechsel/ko/fine-tuned/s0": "wechsel-ko-fine-tuned-s0-f3b89d703f32",
    "wechsel/ko/zero-shot/s0": "wechsel-ko-zero-shot-s0-772071c87a0d",
}


def golden_ids() -> dict[str, str]:
    from harness.config import load_config, run_config
    from harness.data.base import dataset_lang
    from harness.pipeline import plan_runs
    from harness.references import default_params
    from harness.runs import run_id

    out = {}
    variants = [(m, [], "ko", 0, f"{m}/ko") for m in ("sembridge", "focus", "wechsel", "mean", "random", "overlap")]
    variants += [("sembridge", ["method.alpha=2.0"], "ja", 1, "sembridge-alpha2/ja"),
                 ("random", ["train.lr=1e-4", "train.steps=480"], "zh", 2, "random-lr/zh"),
                 ("sembridge", ["train.eval_dataset=gnome-help-{lang}"], "ru", 0, "sembridge-evalds/ru")]
    for method, overrides, lang, seed, label in variants:
        for run in plan_runs(GOLDEN_PROFILE, overrides, method=method, lang=lang, seed=seed,
                             settings=["zero-shot", "fine-tuned"]):
            out[f"{label}/{run['setting']}/s{seed}"] = run_id(run)
    for ds in ("gnome-help-ko", "gnome-help-en"):
        # as harness.references.evaluate_reference builds them; the harness BM25 was "bm25" then, "bm25-lite" now
        for label, system in (("bm25", "bm25-lite"), ("dense-bridge", "dense-bridge")):
            run = run_config(load_config(GOLDEN_PROFILE), method=label, method_params={}, lang=dataset_lang(ds), seed=0,
                             setting="zero-shot")
            run.update(dataset=ds, method_params=default_params(system, run))
            out[f"{label}/{ds}"] = run_id(run)
        run = run_config(load_config(GOLDEN_PROFILE), method="eval", method_params={"model": "pocket:splade-tiny"},
                         lang=dataset_lang(ds), seed=0, setting="zero-shot")  # as pipeline.evaluate_model does
        run.update(dataset=ds, source_model="pocket:splade-tiny")
        out[f"eval/pocket:splade-tiny/{ds}"] = run_id(run)
    return out


def test_golden_run_ids_per_method_and_reference_system():
    assert golden_ids() == GOLDEN_RUN_IDS


def readme_objective_plugin() -> str:
    """The objective example of README.md, which this test installs and trains with."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python\n# my_package/scaled.py")
    return readme[start + len("```python\n"): readme.index("```", start + 10)]


@pytest.fixture
def objective_plugin(tmp_path, monkeypatch):
    (tmp_path / "scaledobj.py").write_text(readme_objective_plugin())
    info = tmp_path / "scaledobj-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scaledobj\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.objectives]\nscaled = scaledobj:ScaledObjective\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness.registry import objectives

    monkeypatch.setattr(objectives, "_plugins_loaded", False)
    yield
    objectives._entries.pop("scaled", None)
    sys.modules.pop("scaledobj", None)


def test_a_new_objective_needs_one_file(objective_plugin, tmp_path):
    """README's example: listed with its parameter, configurable as train.<param>, and it trains."""
    from harness.config import load_config, run_config
    from harness.objectives import objective_rows
    from harness.train import fine_tune
    from harness.util import HarnessError
    from tests.test_train import tiny_evaluate, tiny_mlm, tiny_pairs, tiny_tokenizer

    row = next(r for r in objective_rows() if r["name"] == "scaled")
    assert row["origin"] == "plugin:scaledobj" and "train.score_scale=2.0" in row["parameters"]
    config = load_config("pocket", ["train.objective=scaled", "train.score_scale=3", "train.steps=4",
                                    "train.eval_every=2", "train.checkpoint_every=2", "device=cpu"])
    assert config["train.score_scale"] == 3.0
    with pytest.raises(HarnessError, match="unknown config key 'train.score_scale'"):
        load_config("pocket", ["train.score_scale=3"])  # only a config training with it has the key
    with pytest.raises(HarnessError, match="must be float"):
        load_config("pocket", ["train.objective=scaled", "train.score_scale=big"])
    run = run_config(config, method="random", method_params={}, lang="xx", seed=0, setting="fine-tuned")
    tok, pairs = tiny_tokenizer(), tiny_pairs(16, seed=0)
    result = fine_tune(run, tiny_mlm(len(tok)), tok, pairs=pairs, evaluate=tiny_evaluate(pairs),
                       work_dir=tmp_path / "train", echo=lambda _: None)
    assert result["objective"] == "scaled" and [p["step"] for p in result["curve"]] == [0, 2, 4]


def test_objective_parameters_are_checked_in_config():
    from harness.util import HarnessError

    from harness.config import load_config

    with pytest.raises(HarnessError, match="'train.clear_similarity' must be one of 'dot', 'cosine'"):
        load_config("pocket", ["train.clear_similarity=cos"])
    with pytest.raises(HarnessError, match="'train.flops_warmup' must be one of"):
        load_config("pocket", ["train.flops_warmup=cubic"])


def test_reference_systems_on_the_command_line_are_the_references_module_s():
    """cli.py spells the --system choices out (importing references would slow `harness --help`)."""
    from harness.cli import reference_cmd as reference
    from harness.references import SYSTEMS

    option = next(p for p in reference.params if p.name == "system")
    assert tuple(option.type.choices) == SYSTEMS
