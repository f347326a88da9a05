"""SemBridge: the fast exact entmax rows against the reference entmax_bisect, and the method end to end."""
from __future__ import annotations

import entmax
import pytest
import torch

from harness.method_specs import get_method
from methods.sembridge import bridge_weights

N_TARGET, N_SOURCE, DIM = 40, 3000, 32


@pytest.fixture(scope="module")
def vecs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(N_TARGET, DIM, generator=gen), torch.randn(N_SOURCE, DIM, generator=gen)


def cosine(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(t, dim=1) @ torch.nn.functional.normalize(s, dim=1).T


def reference(cos: torch.Tensor, alpha: float, float64: bool) -> torch.Tensor:
    """The authors' computation: one entmax_bisect per row over the full cosine row."""
    rows = cos.double() if float64 else cos
    return torch.stack([entmax.entmax_bisect(row, alpha, dim=0, n_iter=100 if float64 else 50) for row in rows]).float()


@pytest.mark.parametrize("alpha", [1.5, 2.0, 2.5, 4.0])
def test_rows_equal_entmax_bisect(vecs, alpha):
    weights, stats = bridge_weights(*vecs, alpha, batch_size=16, return_stats=True)
    dense = weights.to_dense()
    # the float64 reference is the exact entmax; the float32 one (what the authors ran) carries
    # rounding of tau that (x - tau)^(1/(alpha-1)) amplifies for large alpha (~1e-4 at alpha 4)
    assert (dense - reference(cosine(*vecs), alpha, float64=True)).abs().max() < 1e-5
    if alpha <= 2.5:
        assert (dense - reference(cosine(*vecs), alpha, float64=False)).abs().max() < 1e-5
    assert (dense >= 0).all() and torch.allclose(dense.sum(1), torch.ones(N_TARGET), atol=1e-5)
    assert stats["nnz"] == int((dense > 0).sum())
    crow, col = weights.crow_indices(), weights.col_indices()
    assert all(bool((col[a + 1 : b] > col[a : b - 1]).all()) for a, b in zip(crow[:-1], crow[1:]))  # sorted
    if alpha == 1.5:  # supports of hundreds: far beyond k_init, so rows must have grown
        assert stats["mean_support"] > 100 and stats["rows_grown"] == N_TARGET and stats["max_k"] > 64


def test_k_growth_is_exact_down_to_tiny_k(vecs):
    """k_init=1 forces growth on every row; the result must not depend on k_init."""
    a, stats = bridge_weights(*vecs, 2.5, k_init=1, return_stats=True)
    b = bridge_weights(*vecs, 2.5, k_init=N_SOURCE)
    assert stats["rows_grown"] > 0
    assert torch.allclose(a.to_dense(), b.to_dense(), atol=1e-7)


def test_full_row_fallback_for_constant_scores():
    """Equal scores never pass the top-k check: the row grows to all sources (uniform weights)."""
    target, source = torch.ones(2, 4), torch.ones(300, 4)
    weights, stats = bridge_weights(target, source, 4.0, return_stats=True)
    assert stats["max_k"] == 300 and torch.allclose(weights.to_dense(), torch.full((2, 300), 1 / 300))


def test_per_row_alpha_matches_scalar_calls(vecs):
    t, s = vecs
    alphas = torch.tensor([1.5, 4.0] * (N_TARGET // 2), dtype=torch.float64)
    mixed = bridge_weights(t, s, alphas).to_dense()
    assert torch.allclose(mixed[0::2], bridge_weights(t[0::2], s, 1.5).to_dense(), atol=1e-5)
    assert torch.allclose(mixed[1::2], bridge_weights(t[1::2], s, 4.0).to_dense(), atol=1e-5)


def test_temperature_divides_scores(vecs):
    got = bridge_weights(*vecs, 2.0, temperature=0.5).to_dense()
    want = reference(cosine(*vecs) / 0.5, 2.0, float64=True)
    assert (got - want).abs().max() < 1e-5
    support = lambda w: (w > 0).sum(1).float().mean()  # noqa: E731
    assert support(got) < support(bridge_weights(*vecs, 2.0).to_dense())  # sharper scores: sparser


def test_top_k_cap_is_entmax_over_the_cap(vecs):
    cap = 10
    got = bridge_weights(*vecs, 1.5, top_k_cap=cap).to_dense()
    assert ((got > 0).sum(1) <= cap).all() and torch.allclose(got.sum(1), torch.ones(N_TARGET), atol=1e-5)
    top, idx = cosine(*vecs).topk(cap, dim=1)
    want = torch.zeros_like(got).scatter_(1, idx, reference(top, 1.5, float64=True))
    assert (got - want).abs().max() < 1e-5
    assert (got - bridge_weights(*vecs, 1.5).to_dense()).abs().max() > 1e-3  # not exact, by design


def test_bad_arguments(vecs):
    with pytest.raises(ValueError, match="alpha must be > 1"):
        bridge_weights(*vecs, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        bridge_weights(*vecs, temperature=0.0)
    with pytest.raises(ValueError, match="NaN"):
        bridge_weights(torch.full((2, DIM), float("nan")), vecs[1])


def test_method_copies_overlap_and_mixes_the_rest(tiny_context):
    gen = torch.Generator().manual_seed(1)
    n_t, n_s = tiny_context.n_target, len(tiny_context.source_tokenizer)
    target_vecs, source_vecs = torch.randn(n_t, 16, generator=gen), torch.randn(n_s, 16, generator=gen)
    tiny_context.resources["bridge_vectors"] = lambda: (target_vecs, source_vecs)
    plan = get_method("sembridge")(tiny_context, alpha=2.0)
    assert plan.validate(d=8) == []
    tv, sv = tiny_context.target_tokenizer.get_vocab(), tiny_context.source_tokenizer.get_vocab()
    assert plan.sources_of(tv["▁the"]) == [(sv["the"], 1.0)]  # overlap: one-hot row
    new = tv["▁서울"]
    assert plan.kinds[new] == 1
    want = reference(cosine(target_vecs[new : new + 1], source_vecs), 2.0, float64=True)[0]
    got = torch.zeros(n_s)
    for j, w in plan.sources_of(new):
        got[j] = w
    assert (got - want).abs().max() < 1e-5
    info = plan.diagnostics()
    assert info["copied"] > 3 and info["mixed"] == n_t - info["copied"] and info["explicit"] == 0
    assert info["alpha"] == 2.0 and info["mean_support"] >= 1 and "seconds" in info and "rows_k_grown" in info


def test_method_parameters_are_documented():
    spec = get_method("sembridge")
    params = {p.name: p for p in spec.params}
    assert params["alpha"].default == 4.0 and params["top_k_cap"].default is None
    assert all(p.help for p in spec.params)
    assert spec.resolve_params({"temperature": 1})["temperature"] == 1.0
