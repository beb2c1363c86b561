"""Leaderboards: which assets of a library lead on a rate, over a window, fairly.

A rate over a handful of impressions says nothing (1 click in 2 impressions is
not a 50 % CTR), so entries below a minimum of impressions never rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from service.domain.enums import Channel
from service.domain.metrics import ZERO, Totals, WindowTotals
from service.domain.windows import Window

LEADERBOARD_WINDOWS = (Window.DAY, Window.WEEK, Window.LIFETIME)
# Each window has a board per channel and one for all channels (None).
BOARD_CHANNELS: tuple[Channel | None, ...] = (None, *Channel)


class RankMetric(StrEnum):
    CTR = "ctr"
    ENGAGEMENT_RATE = "engagement_rate"
    CONVERSION_RATE = "conversion_rate"


class TopMetric(StrEnum):
    """What a library's top list ranks by: a rate of the boards, or how often each asset
    was published or used (its usage_count, kept by the registry)."""

    CTR = RankMetric.CTR.value
    ENGAGEMENT_RATE = RankMetric.ENGAGEMENT_RATE.value
    CONVERSION_RATE = RankMetric.CONVERSION_RATE.value
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class Entry:
    asset_id: str
    totals: Totals

    def value(self, metric: RankMetric) -> float:
        return float(getattr(self.totals, metric.value))


def rank(
    entries: Iterable[Entry], metric: RankMetric, *, min_impressions: int, limit: int
) -> list[Entry]:
    """The top entries: highest rate first, then most impressions, then asset id."""
    eligible = [e for e in entries if e.totals.impressions >= min_impressions]
    eligible.sort(key=lambda e: (-e.value(metric), -e.totals.impressions, e.asset_id))
    return eligible[:limit]


def campaign_entries(windows: Mapping[Window, WindowTotals]) -> dict[str, dict[Window, Totals]]:
    """What an asset contributes to each campaign's boards: per campaign, its totals in
    each board window where they are not all 0 (campaigns without any are left out)."""
    result: dict[str, dict[Window, Totals]] = {}
    for window in LEADERBOARD_WINDOWS:
        totals = windows.get(window)
        if totals is None:
            continue
        for campaign, sums in totals.by_campaign.items():
            if sums != ZERO:
                result.setdefault(campaign, {})[window] = sums
    return result


def board_totals(totals: WindowTotals, channel: Channel | None) -> Totals:
    """What an asset contributes to the board of one channel (None: all channels)."""
    return totals.total if channel is None else totals.channel(channel)
