"""Engagement counters and the rates derived from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from service.domain.enums import Channel

METRICS = ("impressions", "clicks", "engagements", "conversions", "shares", "comments")


@dataclass(frozen=True, slots=True)
class Totals:
    impressions: int = 0
    clicks: int = 0
    engagements: int = 0
    conversions: int = 0
    shares: int = 0
    comments: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, m) + getattr(other, m) for m in METRICS))

    @property
    def ctr(self) -> float:
        return ratio(self.clicks, self.impressions)

    @property
    def engagement_rate(self) -> float:
        return ratio(self.engagements, self.impressions)

    @property
    def conversion_rate(self) -> float:
        return ratio(self.conversions, self.clicks)

    def as_dict(self) -> dict[str, int | float]:
        result: dict[str, int | float] = {f.name: getattr(self, f.name) for f in fields(self)}
        result["ctr"] = self.ctr
        result["engagement_rate"] = self.engagement_rate
        result["conversion_rate"] = self.conversion_rate
        return result


def ratio(numerator: int, denominator: int) -> float:
    """A rate that is 0 when there is nothing to divide by, never NaN or an error."""
    return numerator / denominator if denominator > 0 else 0.0


def channel_field(channel: str, metric: str) -> str:
    return f"ch:{channel}:{metric}"


def campaign_field(campaign: str, metric: str) -> str:
    return f"cp:{campaign}:{metric}"


def totals_of(
    counters: Iterable[Mapping[str, str | int]],
    *,
    channel: str | None = None,
    campaign: str | None = None,
) -> Totals:
    """Sum bucket counters for the whole asset, one channel, or one campaign.

    Buckets hold `ch:<channel>:<metric>` and `cp:<campaign>:<metric>` fields; the
    asset's total is the sum over its channels (a closed set).
    """
    sums = dict.fromkeys(METRICS, 0)
    if campaign is not None:
        wanted = {campaign_field(campaign, m): m for m in METRICS}
    elif channel is not None:
        wanted = {channel_field(channel, m): m for m in METRICS}
    else:
        wanted = {channel_field(c, m): m for c in Channel for m in METRICS}
    for bucket in counters:
        for field, value in bucket.items():
            metric = wanted.get(field)
            if metric is not None:
                sums[metric] += int(value)
    return Totals(**sums)
