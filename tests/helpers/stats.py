"""Goodness-of-fit helpers shared by the distribution tests; they raise when they cannot test."""

from __future__ import annotations

import numpy as np
from scipy import stats


class CannotTest(AssertionError):
    """The data cannot support the test asked for: the caller's set-up is wrong, not the code."""


def pooled_chisquare_pvalue(
    observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0
) -> float:
    """Chi-square p-value after pooling neighbouring categories until each expects >= min_expected.

    Raises CannotTest (never a p-value of 1) when there is nothing to test: mismatched lengths,
    negative or non-finite expectations, totals that differ, or fewer than two pooled categories.
    Observations in a category that expects none fail as AssertionError: that is a wrong draw.
    """
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if observed.shape != expected.shape or observed.ndim != 1:
        raise CannotTest(f"observed {observed.shape} and expected {expected.shape} differ")
    if not np.isfinite(expected).all() or (expected < 0).any() or (observed < 0).any():
        raise CannotTest("expected counts must be finite and non-negative, observed non-negative")
    impossible = observed[expected == 0].sum()
    assert impossible == 0, f"{impossible:g} observations in categories expected to be empty"
    if not np.isclose(observed.sum(), expected.sum(), rtol=1e-9):
        raise CannotTest(f"totals differ: observed {observed.sum():g}, expected {expected.sum():g}")
    pooled_obs, pooled_exp = _pool(observed, expected, min_expected)
    if len(pooled_obs) < 2:
        raise CannotTest(
            f"only {len(pooled_obs)} category expects >= {min_expected} observations: "
            "draw more samples"
        )
    return float(stats.chisquare(pooled_obs, pooled_exp).pvalue)


def _pool(
    observed: np.ndarray, expected: np.ndarray, min_expected: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merges neighbours left to right; a short tail joins the last full category."""
    pooled_obs: list[float] = []
    pooled_exp: list[float] = []
    acc_obs = acc_exp = 0.0
    for o, e in zip(observed, expected, strict=False):
        acc_obs += o
        acc_exp += e
        if acc_exp >= min_expected:
            pooled_obs.append(acc_obs)
            pooled_exp.append(acc_exp)
            acc_obs = acc_exp = 0.0
    if pooled_obs and (acc_exp > 0 or acc_obs > 0):
        pooled_obs[-1] += acc_obs
        pooled_exp[-1] += acc_exp
    return np.array(pooled_obs), np.array(pooled_exp)
