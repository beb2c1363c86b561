"""Performance labels: how an asset does on a channel against the rest of its library.

The rule, per channel, over a board window (24h, 7d or lifetime):

- `learning`: the asset has fewer than `min_impressions` impressions on the channel
  (`MEDIA_LEADERBOARD_MIN_IMPRESSIONS`), or no other asset of its library has that many
  there: too little to tell;
- otherwise its CTR's 95 % Wilson interval is compared with the pooled CTR of the
  library's other assets that have `min_impressions` there (their clicks / their
  impressions): `low` when the whole interval lies below it, `best` when the whole
  interval lies above it, `good` when it overlaps (not shown to differ).

Clicks beyond an asset's impressions (a producer's error) count as its impressions.
The pooled rate weighs each asset by its impressions, so one tiny asset with a lucky CTR
cannot set the bar; the interval makes a verdict need evidence in proportion to how
close the asset is to the bar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from service.domain.metrics import Totals, ratio
from service.domain.statistics import wilson


class Label(StrEnum):
    LEARNING = "learning"
    LOW = "low"
    GOOD = "good"
    BEST = "best"


@dataclass(frozen=True, slots=True)
class Judged:
    label: Label
    library_ctr: float | None  # the pooled CTR of the others compared with (None: learning)


def judge(asset: Totals, others: Iterable[Totals], min_impressions: int) -> Judged:
    """The label of an asset's totals on one channel against its library's other assets'."""
    eligible = [o for o in others if o.impressions >= max(1, min_impressions)]
    if asset.impressions < max(1, min_impressions) or not eligible:
        return Judged(Label.LEARNING, None)
    clicks = sum(min(o.clicks, o.impressions) for o in eligible)
    impressions = sum(o.impressions for o in eligible)
    bar = ratio(clicks, impressions)
    interval = wilson(min(asset.clicks, asset.impressions), asset.impressions)
    if interval.high < bar:
        return Judged(Label.LOW, bar)
    if interval.low > bar:
        return Judged(Label.BEST, bar)
    return Judged(Label.GOOD, bar)
