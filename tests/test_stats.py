"""Significance tests and corrections against independent computations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness import stats


def scores(values, prefix="q"):
    return {f"{prefix}{i:03d}": float(v) for i, v in enumerate(values)}


# -------------------------------------------------------------------------------------------
# Independent reference computations: the rejection procedures themselves, and the smallest
# level at which each hypothesis is rejected (which is what an adjusted p-value means).
# -------------------------------------------------------------------------------------------
def holm_rejects(pvalues, alpha):
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = set()
    for k, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - k):
            break
        rejected.add(i)
    return rejected


def bh_rejects(pvalues, alpha):
    m = len(pvalues)
    ranked = sorted(pvalues)
    passing = [k for k in range(1, m + 1) if ranked[k - 1] <= k * alpha / m]
    if not passing:
        return set()
    cutoff = ranked[max(passing) - 1]
    return {i for i, p in enumerate(pvalues) if p <= cutoff}


def smallest_rejecting_level(pvalues, procedure):
    m = len(pvalues)
    # every adjusted value is p times an integer (Holm) or times m / rank (BH)
    factors = {float(c) for c in range(1, m + 1)} | {m / k for k in range(1, m + 1)}
    candidates = sorted({min(1.0, p * c) for p in pvalues for c in factors} | {1.0})
    out = []
    for i in range(m):
        out.append(next(a for a in candidates if i in procedure(pvalues, a * (1 + 1e-12))))
    return out


def test_holm_textbook_example():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, max(2*0.03, ...), max(1*0.04, 0.06)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_monotone():
    adjusted = stats.holm([0.5, 0.6, 0.01])
    assert adjusted == pytest.approx([1.0, 1.0, 0.03])


def test_bh_textbook_example():
    # m = 4: m*p/rank = 0.02, 0.02, 0.04, 0.04 (sorted), then running minimum from the top
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("seed", range(5))
def test_corrections_match_rejection_procedures(seed):
    rng = np.random.default_rng(seed)
    pvalues = list(np.round(rng.uniform(0, 0.2, size=7) ** 2, 6)) + [0.9]
    assert stats.holm(pvalues) == pytest.approx(smallest_rejecting_level(pvalues, holm_rejects))
    assert stats.benjamini_hochberg(pvalues) == pytest.approx(smallest_rejecting_level(pvalues, bh_rejects))


def test_corrections_keep_nan_out_of_m():
    assert stats.holm([0.01, math.nan, 0.02])[::2] == pytest.approx([0.02, 0.02])
    assert math.isnan(stats.holm([0.01, math.nan])[1])
    assert stats.adjust([0.2, 0.3], "none") == [0.2, 0.3]
    with pytest.raises(ValueError):
        stats.adjust([0.1], "bonferroni-ish")


# -------------------------------------------------------------------------------------------
# Tests
# -------------------------------------------------------------------------------------------
def test_randomization_is_deterministic_per_seed():
    rng = np.random.default_rng(1)
    a, b = scores(rng.uniform(size=50)), scores(rng.uniform(size=50))
    first = stats.randomization_test(a, b, n_resamples=2000, seed=7)
    assert first == stats.randomization_test(a, b, n_resamples=2000, seed=7)
    assert first != stats.randomization_test(a, b, n_resamples=2000, seed=8)  # the seed matters


def test_randomization_identical_and_clearly_better():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 0.5, size=60)
    a = scores(base)
    assert stats.randomization_test(a, dict(a)) == 1.0
    better = scores(base + 0.3 + rng.normal(0, 0.05, size=60))
    assert stats.randomization_test(better, a, n_resamples=999) == pytest.approx(1 / 1000)


def test_randomization_approximates_the_exact_test():
    diffs = np.array([0.3, -0.1, 0.25, 0.05, -0.2, 0.4, 0.1, 0.0, 0.15, -0.05])
    a, b = scores(diffs), scores(np.zeros_like(diffs))
    flips = np.array(list(itertools.product([-1, 1], repeat=len(diffs))))
    exact = np.mean(np.abs(flips @ diffs) >= abs(diffs.sum()) - 1e-12)
    assert stats.randomization_test(a, b, n_resamples=50000, seed=3) == pytest.approx(exact, abs=0.01)


def test_paired_t_test_matches_formula():
    from scipy.stats import t as student

    rng = np.random.default_rng(4)
    x, y = rng.uniform(size=30), rng.uniform(size=30)
    d = x - y
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    expected = 2 * student.sf(abs(t), len(d) - 1)
    assert stats.paired_t_test(scores(x), scores(y)) == pytest.approx(expected)
    assert stats.paired_t_test(scores(x), scores(x)) == 1.0


def test_pairing_uses_common_query_ids_only():
    a = {"q1": 1.0, "q2": 0.0, "q3": 0.5}
    b = {"q2": 0.0, "q3": 0.5, "q4": 1.0}
    assert stats.paired_t_test(a, b) == 1.0  # q2, q3 identical; q1/q4 unpaired
    assert stats.randomization_test(a, b) == 1.0


def test_average_over_seeds_keeps_common_queries():
    avg = stats.average_over_seeds([{"q1": 1.0, "q2": 0.0}, {"q1": 0.5, "q2": 1.0, "q3": 1.0}])
    assert avg == {"q1": 0.75, "q2": 0.5}


def test_compare_against_baseline_with_holm():
    rng = np.random.default_rng(6)
    base = rng.uniform(0, 0.5, size=40)
    systems = {
        "random": scores(base),
        "good": [scores(base + 0.3), scores(base + 0.2)],  # two seeds: averaged (+0.25)
        "same": scores(base),
    }
    out = {c.system: c for c in stats.compare(systems, baseline="random", n_resamples=999)}
    assert set(out) == {"good", "same"}
    assert out["good"].diff == pytest.approx(0.25) and out["good"].significant
    assert out["same"].p == 1.0 and not out["same"].significant
    assert out["good"].p_adjusted == pytest.approx(min(1.0, 2 * out["good"].p))  # smallest of m=2
    pairs = stats.compare(systems, test="t-test", correction="bh", all_pairs=True)
    assert len(pairs) == 3
    with pytest.raises(ValueError):
        stats.compare(systems, baseline="missing")
