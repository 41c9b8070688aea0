"""Goodness-of-fit helpers shared by the distribution tests."""

from __future__ import annotations

import numpy as np
from scipy import stats


def pooled_chisquare_pvalue(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> float:
    """Chi-square p-value after pooling neighbouring categories until each expects >= min_expected.

    Categories with zero expectation must have zero observations (checked by the caller).
    """
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    pooled_obs, pooled_exp = [], []
    acc_obs = acc_exp = 0.0
    for o, e in zip(observed, expected):
        acc_obs += o
        acc_exp += e
        if acc_exp >= min_expected:
            pooled_obs.append(acc_obs)
            pooled_exp.append(acc_exp)
            acc_obs = acc_exp = 0.0
    if acc_exp > 0 or acc_obs > 0:
        pooled_obs[-1] += acc_obs
        pooled_exp[-1] += acc_exp
    pooled_obs_a, pooled_exp_a = np.array(pooled_obs), np.array(pooled_exp)
    pooled_exp_a *= pooled_obs_a.sum() / pooled_exp_a.sum()
    if len(pooled_obs_a) < 2:
        return 1.0
    return float(stats.chisquare(pooled_obs_a, pooled_exp_a).pvalue)
