"""tests/stats.py itself: it detects a wrong distribution and refuses what it cannot test."""

import numpy as np
import pytest

from tests.helpers.stats import CannotTest, pooled_chisquare_pvalue


def test_fitting_counts_pass_and_skewed_counts_fail():
    rng = np.random.default_rng(5)
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    fair = np.bincount(rng.choice(4, 20_000, p=probabilities), minlength=4)
    assert pooled_chisquare_pvalue(fair, 20_000 * probabilities) > 1e-3
    skewed = np.bincount(rng.choice(4, 20_000, p=[0.12, 0.2, 0.3, 0.38]), minlength=4)
    assert pooled_chisquare_pvalue(skewed, 20_000 * probabilities) < 1e-6


def test_small_categories_are_pooled_not_dropped():
    expected = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 95.0])
    assert pooled_chisquare_pvalue(np.array([1, 1, 1, 1, 1, 95]), expected) > 0.5
    assert pooled_chisquare_pvalue(np.array([5, 5, 5, 5, 5, 75]), expected) < 1e-6


@pytest.mark.parametrize(
    "observed,expected,message",
    [
        ([10, 10], [20.0, 0.0, 0.0], "differ"),
        ([3, 2], [2.0, 3.0], "only 1 category"),
        ([20, 20], [30.0, 30.0], "totals differ"),
        ([20, 20], [np.nan, 40.0], "finite"),
    ],
)
def test_refuses_what_it_cannot_test(observed, expected, message):
    with pytest.raises(CannotTest, match=message):
        pooled_chisquare_pvalue(np.array(observed), np.array(expected))


def test_draws_where_none_are_expected_fail():
    with pytest.raises(AssertionError, match="expected to be empty"):
        pooled_chisquare_pvalue(np.array([10, 1, 9]), np.array([10.0, 0.0, 10.0]))
