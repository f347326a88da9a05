"""The reviewer's baselines (issue 16): FVT and OMP against hand-computed plans on a tiny vocabulary,
bridge-kNN, RAMEN's exact sparsemax, the multivariate normal, and the method metadata."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_sentencepiece, make_wordpiece

from harness.api import MethodContext, TransferPlan, random_rows, sparsemax
from harness.method_specs import get_method

SOURCE = ["the", "city", "run", "##s", "##ing", ",", "paris"]
TARGET = ["▁the", "ing", "▁runs", "▁the,city", "▁citys", "▁서울", "▁runrun"]


@pytest.fixture
def fvt_context() -> MethodContext:
    source, target = make_wordpiece(SOURCE), make_sentencepiece(TARGET)
    gen = torch.Generator().manual_seed(0)
    return MethodContext(source_tokenizer=source, target_tokenizer=target,
                         source_embeddings=torch.randn(len(source), 6, generator=gen),
                         source_bias=torch.randn(len(source), generator=gen), seed=3)


def test_fvt_matches_the_hand_computed_plan(fvt_context):
    ctx = fvt_context
    plan = get_method("fvt")(ctx)
    assert plan.validate(d=6) == []
    s, t = ctx.source_tokenizer.get_vocab(), ctx.target_tokenizer.get_vocab()
    assert plan.sources_of(t["▁the"]) == [(s["the"], 1.0)]  # exact overlap: copied
    assert plan.sources_of(t["ing"]) == [(s["##ing"], 1.0)]  # continuation <-> continuation
    assert plan.sources_of(t["<s>"]) == [(s["[CLS]"], 1.0)]  # special by role
    # "▁" stripped, the rest tokenized by the source tokenizer, mean of the pieces
    assert plan.sources_of(t["▁runs"]) == sorted([(s["run"], 0.5), (s["##s"], 0.5)])
    assert plan.sources_of(t["▁citys"]) == sorted([(s["city"], 0.5), (s["##s"], 0.5)])
    third = pytest.approx(1 / 3)
    assert plan.sources_of(t["▁the,city"]) == [(s["the"], third), (s["city"], third), (s[","], third)]
    # nothing known ([UNK] dropped; WordPiece gives one [UNK] for "runrun"): random rows, mean bias
    fallback = sorted([t["▁서울"], t["▁runrun"]])
    assert plan.explicit_ids.tolist() == fallback
    assert torch.equal(plan.explicit_rows, random_rows(ctx, 2))
    assert torch.allclose(plan.explicit_bias, torch.full((2,), float(ctx.source_bias.mean())))
    info = plan.diagnostics()
    assert (info["copied"], info["mixed"], info["explicit"]) == (len(t) - 5, 3, 2)
    assert info["deterministic"] is False  # it drew random rows
    # the bias of a mixed token is the mean of its pieces' biases: the plan's row applied to b_s
    bias = torch.sparse.mm(plan.mixing, ctx.source_bias[:, None]).squeeze(1)
    assert bias[t["▁runs"]] == pytest.approx(float(ctx.source_bias[[s["run"], s["##s"]]].mean()))


def test_fvt_without_fallback_is_deterministic(fvt_context):
    fvt_context.target_tokenizer = make_sentencepiece(["▁the", "▁runs", "▁citys"])
    plan = get_method("fvt")(fvt_context)
    assert plan.info["deterministic"] is True and len(plan.explicit_ids) == 0


def omp_context(tiny_context: MethodContext) -> tuple[MethodContext, dict[str, int]]:
    """Source bridge vectors: A = e0, B = (e0 + e1)/sqrt 2, every other source token its own axis."""
    n_s, n_t = len(tiny_context.source_tokenizer), tiny_context.n_target
    s = tiny_context.source_tokenizer.get_vocab()
    a, b = s["run"], s["city"]
    others = [i for i in range(n_s) if i not in (a, b)]
    d = len(others) + 2
    source = torch.zeros(n_s, d)
    source[a, 0] = 1.0
    source[b, :2] = 1 / math.sqrt(2)
    axis = {i: 2 + r for r, i in enumerate(others)}
    for i, col in axis.items():
        source[i, col] = 1.0
    t = tiny_context.target_tokenizer.get_vocab()
    target = torch.zeros(n_t, d)
    target[t["▁서울"], 1] = 1.0  # e1: B then A, coefficients sqrt 2 and -1
    p, q = s["paris"], s["7"]
    target[t["▁도시"], axis[p]], target[t["▁도시"], axis[q]] = 0.6, 0.8  # two orthogonal atoms
    target[t["수도"], axis[p]] = 1.0  # one atom reconstructs it; the second step adds nothing
    tiny_context.resources["bridge_vectors"] = lambda: (target, source)
    return tiny_context, {"A": a, "B": b, "p": p, "q": q, **t}


def test_omp_matches_the_hand_computed_plan(tiny_context):
    ctx, ids = omp_context(tiny_context)
    plan = get_method("bridge-omp")(ctx, k=2)
    assert plan.validate(d=8) == [] and plan.convex is False
    seoul = dict(plan.sources_of(ids["▁서울"]))
    assert set(seoul) == {ids["A"], ids["B"]}
    assert seoul[ids["B"]] == pytest.approx(math.sqrt(2), abs=1e-6) and seoul[ids["A"]] == pytest.approx(-1.0, abs=1e-6)
    city = dict(plan.sources_of(ids["▁도시"]))
    assert city == {ids["p"]: pytest.approx(0.6, abs=1e-6), ids["q"]: pytest.approx(0.8, abs=1e-6)}
    assert plan.sources_of(ids["수도"]) == [(ids["p"], pytest.approx(1.0, abs=1e-6))]  # the zero coefficient is dropped
    assert plan.sources_of(ids["▁the"]) == [(ctx.source_tokenizer.get_vocab()["the"], 1.0)]  # overlap copied
    # the same signed coefficients make the embedding row
    e = torch.sparse.mm(plan.mixing, ctx.source_embeddings)
    want = math.sqrt(2) * ctx.source_embeddings[ids["B"]] - ctx.source_embeddings[ids["A"]]
    assert torch.allclose(e[ids["▁서울"]], want, atol=1e-5)
    assert plan.info["deterministic"] is True


def test_omp_batches_agree_with_one_block():
    from methods.bridge_omp import omp

    gen = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.normalize(torch.randn(300, 16, generator=gen), dim=1)
    y = torch.randn(37, 16, generator=gen)
    i1, c1 = omp(y, atoms, 5, batch_size=8)
    i2, c2 = omp(y, atoms, 5, batch_size=64)
    assert torch.equal(i1, i2) and torch.allclose(c1, c2, atol=1e-9)
    # OMP's residual is orthogonal to the chosen atoms and never grows
    recon = torch.einsum("nk,nkd->nd", c1.float(), atoms[i1])
    residual = y - recon
    assert torch.einsum("nd,nkd->nk", residual, atoms[i1]).abs().max() < 1e-4
    assert bool((residual.norm(dim=1) <= y.norm(dim=1) + 1e-6).all())


def test_bridge_knn_is_wechsels_rule_on_the_bridge_vectors(tiny_context):
    gen = torch.Generator().manual_seed(2)
    n_t, n_s = tiny_context.n_target, len(tiny_context.source_tokenizer)
    target, source = torch.randn(n_t, 12, generator=gen), torch.randn(n_s, 12, generator=gen)
    tiny_context.resources["bridge_vectors"] = lambda: (target, source)
    plan = get_method("bridge-knn")(tiny_context, k=3)
    assert plan.validate(d=8) == []
    t = tiny_context.target_tokenizer.get_vocab()["▁서울"]
    cos = torch.nn.functional.normalize(target[t], dim=0) @ torch.nn.functional.normalize(source, dim=1).T
    top = cos.topk(3)
    want = sorted(zip(top.indices.tolist(), torch.softmax(top.values / 0.1, 0).tolist()), key=lambda p: (-p[1], p[0]))
    got = plan.sources_of(t)
    assert [j for j, _ in got] == [j for j, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], abs=1e-6)


def test_ramen_sparsemax_rows_are_exact_over_all_sources():
    from methods.ramen import sparsemax_rows

    gen = torch.Generator().manual_seed(0)
    tgt = torch.nn.functional.normalize(torch.randn(20, 8, generator=gen), dim=1)
    src = torch.nn.functional.normalize(torch.randn(500, 8, generator=gen), dim=1)
    cols = torch.arange(500) * 2  # source ids of the allowed rows
    csr, stats = sparsemax_rows(tgt, src, cols, torch.arange(20) + 1, (21, 1000), k_init=2)
    dense = csr.to_dense()
    want = sparsemax(tgt @ src.T)
    assert torch.allclose(dense[1:, cols], want, atol=1e-6) and dense[0].abs().sum() == 0
    assert stats["max_k"] > 2  # the tiny k_init had to grow


def test_random_mvn_has_the_covariance_of_the_source_rows():
    from methods.random_mvn import mvn_rows

    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 4, generator=gen)
    source = torch.randn(5000, 4, generator=gen) @ mix + torch.tensor([1.0, -2.0, 0.5, 3.0])
    source_tok, target_tok = make_wordpiece(["a"]), make_sentencepiece(["▁b"])
    ctx = MethodContext(source_tokenizer=source_tok, target_tokenizer=target_tok, source_embeddings=source)
    rows = mvn_rows(ctx, 20000)
    assert torch.allclose(rows.mean(0), source.mean(0), atol=0.1)
    assert torch.allclose(torch.cov(rows.T), torch.cov(source.T), rtol=0.1, atol=0.1)
    assert torch.equal(rows, mvn_rows(ctx, 20000))  # seeded


def test_random_mvn_copies_overlap_and_draws_the_rest(tiny_context):
    plan = get_method("random-mvn")(tiny_context)
    assert plan.validate(d=8) == []
    d = plan.diagnostics()
    assert d["copied"] > 5 and d["explicit"] == tiny_context.n_target - d["copied"] and d["deterministic"] is False


def test_every_builtin_method_declares_its_metadata():
    from harness.api import METHOD_RESOURCES
    from harness.registry import methods

    builtins = [e.name for e in methods if e.origin == "builtin"]
    assert {"fvt", "bridge-knn", "bridge-omp", "ramen", "random-mvn"} <= set(builtins)
    for name in builtins:
        spec = get_method(name)
        assert spec.citation and spec.deterministic in (True, False), name
        assert spec.resources is not None and set(spec.resources) <= set(METHOD_RESOURCES), name
    assert get_method("sembridge").deterministic and not get_method("random").deterministic


def test_undeclared_resources_and_false_determinism_fail_check_method(monkeypatch):
    from harness.api import build_plan, register_method
    from harness.checks import check_method
    from harness.registry import methods

    @register_method("sneaky", resources=(), deterministic=True)
    def sneaky(ctx: MethodContext) -> object:
        ctx.bridge_vectors()
        row = torch.randn(ctx.source_embeddings.shape[1], generator=ctx.generator())
        return build_plan(ctx.n_target, ctx.n_source, explicit={t: (row, 0.0) for t in range(ctx.n_target)})

    try:
        problems, diagnostics = check_method("sneaky")
    finally:
        methods._entries.pop("sneaky")
    assert any("does not declare" in p for p in problems)
    assert any("another seed gives a different plan" in p for p in problems)
    assert diagnostics["resources used"] == "bridge_vectors"


@pytest.mark.parametrize("name", ["fvt", "bridge-knn", "bridge-omp", "ramen", "random-mvn"])
def test_check_method_passes_the_new_methods(name):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "harness.cli", "check-method", name], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"ok: '{name}' returns a valid plan" in out.stdout


def test_methods_lists_citation_resources_and_determinism():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "harness.cli", "methods"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = {line.split("|")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("| ")}
    assert "github.com/LeonidasY/fast-vocabulary-transfer" in lines["fvt"]
    assert "| yes " in lines["sembridge"] and "bridge_vectors" in lines["sembridge"]
    assert "| no " in lines["random-mvn"] and "github.com/alexa/ramen" in lines["ramen"]


@pytest.mark.parametrize("kind", ["out-of-range", "nan"])
def test_invalid_plans_fail_check_method_without_false_determinism(kind):
    """A plan naming source ids beyond the vocabulary once passed validate() and scored 0.0 with status ok."""
    from harness.api import register_method
    from harness.checks import check_method
    from harness.registry import methods

    @register_method("bad-plan", resources=(), deterministic=True)
    def bad_plan(ctx: MethodContext) -> object:
        n = ctx.n_source
        crow = torch.arange(ctx.n_target + 1)
        cols = torch.full((ctx.n_target,), n + 5 if kind == "out-of-range" else 0)
        values = torch.full((ctx.n_target,), float("nan") if kind == "nan" else 1.0)
        mixing = torch.sparse_csr_tensor(crow, cols, values, size=(ctx.n_target, n))
        empty = torch.zeros(0, ctx.source_embeddings.shape[1])
        return TransferPlan(mixing=mixing, explicit_ids=torch.zeros(0, dtype=torch.long), explicit_rows=empty,
                            explicit_bias=torch.zeros(0), kinds=np.ones(ctx.n_target, dtype=np.int8))

    try:
        problems, _ = check_method("bad-plan")
    finally:
        methods._entries.pop("bad-plan")
    expected = "source ids out of range" if kind == "out-of-range" else "not all finite"
    assert any(expected in p for p in problems), problems
    assert not any("different plan" in p for p in problems), problems  # NaN != NaN is not nondeterminism
