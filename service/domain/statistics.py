"""Proportions with honest uncertainty: what a CTR verdict may claim from its sample.

Used by the optimization rules: no verdict below the rule-of-three sample, Wilson
score intervals instead of the Wald interval (Brown, Cai & DasGupta 2001), and a
two-proportion z-test for "this window is worse than that one". `estimate_accuracy`
sums up how the rules' estimates compared with the improvements realised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95 %


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z_95) -> Interval:
    """The Wilson score interval of successes / trials; [0, 1] without trials."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within 0..{trials}, got {successes}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the edges,
    high = 1.0 if successes == trials else min(1.0, centre + half)  # not 1e-18 off
    return Interval(low, high)


def minimum_sample(benchmark_rate: float) -> int:
    """Rule of three: with no success in n trials the 95 % upper bound is about 3 / n,
    so a rate below `benchmark_rate` can only be shown from 3 / benchmark_rate trials."""
    if not 0 < benchmark_rate <= 1:
        raise ValueError(f"benchmark_rate must be in (0, 1], got {benchmark_rate}")
    return math.ceil(3 / benchmark_rate)


def two_proportion_p_value(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> float:
    """One-sided p-value that proportion a is lower than proportion b (pooled z-test).

    1.0 when either side has no trials or the pooled rate is 0 or 1 (no evidence).
    """
    if trials_a <= 0 or trials_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    z = (successes_a / trials_a - successes_b / trials_b) / se
    return 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z)


EXACT_UP_TO = 2_000
"""Above this many successes in all, `lower_rate_p_value` uses the normal approximation
(with a continuity correction), which is then within a fraction of a percent."""


def lower_rate_p_value(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """One-sided p-value that rate a is lower than rate b: the conditional binomial test.

    Given all the successes, under equal rates the number that fell in a is
    Binomial(total, trials_a / (trials_a + trials_b)); p is the chance of a count at most
    a's. Exact for small counts, where the pooled z-test is too optimistic (5 of 3,872
    against 11 of 1,889: z-test 0.0011, exact 0.0035). 1.0 without trials or successes.
    """
    if trials_a <= 0 or trials_b <= 0:
        return 1.0
    total = successes_a + successes_b
    if total == 0:
        return 1.0
    share = trials_a / (trials_a + trials_b)
    if total > EXACT_UP_TO:
        mean, sd = total * share, math.sqrt(total * share * (1 - share))
        z = (successes_a + 0.5 - mean) / sd
        return min(1.0, 0.5 * math.erfc(-z / math.sqrt(2)))
    log_p, log_q, log_total = math.log(share), math.log1p(-share), math.lgamma(total + 1)
    terms = [
        log_total
        - math.lgamma(k + 1)
        - math.lgamma(total - k + 1)
        + k * log_p
        + (total - k) * log_q
        for k in range(successes_a + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True, slots=True)
class Realised:
    """How a variant's rate compares with the original's: a relative change in %."""

    improvement_pct: float
    ci95: Interval  # conservative: from the two Wilson intervals


def realised_improvement(
    original: tuple[int, int], variant: tuple[int, int], min_trials: int
) -> Realised | None:
    """(successes, trials) of both; None until both have `min_trials` and the original
    has a rate to compare with."""
    (o_hits, o_trials), (v_hits, v_trials) = original, variant
    if o_trials < min_trials or v_trials < min_trials or o_hits == 0:
        return None
    base = o_hits / o_trials
    o, v = wilson(o_hits, o_trials), wilson(v_hits, v_trials)
    return Realised(
        improvement_pct=100 * (v_hits / v_trials - base) / base,
        ci95=Interval(100 * (v.low - o.high) / base, 100 * (v.high - o.low) / base),
    )


def bytes_saved(original_bytes: int, variant_bytes: int) -> float:
    """The share of the original's bytes a variant saved, in % (negative: it grew),
    rounded to one decimal place."""
    if original_bytes <= 0:
        raise ValueError(f"original_bytes must be positive, got {original_bytes}")
    return round(100 * (original_bytes - variant_bytes) / original_bytes, 1)


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How a kind of suggestion's estimates compared with what happened.

    Means are percentages rounded to one decimal place.
    """

    realised: int  # how many suggestions have a realised improvement
    mean_estimated_pct: float
    mean_realised_pct: float
    mean_absolute_error_pct: float
    estimate_within_ci95: int  # how many estimates the realised 95 % interval contains


def estimate_accuracy(
    outcomes: Iterable[tuple[float, float | None, tuple[float, float] | None]],
) -> Accuracy | None:
    """The accuracy of (estimated %, realised %, realised 95 % interval) outcomes; None
    without any. A missing realised value counts as 0, a missing interval as [0, 0]."""
    pairs = [(e, r or 0.0, ci or (0.0, 0.0)) for e, r, ci in outcomes]
    if not pairs:
        return None
    count = len(pairs)
    return Accuracy(
        realised=count,
        mean_estimated_pct=round(sum(e for e, _, _ in pairs) / count, 1),
        mean_realised_pct=round(sum(r for _, r, _ in pairs) / count, 1),
        mean_absolute_error_pct=round(sum(abs(e - r) for e, r, _ in pairs) / count, 1),
        estimate_within_ci95=sum(1 for e, _, ci in pairs if ci[0] <= e <= ci[1]),
    )
