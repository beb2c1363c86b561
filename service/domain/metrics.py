"""Engagement counters and the rates derived from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

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


ZERO = Totals()


def ratio(numerator: int, denominator: int) -> float:
    """A rate that is 0 when there is nothing to divide by, never NaN or an error."""
    return numerator / denominator if denominator > 0 else 0.0


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """An asset's sums over one window: per channel and per campaign.

    Every event has one channel and one campaign, so the channels' sums and the
    campaigns' sums each add up to the asset's total; the total is taken from the
    channels (a closed set).
    """

    by_channel: Mapping[Channel, Totals] = field(default_factory=dict)
    by_campaign: Mapping[str, Totals] = field(default_factory=dict)

    @property
    def total(self) -> Totals:
        return sum_totals(self.by_channel.values())

    def channel(self, channel: Channel) -> Totals:
        return self.by_channel.get(channel, ZERO)

    def campaign(self, campaign: str) -> Totals:
        return self.by_campaign.get(campaign, ZERO)


def sum_totals(totals: Iterable[Totals]) -> Totals:
    result = ZERO
    for t in totals:
        result = result + t
    return result
