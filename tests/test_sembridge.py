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
    """Float64 cosines, as the authors' ``fastdist`` computes them."""
    return torch.nn.functional.normalize(t.double(), dim=1) @ torch.nn.functional.normalize(s.double(), dim=1).T


def reference(cos: torch.Tensor, alpha: float) -> torch.Tensor:
    """The authors' computation: one float64 entmax_bisect per row over the full cosine row."""
    return torch.stack([entmax.entmax_bisect(row, alpha, dim=0, n_iter=100) for row in cos.double()])


@pytest.mark.parametrize("alpha", [1.5, 2.0, 2.5, 4.0, 8.0])
def test_rows_equal_entmax_bisect(vecs, alpha):
    weights, stats = bridge_weights(*vecs, alpha, batch_size=16, return_stats=True)
    dense = weights.to_dense()
    assert (dense.double() - reference(cosine(*vecs), alpha)).abs().max() < 1e-5
    assert (dense >= 0).all() and torch.allclose(dense.sum(1), torch.ones(N_TARGET), atol=1e-5)
    assert stats["nnz"] == int((dense > 0).sum())
    crow, col = weights.crow_indices(), weights.col_indices()
    assert all(bool((col[a + 1 : b] > col[a : b - 1]).all()) for a, b in zip(crow[:-1], crow[1:]))  # sorted
    if alpha == 1.5:  # supports of hundreds: far beyond k_init, so rows must have grown
        assert stats["mean_support"] > 100 and stats["rows_grown"] == N_TARGET and stats["max_k"] > 64


def pocket_bridge_slice(n_rows: int = 100) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rows of the cached Korean pocket bridge vectors (target) and the splade-tiny ones (source)."""
    import json

    import numpy as np

    from harness.util import cache_dir

    found = {}
    for sidecar in sorted(cache_dir("bridge").glob("*.json")):
        info = json.loads(sidecar.read_text())
        if info.get("bridge_ref") == "pocket:me5-small" and sidecar.with_suffix(".npy").exists():
            found.setdefault(info["n_vocab"], sidecar.with_suffix(".npy"))
    source = found.pop(30522, None)
    if source is None or not found:
        return None
    target = np.load(found[min(found)], mmap_mode="r")
    step = max(1, len(target) // n_rows)
    return torch.from_numpy(np.array(target[::step][:n_rows])), torch.from_numpy(np.load(source))


@pytest.mark.parametrize("alpha", [1.5, 2.0, 2.5, 4.0, 8.0])
def test_parity_with_float64_entmax_bisect_on_real_bridge_vectors(alpha):
    """Issue 16: on real vectors float32 cosines were off by up to 4e-4 at alpha 4; float64 scores fix it."""
    vectors = pocket_bridge_slice()
    if vectors is None:
        pytest.skip("no cached pocket bridge vectors (run a pocket SemBridge run once)")
    got = bridge_weights(*vectors, alpha).to_dense().double()
    assert (got - reference(cosine(*vectors), alpha)).abs().max() <= 1e-5


def test_parity_on_random_unit_vectors_of_bridge_size():
    """The same on random unit vectors of the bridge's dimension (runs without any cache)."""
    gen = torch.Generator().manual_seed(3)
    centers = torch.nn.functional.normalize(torch.randn(50, 384, generator=gen), dim=1)
    source = torch.nn.functional.normalize(centers[torch.randint(0, 50, (4000,), generator=gen)]
                                           + 0.3 * torch.randn(4000, 384, generator=gen) / 384**0.5, dim=1)
    target = torch.nn.functional.normalize(centers[:30] + 0.3 * torch.randn(30, 384, generator=gen) / 384**0.5, dim=1)
    for alpha in (2.5, 4.0, 8.0):
        got = bridge_weights(target, source, alpha).to_dense().double()
        assert (got - reference(cosine(target, source), alpha)).abs().max() <= 1e-5


def test_k_growth_is_exact_down_to_tiny_k(vecs):
    """k_init=1 forces growth on every row; the result must not depend on k_init."""
    a, stats = bridge_weights(*vecs, 2.5, k_init=1, return_stats=True)
    b = bridge_weights(*vecs, 2.5, k_init=N_SOURCE)
    assert stats["rows_grown"] > 0
    assert torch.allclose(a.to_dense(), b.to_dense(), atol=1e-7)
    c = bridge_weights(*vecs, 2.5, batch_size=7)  # blocks of any size (the first-fetch width adapts per block)
    assert torch.allclose(a.to_dense(), c.to_dense(), atol=1e-7)


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
    want = reference(cosine(*vecs) / 0.5, 2.0)
    assert (got - want).abs().max() < 1e-5
    support = lambda w: (w > 0).sum(1).float().mean()  # noqa: E731
    assert support(got) < support(bridge_weights(*vecs, 2.0).to_dense())  # sharper scores: sparser


def test_top_k_cap_is_entmax_over_the_cap(vecs):
    cap = 10
    got = bridge_weights(*vecs, 1.5, top_k_cap=cap).to_dense()
    assert ((got > 0).sum(1) <= cap).all() and torch.allclose(got.sum(1), torch.ones(N_TARGET), atol=1e-5)
    top, idx = cosine(*vecs).topk(cap, dim=1)
    want = torch.zeros_like(got, dtype=torch.float64).scatter_(1, idx, reference(top, 1.5))
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
    want = reference(cosine(target_vecs[new : new + 1], source_vecs), 2.0)[0].float()
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
