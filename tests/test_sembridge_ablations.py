"""SemBridge's ablation parameters (bias, overlap copy), the plan's explicit decoder bias in the
transplant, run ids kept for parameters added later, and no "± 0.000" for deterministic methods."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.api import build_plan
from harness.method_specs import get_method


def bridge(ctx, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(ctx.n_target, 16, generator=gen)
    source = torch.randn(len(ctx.source_tokenizer), 16, generator=gen)
    ctx.resources["bridge_vectors"] = lambda: (target, source)
    return ctx


def test_bias_ablation_values(tiny_context):
    ctx = bridge(tiny_context)
    remap = get_method("sembridge")(ctx)
    assert remap.decoder_bias is None and "bias" not in remap.info
    stale = get_method("sembridge")(ctx, bias="stale")
    n = min(ctx.n_target, len(ctx.source_bias))
    assert stale.decoder_bias.shape == (ctx.n_target,) and stale.info["bias"] == "stale"
    assert torch.equal(stale.decoder_bias[:n], ctx.source_bias[:n]) and bool((stale.decoder_bias[n:] == 0).all())
    zero = get_method("sembridge")(ctx, bias="zero")
    assert bool((zero.decoder_bias == 0).all()) and zero.validate(d=8) == []
    # the embeddings do not change with the bias ablation
    assert torch.equal(stale.mixing.to_dense(), remap.mixing.to_dense())
    with pytest.raises(ValueError, match="must be one of"):
        get_method("sembridge").resolve_params({"bias": "padded"})


def test_copy_overlap_off_copies_only_special_tokens(tiny_context):
    ctx = bridge(tiny_context)
    plan = get_method("sembridge")(ctx, copy_overlap=False)
    target = ctx.target_tokenizer
    copied = [t for t in range(ctx.n_target) if plan.kinds[t] == 0]
    assert sorted(copied) == sorted(target.get_vocab()[tok] for tok in target.all_special_tokens)
    assert plan.kinds[target.get_vocab()["▁the"]] == 1  # an overlapping word is mixed now
    nothing = get_method("sembridge")(ctx, match_symbols=False, exact_match_all=False, fuzzy_match_all=False)
    assert nothing.diagnostics()["copied"] == 0


def test_parameters_added_later_stay_out_of_the_run_id():
    from harness.pipeline import plan_runs

    spec = get_method("sembridge")
    assert "bias" not in spec.resolve_params() and "copy_overlap" not in spec.resolve_params()
    assert spec.resolve_params({"bias": "stale"})["bias"] == "stale"
    default = plan_runs("pocket", [], method="sembridge", lang="ko", seed=0, settings=["zero-shot"])[0]
    same = plan_runs("pocket", ["method.bias=remap"], method="sembridge", lang="ko", seed=0, settings=["zero-shot"])[0]
    stale = plan_runs("pocket", ["method.bias=stale"], method="sembridge", lang="ko", seed=0, settings=["zero-shot"])[0]
    assert default == same and stale["method_params"]["bias"] == "stale"
    assert "bias" not in default["method_params"] and "copy_overlap" not in default["method_params"]
    from harness.runs import run_id

    assert run_id(stale) != run_id(default)  # the golden ids of tests/test_architecture.py hold the rest


def test_transplant_uses_the_plans_decoder_bias():
    from transformers import BertConfig, BertForMaskedLM

    from harness.checks import make_wordpiece
    from harness.transplant import transplant

    source, target = make_wordpiece(["a", "b", "c"]), make_wordpiece(["a", "b", "c", "d"])
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(source), hidden_size=8, num_hidden_layers=1,
                                       num_attention_heads=1, intermediate_size=8))
    with torch.no_grad():
        model.get_output_embeddings().bias.normal_()
    old_bias = model.get_output_embeddings().bias.detach().clone()
    n_s, n_t = len(source), len(target)
    stale = torch.zeros(n_t)
    stale[:n_s] = old_bias
    plan = build_plan(n_t, n_s, copied={i: i for i in range(n_s)}, rows={n_s: ([0, 1], [0.5, 0.5])},
                      decoder_bias=stale)
    old_in = model.get_input_embeddings().weight.detach().clone()
    transplant(model, source, target, plan)
    new_bias = model.get_output_embeddings().bias
    assert torch.equal(new_bias.detach(), stale)  # not 0.5 (b_0 + b_1) for the mixed token
    assert new_bias is model.cls.predictions.bias  # still shared
    assert torch.allclose(model.get_input_embeddings().weight[n_s], 0.5 * (old_in[0] + old_in[1]))
    bad = build_plan(n_t, n_s, copied={i: i for i in range(n_s)}, rows={n_s: ([0], [1.0])}, decoder_bias=torch.zeros(3))
    assert any("decoder_bias" in p for p in bad.validate())


def write_record(runs_dir, method, seed, setting, values, deterministic):
    from harness.config import load_config, run_config
    from harness.evaluate import write_per_query
    from harness.runs import RunDir, RunRecord

    run = run_config(load_config("pocket"), method=method, method_params={}, lang="ko", seed=seed, setting=setting)
    folder = RunDir.for_config(runs_dir, run)
    folder.write_json("config.json", run)
    per_query = {"ndcg@10": {f"q{i}": float(v) for i, v in enumerate(values)}}
    write_per_query(folder.file("per_query.json"), per_query)
    details = {"counts": {"queries": len(values)}, "plan": {"method": method, "deterministic": deterministic}}
    record = RunRecord.of(run, metrics={"ndcg@10": float(np.mean(values))}, timing={},
                          files={"config": "config.json", "per_query": "per_query.json"}, details=details)
    folder.write_json("result.json", record.to_json())


def test_deterministic_methods_print_no_zero_sd(tmp_path):
    from harness.report import md_cell, tex_cell
    from harness.tables import assign_labels, build_table, load_records

    rng = np.random.default_rng(0)
    same = rng.uniform(0, 1, 20)
    for seed in (0, 1, 2):
        write_record(tmp_path, "sembridge", seed, "zero-shot", same, True)  # the seed changes nothing
        write_record(tmp_path, "sembridge", seed, "fine-tuned", same + 0.01 * seed, True)  # training does
        write_record(tmp_path, "random", seed, "zero-shot", rng.uniform(0, 1, 20), False)
        write_record(tmp_path, "mean", seed, "zero-shot", same, False)  # an old record: not marked
    records = load_records(tmp_path)
    assign_labels(records.entries)
    table, _ = build_table(records.entries, "ndcg@10", "random")
    cells = {(row, c.setting): cell for (row, c), cell in table.cells.items()}
    assert cells[("sembridge", "zero-shot")].sd is None
    assert "±" not in md_cell(cells[("sembridge", "zero-shot")], False, False)
    assert r"\pm" not in tex_cell(cells[("sembridge", "zero-shot")], False, False)
    assert cells[("sembridge", "fine-tuned")].sd is not None and cells[("random", "zero-shot")].sd is not None
    assert md_cell(cells[("mean", "zero-shot")], False, False).endswith("± 0.000")  # not declared: shown
