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


@dataclass(frozen=True, slots=True)
class Pool:
    """The library's assets that count on one board (at least `min_impressions`), added
    up: what an asset is judged against. Clicks beyond impressions count as impressions."""

    clicks: int = 0
    impressions: int = 0
    assets: int = 0

    @classmethod
    def of(cls, entries: Iterable[Totals], min_impressions: int) -> Pool:
        clicks = impressions = assets = 0
        for totals in entries:
            if _counts(totals, min_impressions):
                clicks += min(totals.clicks, totals.impressions)
                impressions += totals.impressions
                assets += 1
        return cls(clicks, impressions, assets)

    def without(self, totals: Totals, min_impressions: int) -> Pool:
        """The pool less one of its entries (the asset judged is not its own bar).

        A pool may have been added up before the entry changed (it is kept for a refresh
        interval): an entry it cannot hold leaves it as it is, and what would go below
        zero leaves no other asset rather than a negative one."""
        if not _counts(totals, min_impressions) or self.assets == 0:
            return self
        clicks = self.clicks - min(totals.clicks, totals.impressions)
        impressions = self.impressions - totals.impressions
        if self.assets == 1 or clicks < 0 or impressions <= 0:
            return Pool()
        return Pool(clicks, impressions, self.assets - 1)


def _counts(totals: Totals, min_impressions: int) -> bool:
    return totals.impressions >= max(1, min_impressions)


def judge(asset: Totals, others: Iterable[Totals], min_impressions: int) -> Judged:
    """The label of an asset's totals on one channel against its library's other assets'."""
    return judge_against(asset, Pool.of(others, min_impressions), min_impressions)


def judge_against(asset: Totals, others: Pool, min_impressions: int) -> Judged:
    """The label of an asset's totals on one channel against the pool of its library's
    other assets there."""
    if not _counts(asset, min_impressions) or others.assets == 0:
        return Judged(Label.LEARNING, None)
    bar = ratio(others.clicks, others.impressions)
    interval = wilson(min(asset.clicks, asset.impressions), asset.impressions)
    if interval.high < bar:
        return Judged(Label.LOW, bar)
    if interval.low > bar:
        return Judged(Label.BEST, bar)
    return Judged(Label.GOOD, bar)
