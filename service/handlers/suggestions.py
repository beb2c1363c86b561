"""Sends optimization suggestions: evaluate the rules, keep quiet when nothing changed.

Steps for one asset: compute drafts (file rules when it registers, performance rules
when the leader refreshes its boards); for each, read the last record of its
(type, channel) and apply `should_send`; send the event (its id is deterministic, so
a repeat after a crash is the same suggestion), then record it. Feedback closes a
record: applied (with the new asset, a variant of the original) or dismissed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from prometheus_client import Counter

from service.domain.enums import Channel, FeedbackOutcome
from service.domain.events import OptimizationSuggestion, SuggestionFeedback
from service.domain.metrics import ZERO, Totals
from service.domain.registry import Asset
from service.domain.rules_config import RulesConfig
from service.domain.statistics import minimum_sample, realised_improvement
from service.domain.suggestion_state import Status, should_send
from service.domain.suggestions import (
    Draft,
    creative_fatigue,
    file_rules,
    refresh_design,
    suggestion_id,
)
from service.domain.windows import Window
from service.handlers.emit import Producer, encode
from service.handlers.ports import Clock, SuggestionRecords, utc_now
from service.store.suggestions import SuggestionRecord

log = logging.getLogger(__name__)

# (asset_id, channel or None) -> its lifetime totals
LifetimeTotals = Callable[[str, Channel | None], Awaitable[Totals]]
# (asset_id, now in epoch seconds) -> its totals per channel for each UTC day of the last
# 30, newest first (MetricsStore.daily)
DailyTotals = Callable[[str, float], Awaitable[Sequence[Mapping[Channel, Totals]]]]


class SuggestionEngine:
    def __init__(
        self,
        store: SuggestionRecords,
        producer: Producer,
        topic: str,
        config: RulesConfig,
        cooldown: timedelta,
        sent: Counter,
        lifetime: LifetimeTotals,
        *,
        daily: DailyTotals,
        now: Clock = utc_now,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topic = topic
        self._config = config
        self._cooldown = cooldown
        self._sent = sent
        self._lifetime = lifetime
        self._daily = daily
        self._now = now

    async def on_registered(self, asset: Asset) -> int:
        return await self._send(asset, file_rules(asset, self._config))

    async def on_totals(
        self, asset: Asset, totals: Mapping[Window, Mapping[Channel, Totals]]
    ) -> int:
        """Performance rules per channel: creative fatigue from the asset's daily totals
        of the last 30 days and its last 24 hours, otherwise refresh_design from 7 days."""
        drafts: list[Draft] = []
        week, day = totals.get(Window.WEEK, {}), totals.get(Window.DAY, {})
        days: Sequence[Mapping[Channel, Totals]] = []
        if any(
            weekly.impressions >= minimum_sample(self._config.for_channel(c).ctr_benchmark)
            for c, weekly in week.items()
        ):  # the daily series is read only when some channel could give a verdict
            days = await self._daily(asset.asset_id, self._now().timestamp())
        for channel, weekly in week.items():
            recent = day.get(channel, ZERO)
            series = [(d.get(channel, ZERO).clicks, d.get(channel, ZERO).impressions) for d in days]
            draft = creative_fatigue(
                series, (recent.clicks, recent.impressions), channel, self._config
            )
            if draft is None:
                draft = refresh_design(
                    weekly.clicks, weekly.impressions, channel, "7d", self._config
                )
            if draft is not None:
                drafts.append(draft)
        await self._realise(asset)
        return await self._send(asset, drafts)

    async def _realise(self, variant: Asset) -> None:
        """Once a variant has enough impressions, record how it did against the original:
        lifetime CTR on the suggestion's channel (all channels when it had none)."""
        suggestion_id = await self._store.variant_of(variant.asset_id)
        record = None if suggestion_id is None else await self._store.by_id(suggestion_id)
        if record is None or record.realised_improvement_pct is not None:
            return
        channel = record.suggestion.channel
        original = await self._lifetime(record.suggestion.asset_id, channel)
        mine = await self._lifetime(variant.asset_id, channel)
        needed = minimum_sample(self._config.for_channel(channel).ctr_benchmark)
        result = realised_improvement(
            (original.clicks, original.impressions), (mine.clicks, mine.impressions), needed
        )
        if result is None:
            return
        await self._store.record_realised(
            record.model_copy(
                update={
                    "realised_improvement_pct": round(result.improvement_pct, 1),
                    "realised_ci95": (round(result.ci95.low, 1), round(result.ci95.high, 1)),
                }
            )
        )

    async def feedback(self, event: SuggestionFeedback) -> bool:
        """Close a suggestion; False when it is unknown (or was superseded)."""
        record = await self._store.by_id(event.suggestion_id)
        if record is None or record.status is not Status.OPEN:
            return record is not None
        status = Status.APPLIED if event.outcome is FeedbackOutcome.APPLIED else Status.DISMISSED
        if status is Status.APPLIED and event.new_asset_id is not None:
            await self._store.link_variant(event.new_asset_id, event.suggestion_id)
        await self._store.put(
            record.model_copy(
                update={
                    "status": status,
                    "closed_at": event.occurred_at,
                    "new_asset_id": event.new_asset_id,
                }
            )
        )
        return True

    async def _send(self, asset: Asset, drafts: list[Draft]) -> int:
        now = self._now()
        sent = 0
        for draft in drafts:
            previous = await self._store.get(asset.asset_id, draft.type, draft.channel)
            state = None if previous is None else previous.state()
            if not should_send(
                state, draft.priority, draft.estimated_improvement_pct, now, self._cooldown
            ):
                continue
            identity = suggestion_id(asset.asset_id, draft)
            event = OptimizationSuggestion(
                event_id=identity,
                occurred_at=now,
                suggestion_id=identity,
                asset_id=asset.asset_id,
                library_id=asset.library_id,
                type=draft.type,
                priority=draft.priority,
                channel=draft.channel,
                description=draft.description,
                estimated_improvement_pct=draft.estimated_improvement_pct,
                improvement_basis=draft.improvement_basis,
                evidence=dict(draft.evidence),
                created_at=now,
            )
            # Kafka first: a crash before the record repeats the same suggestion id.
            await self._producer.send(self._topic, asset.asset_id.encode(), encode(event))
            await self._store.put(SuggestionRecord(suggestion=event))
            self._sent.labels(type=draft.type.value, priority=draft.priority.value).inc()
            sent += 1
        return sent
