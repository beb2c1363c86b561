"""Reference values from the sources in the rule documentation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.statistics import minimum_sample, two_proportion_p_value, wilson


@pytest.mark.parametrize(
    ("clicks", "impressions", "low", "high"),
    [(2, 100, 0.0055, 0.0700), (50, 10_000, 0.0038, 0.0066)],
)
def test_wilson_matches_published_examples(
    clicks: int, impressions: int, low: float, high: float
) -> None:
    interval = wilson(clicks, impressions)
    assert interval.low == pytest.approx(low, abs=0.0001)
    assert interval.high == pytest.approx(high, abs=0.0001)


def test_wilson_edges() -> None:
    assert wilson(0, 0).low == 0.0 and wilson(0, 0).high == 1.0
    assert wilson(0, 1000).low == pytest.approx(0.0, abs=1e-12)
    assert wilson(0, 1000).high < 3 / 1000 * 1.35
    assert wilson(1000, 1000).high == 1.0
    with pytest.raises(ValueError, match="within"):
        wilson(5, 3)


@given(st.integers(0, 10_000), st.integers(1, 10_000))
def test_wilson_contains_the_observed_rate(successes: int, extra: int) -> None:
    trials = successes + extra
    interval = wilson(successes, trials)
    assert interval.low <= successes / trials <= interval.high


@pytest.mark.parametrize(
    ("rate", "trials"), [(0.0046, 653), (0.009, 334), (0.026, 116), (0.0317, 95)]
)
def test_rule_of_three(rate: float, trials: int) -> None:
    assert minimum_sample(rate) == trials


def test_two_proportion_test() -> None:
    assert two_proportion_p_value(10, 1000, 30, 1000) < 0.01  # clearly lower
    assert two_proportion_p_value(30, 1000, 30, 1000) == pytest.approx(0.5)
    assert two_proportion_p_value(30, 1000, 10, 1000) > 0.99  # higher, not lower
    assert two_proportion_p_value(0, 0, 5, 100) == 1.0
    assert two_proportion_p_value(0, 100, 0, 100) == 1.0


def test_realised_improvement() -> None:
    from service.domain.statistics import realised_improvement

    assert realised_improvement((10, 1000), (20, 1000), min_trials=1001) is None
    assert realised_improvement((0, 5000), (20, 5000), min_trials=100) is None  # no base rate
    result = realised_improvement((20, 5000), (40, 5000), min_trials=100)
    assert result is not None
    assert result.improvement_pct == pytest.approx(100.0)
    assert result.ci95.low < 100.0 < result.ci95.high


def test_estimate_accuracy() -> None:
    from service.domain.statistics import Accuracy, estimate_accuracy

    assert estimate_accuracy([]) is None
    outcomes = [(20.0, 10.0, (5.0, 15.0)), (30.0, 35.0, (25.0, 45.0)), (12.34, None, None)]
    assert estimate_accuracy(outcomes) == Accuracy(
        realised=3,
        mean_estimated_pct=20.8,  # 62.34 / 3
        mean_realised_pct=15.0,  # a missing realised value counts as 0
        mean_absolute_error_pct=9.1,  # (10 + 5 + 12.34) / 3
        estimate_within_ci95=1,  # only 30 lies in its interval; a missing one is [0, 0]
    )
    on_the_edges = estimate_accuracy([(5.0, 8.0, (5.0, 9.0)), (9.0, 8.0, (5.0, 9.0))])
    assert on_the_edges is not None and on_the_edges.estimate_within_ci95 == 2


@given(
    st.lists(
        st.tuples(
            st.floats(-100, 1000),
            st.floats(-100, 1000),
            st.tuples(st.floats(-500, 0), st.floats(0, 2000)),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_estimate_accuracy_bounds(outcomes: list[tuple[float, float, tuple[float, float]]]) -> None:
    from service.domain.statistics import estimate_accuracy

    accuracy = estimate_accuracy(outcomes)
    assert accuracy is not None and accuracy.realised == len(outcomes)
    assert 0 <= accuracy.estimate_within_ci95 <= len(outcomes)
    assert accuracy.mean_absolute_error_pct >= 0
    gap = abs(accuracy.mean_estimated_pct - accuracy.mean_realised_pct)
    assert accuracy.mean_absolute_error_pct >= gap - 0.11  # each mean rounded to 0.05


def test_bytes_saved_is_a_share_of_the_original() -> None:
    from service.domain.statistics import bytes_saved

    assert bytes_saved(400_000, 120_000) == 70.0
    assert bytes_saved(1_000, 1_500) == -50.0  # the variant grew
    with pytest.raises(ValueError, match="positive"):
        bytes_saved(0, 10)


def test_the_conditional_binomial_test_is_exact_at_small_counts() -> None:
    from fractions import Fraction
    from math import comb

    from service.domain.statistics import EXACT_UP_TO, lower_rate_p_value

    # 5 of 3,872 against 11 of 1,889: P(X <= 5), X ~ Binomial(16, 3872 / 5761), by hand
    share = 3872 / 5761
    by_hand = sum(comb(16, k) * share**k * (1 - share) ** (16 - k) for k in range(6))
    assert lower_rate_p_value(5, 3_872, 11, 1_889) == pytest.approx(by_hand, rel=1e-9)
    assert lower_rate_p_value(5, 3_872, 11, 1_889) > 3 * two_proportion_p_value(5, 3_872, 11, 1_889)
    assert lower_rate_p_value(0, 100, 0, 100) == 1.0  # no clicks: no evidence
    assert lower_rate_p_value(3, 0, 5, 100) == 1.0
    assert lower_rate_p_value(50, 100, 0, 100) == pytest.approx(1.0)  # a is higher
    # Above EXACT_UP_TO successes the normal approximation stays close to exact.
    a, b = 1_000, 1_100
    assert a + b > EXACT_UP_TO
    approx = lower_rate_p_value(a, 100_000, b, 100_000)
    exact = Fraction(sum(comb(a + b, k) for k in range(a + 1)), 2 ** (a + b))  # share 1/2
    assert approx == pytest.approx(float(exact), rel=0.02)
