"""Leaderboards: which assets of a library lead on a rate, over a window, fairly.

A rate over a handful of impressions says nothing (1 click in 2 impressions is
not a 50 % CTR), so entries below a minimum of impressions never rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from service.domain.enums import Channel
from service.domain.metrics import METRICS, Totals
from service.domain.windows import Window

LEADERBOARD_WINDOWS = (Window.DAY, Window.WEEK, Window.LIFETIME)
ALL_CHANNELS = "all"
_CHANNELS = frozenset(c.value for c in Channel)


class RankMetric(StrEnum):
    CTR = "ctr"
    ENGAGEMENT_RATE = "engagement_rate"
    CONVERSION_RATE = "conversion_rate"


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


def by_channel(buckets: Iterable[Mapping[str, str | int]]) -> dict[str, Totals]:
    """Totals of every channel with activity, and of all channels together."""
    sums: dict[str, dict[str, int]] = {}
    for bucket in buckets:
        for field, value in bucket.items():
            if not field.startswith("ch:"):
                continue
            _, channel, metric = field.split(":", 2)
            sums.setdefault(channel, dict.fromkeys(METRICS, 0))[metric] += int(value)
    per_channel = {channel: Totals(**values) for channel, values in sums.items()}
    result = {dimension(c): t for c, t in per_channel.items() if c in _CHANNELS}
    if per_channel:
        total = Totals()
        for totals in per_channel.values():
            total = total + totals
        result[ALL_CHANNELS] = total
    return result


def encode(totals: Totals) -> str:
    return ",".join(str(getattr(totals, m)) for m in METRICS)


def decode(text: str) -> Totals:
    return Totals(*(int(v) for v in text.split(",")))


def dimension(channel: str | None) -> str:
    return ALL_CHANNELS if channel is None else f"ch:{channel}"


DIMENSIONS = (ALL_CHANNELS, *(dimension(c.value) for c in Channel))
