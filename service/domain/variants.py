"""Variants of an asset (the seed's MediaVariant) and how each compares with its original.

An asset registered with `variant_of` is a variant of that asset's original: a variant
of a variant belongs to the same original, so every variant family is one original and
its variants. On each channel, a variant's CTR is compared with the original's:

- `difference`: variant CTR - original CTR;
- a 95 % interval of the difference by Newcombe's hybrid score method (each CTR's
  Wilson interval combined; good coverage for small and unequal samples, unlike Wald);
- a two-sided p-value of the pooled two-proportion z-test;
- the verdict: `better` when the whole interval lies above 0, `worse` when below,
  `inconclusive` otherwise, or when either side has no impressions on that channel
  (or reports more clicks than impressions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from service.domain.metrics import Totals
from service.domain.statistics import wilson


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Comparison:
    """A variant's CTR against its original's on one channel (None: no evidence)."""

    difference: float | None
    ci95_low: float | None
    ci95_high: float | None
    p_value: float | None
    verdict: Verdict


NO_EVIDENCE = Comparison(None, None, None, None, Verdict.INCONCLUSIVE)


def original_of(
    asset_id: str, variant_of: str | None, referenced_original: str | None
) -> str | None:
    """The original an asset registered with `variant_of` belongs to: the referenced
    asset's own original when it is itself a variant (`referenced_original`), else the
    referenced asset. A chain that would lead back to the asset stops at the referenced
    asset."""
    if variant_of is None:
        return None
    if referenced_original is None or referenced_original == asset_id:
        return variant_of
    return referenced_original


def compare_ctr(original: Totals, variant: Totals) -> Comparison:
    """The variant's CTR against the original's (see the module's documentation)."""
    c0, n0 = original.clicks, original.impressions
    c1, n1 = variant.clicks, variant.impressions
    if n0 <= 0 or n1 <= 0 or c0 > n0 or c1 > n1:
        return NO_EVIDENCE
    p0, p1 = c0 / n0, c1 / n1
    w0, w1 = wilson(c0, n0), wilson(c1, n1)
    difference = p1 - p0
    low = difference - math.sqrt((p1 - w1.low) ** 2 + (w0.high - p0) ** 2)
    high = difference + math.sqrt((w1.high - p1) ** 2 + (p0 - w0.low) ** 2)
    pooled = (c0 + c1) / (n0 + n1)
    if pooled in (0.0, 1.0):
        p_value = 1.0
    else:
        se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        p_value = math.erfc(abs(difference / se) / math.sqrt(2))
    if low > 0:
        verdict = Verdict.BETTER
    elif high < 0:
        verdict = Verdict.WORSE
    else:
        verdict = Verdict.INCONCLUSIVE
    return Comparison(difference, low, high, p_value, verdict)
