"""Paired significance tests on per-query scores, multiple-comparison corrections, bootstrap CIs.

Systems are given as per-query score dicts (qid -> score) and are always paired by query id:
only queries present in both systems enter a test. Every resampling procedure takes a seed and
draws from its own ``numpy.random.Generator``, so the same inputs give the same p-value on every run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

Scores = Mapping[str, float]
TESTS = ("randomization", "t-test")
CORRECTIONS = ("holm", "bh", "none")
# Resampling matrices are built in blocks of about this many entries to bound memory.
BLOCK_ENTRIES = 1 << 22


# --------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------
def paired_arrays(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the queries both systems have, in sorted-qid order."""
    qids = sorted(set(a) & set(b))
    return (np.array([a[q] for q in qids], dtype=np.float64),
            np.array([b[q] for q in qids], dtype=np.float64))


def average_over_seeds(runs: Sequence[Scores]) -> dict[str, float]:
    """Per-query mean over seeds; only queries present in every seed's scores."""
    if not runs:
        return {}
    common = set(runs[0]).intersection(*runs[1:])
    return {q: float(np.mean([r[q] for r in runs])) for q in sorted(common)}


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def paired_t_test(a: Scores, b: Scores) -> float:
    """Two-sided paired t-test p-value (scipy ``ttest_rel``).

    Identical score vectors give 1.0; a test that is undefined for other reasons (fewer than two
    queries) also gives 1.0, the conservative answer, instead of NaN.
    """
    import warnings

    from scipy import stats

    x, y = paired_arrays(a, b)
    if len(x) == 0 or np.array_equal(x, y):
        return 1.0
    with warnings.catch_warnings():  # a constant difference is legitimate (p -> 0), not a precision issue
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_rel(x, y).pvalue)
    return 1.0 if math.isnan(p) else p


def randomization_test(a: Scores, b: Scores, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip) test on the mean difference.

    Each resample flips the sign of every per-query difference with probability 1/2; the p-value
    is (count + 1) / (n_resamples + 1) where count is the number of resamples whose |mean| is at
    least the observed |mean| (the +1 counts the observed assignment, so p is never 0).
    """
    x, y = paired_arrays(a, b)
    diff = x - y
    if len(diff) == 0:
        return 1.0
    observed = abs(diff.mean())
    # float noise must not decide ties: identical systems have to reach p = 1 exactly
    tolerance = 1e-12 * max(1.0, float(np.abs(diff).max()))
    count = 0
    for signs in _sign_blocks(len(diff), n_resamples, seed):
        count += int(np.count_nonzero(np.abs(signs @ diff) / len(diff) >= observed - tolerance))
    return (count + 1) / (n_resamples + 1)


def _sign_blocks(n: int, n_resamples: int, seed: int):
    """Random +-1 matrices, n_resamples rows in total; block size depends only on n (determinism)."""
    rng = np.random.default_rng(seed)
    rows = max(1, BLOCK_ENTRIES // max(1, n))
    for start in range(0, n_resamples, rows):
        bits = rng.integers(0, 2, size=(min(rows, n_resamples - start), n), dtype=np.int8)
        yield 1.0 - 2.0 * bits


def run_test(a: Scores, b: Scores, test: str = "randomization", *, n_resamples: int = 10000, seed: int = 0) -> float:
    if test == "randomization":
        return randomization_test(a, b, n_resamples=n_resamples, seed=seed)
    if test == "t-test":
        return paired_t_test(a, b)
    raise ValueError(f"unknown test '{test}'; tests: {', '.join(TESTS)}")


# --------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------
def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in input order: max_{j<=i} (m-j+1) p_(j), capped at 1.

    NaN p-values stay NaN and do not count towards m.
    """
    p, index = _finite(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.maximum.accumulate(scaled) if m else scaled
    return _scatter(pvalues, index, order, adjusted)


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) step-up adjusted p-values: min_{j>=i} m p_(j) / j, capped at 1."""
    p, index = _finite(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1] if m else scaled
    return _scatter(pvalues, index, order, adjusted)


def adjust(pvalues: Sequence[float], correction: str = "holm") -> list[float]:
    if correction == "holm":
        return holm(pvalues)
    if correction == "bh":
        return benjamini_hochberg(pvalues)
    if correction == "none":
        return [float(p) for p in pvalues]
    raise ValueError(f"unknown correction '{correction}'; corrections: {', '.join(CORRECTIONS)}")


def _finite(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(pvalues, dtype=np.float64)
    index = np.flatnonzero(~np.isnan(values))
    return values[index], index


def _scatter(pvalues: Sequence[float], index: np.ndarray, order: np.ndarray, adjusted: np.ndarray) -> list[float]:
    out = np.full(len(pvalues), np.nan)
    out[index[order]] = adjusted
    return [float(v) for v in out]


# --------------------------------------------------------------------------------------------
# Comparing systems
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    system: str
    baseline: str
    n_queries: int
    mean: float
    baseline_mean: float
    diff: float  # mean(system - baseline) over the paired queries
    p: float
    p_adjusted: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(systems: Mapping[str, Scores | Sequence[Scores]], baseline: str | None = None, *,
            test: str = "randomization", correction: str = "holm", all_pairs: bool = False,
            alpha: float = 0.05, n_resamples: int = 10000, seed: int = 0) -> list[Comparison]:
    """Each system against ``baseline`` (or every pair with ``all_pairs``), corrected together.

    A system given as a list of per-query dicts (one per seed) is averaged over seeds first.
    """
    table = {name: average_over_seeds(s) if isinstance(s, (list, tuple)) else dict(s) for name, s in systems.items()}
    pairs = _pairs(sorted(table), baseline, all_pairs)
    raw = []
    for name, base in pairs:
        x, y = paired_arrays(table[name], table[base])
        p = run_test(table[name], table[base], test, n_resamples=n_resamples, seed=seed)
        raw.append((name, base, x, y, p))
    adjusted = adjust([r[4] for r in raw], correction)
    return [Comparison(name, base, len(x), _mean(x), _mean(y), _mean(x - y), p, q, bool(q < alpha))
            for (name, base, x, y, p), q in zip(raw, adjusted)]


def _pairs(names: list[str], baseline: str | None, all_pairs: bool) -> list[tuple[str, str]]:
    if all_pairs:
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    if baseline not in names:
        raise ValueError(f"baseline '{baseline}' is not among the systems: {', '.join(names)}")
    return [(name, baseline) for name in names if name != baseline]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan
