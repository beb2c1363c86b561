"""Sends optimization suggestions: evaluate the rules, keep quiet when nothing changed.

Steps for one asset: compute drafts (file rules when it registers, performance rules
when the leader refreshes its boards); for each, read the last record of its
(type, channel) and apply `should_send`; send the event, then record it. A suggestion
keeps its `suggestion_id` for its life; each event of it has the next `revision` and
the event id `<suggestion_id>:<revision>`, so a repeat after a crash is the same event.

What closes a suggestion is sent too, as an event of the suggestion with its closing
state: feedback (applied, with the variant; dismissed), another suggestion of the same
type and channel (superseded), evidence that no longer holds (expired: a file rule that
no longer fires after a registration, a performance rule that no longer fires on a
sample large enough for a verdict) and an archived or deleted asset (expired).
Feedback that names an unknown suggestion, or another asset's, is refused with a
DecodeError: the message goes to the dead-letter topic with the reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from prometheus_client import Counter

from service.domain.enums import (
    AssetStatus,
    Channel,
    DeadLetterReason,
    FeedbackOutcome,
    SuggestionOrigin,
    SuggestionState,
)
from service.domain.events import (
    ManualSuggestionRequest,
    OptimizationSuggestion,
    SuggestionFeedback,
)
from service.domain.metrics import ZERO, Totals
from service.domain.registry import Asset
from service.domain.rules_config import RulesConfig
from service.domain.statistics import bytes_saved, minimum_sample, realised_improvement
from service.domain.suggestion_state import Status, next_event_state, should_send
from service.domain.suggestions import (
    BYTE_SAVING_TYPES,
    FILE_TYPES,
    PERFORMANCE_TYPES,
    Draft,
    creative_fatigue,
    file_rules,
    refresh_design,
    suggestion_id,
)
from service.domain.windows import Window
from service.errors import DecodeError
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
        """File rules; an open file suggestion the registered file no longer deserves
        expires. A variant of an applied suggestion records the bytes it saved."""
        await self._realise(asset)
        if asset.status in RETIRED:
            return await self._retire_asset(asset)
        drafts = file_rules(asset, self._config)
        fired = {(d.type, d.channel) for d in drafts}
        await self._expire(
            asset.asset_id,
            lambda r: (
                r.suggestion.origin is SuggestionOrigin.RULES
                and r.suggestion.type in FILE_TYPES
                and (r.suggestion.type, r.suggestion.channel) not in fired
            ),
            "the registered file no longer gives reason for it",
        )
        return await self._send(asset, drafts)

    async def on_totals(
        self, asset: Asset, totals: Mapping[Window, Mapping[Channel, Totals]]
    ) -> int:
        """Performance rules per channel: creative fatigue from the asset's daily totals
        of the last 30 days and its last 24 hours, otherwise refresh_design from 7 days.

        Only for approved and published assets: an archived or deleted asset's open
        suggestions expire, a draft gets no performance suggestion. An open performance
        suggestion of a channel that now has enough impressions for a verdict and no
        longer fires expires.
        """
        await self._realise(asset)
        if asset.status in RETIRED:
            await self._retire_asset(asset)
            return 0
        if asset.status not in PERFORMING:
            return 0
        week, day = totals.get(Window.WEEK, {}), totals.get(Window.DAY, {})
        judged = {  # channels with enough impressions in 7 days for any verdict
            channel
            for channel, weekly in week.items()
            if weekly.impressions >= minimum_sample(self._config.for_channel(channel).ctr_benchmark)
        }
        days: Sequence[Mapping[Channel, Totals]] = []
        if judged:  # the daily series is read only when some channel could give a verdict
            days = await self._daily(asset.asset_id, self._now().timestamp())
        drafts: list[Draft] = []
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
        fired = {(d.type, d.channel) for d in drafts}
        await self._expire(
            asset.asset_id,
            lambda r: (
                r.suggestion.origin is SuggestionOrigin.RULES
                and r.suggestion.type in PERFORMANCE_TYPES
                and r.suggestion.channel in judged
                and (r.suggestion.type, r.suggestion.channel) not in fired
            ),
            "its performance no longer gives reason for it",
        )
        return await self._send(asset, drafts)

    async def _realise(self, variant: Asset) -> None:
        """Record what an applied suggestion's variant achieved, in the unit of the
        suggestion's own estimate: bytes saved for the file rules that estimate a saving
        (the variant's file against the original's size in the evidence), known as soon
        as the variant is registered; the lifetime CTR change on the suggestion's channel
        for the performance rules, once both have enough impressions. Rules that claim no
        gain (compliance, opt-in) have nothing to compare."""
        suggestion_id = await self._store.variant_of(variant.asset_id)
        record = None if suggestion_id is None else await self._store.by_id(suggestion_id)
        if record is None or record.realised_improvement_pct is not None:
            return
        s = record.suggestion
        if s.type in BYTE_SAVING_TYPES:
            original_bytes = s.evidence.get("file_size_bytes")
            if not isinstance(original_bytes, int):
                return
            saved = bytes_saved(original_bytes, variant.file_size_bytes)
            realised: tuple[float, tuple[float, float]] = (saved, (saved, saved))  # measured
        elif s.type in PERFORMANCE_TYPES:
            original = await self._lifetime(s.asset_id, s.channel)
            mine = await self._lifetime(variant.asset_id, s.channel)
            needed = minimum_sample(self._config.for_channel(s.channel).ctr_benchmark)
            result = realised_improvement(
                (original.clicks, original.impressions), (mine.clicks, mine.impressions), needed
            )
            if result is None:
                return
            ci95 = (round(result.ci95.low, 1), round(result.ci95.high, 1))
            realised = (round(result.improvement_pct, 1), ci95)
        else:
            return
        current = await self._store.get(s.asset_id, s.type, s.channel)
        if current is None or current.suggestion.event_id != s.event_id:
            return  # its slot moved on (opened again or superseded) before the outcome
        await self._store.record_realised(
            record.model_copy(
                update={"realised_improvement_pct": realised[0], "realised_ci95": realised[1]}
            )
        )

    async def feedback(self, event: SuggestionFeedback) -> bool:
        """Close an open suggestion and publish its closing event; True when it was open.

        Feedback for a suggestion already closed changes nothing (False). Feedback naming
        no suggestion this service sent, or another asset's, raises DecodeError (dead
        letter)."""
        record = await self._store.by_id(event.suggestion_id)
        if record is None:
            raise DecodeError(
                DeadLetterReason.UNKNOWN_SUGGESTION,
                f"suggestion_id '{event.suggestion_id}' names no suggestion this service "
                "sent: use the suggestion_id of a suggestion event (not its event_id), as "
                f"GET /v1/assets/{event.asset_id}/suggestions lists them",
                event.event_id,
            )
        owner = record.suggestion.asset_id
        if owner != event.asset_id:
            raise DecodeError(
                DeadLetterReason.SUGGESTION_ASSET_MISMATCH,
                f"suggestion '{event.suggestion_id}' is about asset '{owner}', not "
                f"'{event.asset_id}': send the feedback with asset_id '{owner}' (and that "
                "Kafka key)",
                event.event_id,
            )
        if record.status is not Status.OPEN:
            return False
        applied = event.outcome is FeedbackOutcome.APPLIED
        if applied and event.new_asset_id is not None:
            await self._store.link_variant(
                event.new_asset_id, event.suggestion_id, original_id=event.asset_id
            )
        await self._close(
            record,
            Status.APPLIED if applied else Status.DISMISSED,
            event.occurred_at,
            new_asset_id=event.new_asset_id,
        )
        return True

    async def manual(
        self, asset: Asset, request: ManualSuggestionRequest
    ) -> OptimizationSuggestion:
        """Publish a suggestion a person made, marked `manual`, and record it beside the
        rules' (never in their place). The request's event_id names it: the same request
        again returns the suggestion already made and publishes nothing."""
        key = f"{asset.asset_id}|{request.event_id}"
        identity = f"man-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        known = await self._store.by_id(identity)
        if known is not None:
            return known.suggestion
        now = self._now()
        event = OptimizationSuggestion(
            event_id=f"{identity}:1",
            occurred_at=now,
            suggestion_id=identity,
            asset_id=asset.asset_id,
            library_id=asset.library_id,
            type=request.type,
            priority=request.priority,
            channel=request.channel,
            description=request.description,
            estimated_improvement_pct=request.estimated_improvement_pct,
            improvement_basis=request.improvement_basis,
            evidence={
                "request_event_id": request.event_id,
                "requested_at": request.occurred_at.isoformat(),
            },
            created_at=now,
            origin=SuggestionOrigin.MANUAL,
        )
        await self._producer.send(self._topic, asset.asset_id.encode(), encode(event))
        await self._store.put(SuggestionRecord(suggestion=event))
        self._sent.labels(type=request.type.value, priority=request.priority.value).inc()
        return event

    async def _close(
        self,
        record: SuggestionRecord,
        status: Status,
        when: datetime,
        *,
        new_asset_id: str | None = None,
        superseded_by: str | None = None,
        reason: str | None = None,
    ) -> SuggestionRecord:
        """Publish the suggestion's closing event (the next revision), then record it."""
        s = record.suggestion
        revision = s.revision + 1
        evidence = dict(s.evidence)
        if reason is not None:
            evidence["closed_because"] = reason
        closing = s.model_copy(
            update={
                "event_id": f"{s.suggestion_id}:{revision}",
                "occurred_at": when,
                "revision": revision,
                "state": SuggestionState(status.value),
                "new_asset_id": new_asset_id,
                "superseded_by": superseded_by,
                "evidence": evidence,
            }
        )
        closed = record.model_copy(
            update={
                "suggestion": closing,
                "status": status,
                "closed_at": when,
                "new_asset_id": new_asset_id,
            }
        )
        await self._producer.send(self._topic, s.asset_id.encode(), encode(closing))
        if status is Status.SUPERSEDED:
            await self._store.retire(closed)
        else:
            await self._store.put(closed)
        return closed

    async def _expire(
        self, asset_id: str, applies: Callable[[SuggestionRecord], bool], reason: str
    ) -> int:
        """Expire the asset's open suggestions `applies` selects."""
        now = self._now()
        expired = 0
        for record in await self._store.for_asset(asset_id):
            if record.status is Status.OPEN and applies(record):
                await self._close(record, Status.EXPIRED, now, reason=reason)
                expired += 1
        return expired

    async def _retire_asset(self, asset: Asset) -> int:
        """An archived or deleted asset: its open suggestions expire, nothing is sent."""
        await self._expire(asset.asset_id, lambda _: True, f"the asset is {asset.status}")
        return 0

    async def _send(self, asset: Asset, drafts: list[Draft]) -> int:
        now = self._now()
        sent = 0
        for draft in drafts:
            previous = await self._store.get(asset.asset_id, draft.type, draft.channel)
            state = None if previous is None else previous.state()
            identity = suggestion_id(asset.asset_id, draft)
            if not should_send(
                state,
                draft.priority,
                draft.estimated_improvement_pct,
                now,
                self._cooldown,
                identity,
            ):
                continue
            same = previous is not None and previous.suggestion.suggestion_id == identity
            if previous is not None and not same:
                if previous.status is Status.OPEN:  # replaced: announce it, keep it by id
                    await self._close(previous, Status.SUPERSEDED, now, superseded_by=identity)
                else:
                    await self._store.retire(previous)
            event_state = next_event_state(None if previous is None else previous.status, same)
            revision = previous.suggestion.revision + 1 if previous is not None and same else 1
            created = (
                previous.suggestion.created_at
                if previous is not None and event_state is SuggestionState.UPDATED
                else now
            )
            event = OptimizationSuggestion(
                event_id=f"{identity}:{revision}",
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
                created_at=created,
                revision=revision,
                state=event_state,
            )
            # Kafka first: a crash before the record repeats the same event (same id).
            await self._producer.send(self._topic, asset.asset_id.encode(), encode(event))
            await self._store.put(SuggestionRecord(suggestion=event))
            self._sent.labels(type=draft.type.value, priority=draft.priority.value).inc()
            sent += 1
        return sent


PERFORMING = frozenset({AssetStatus.APPROVED, AssetStatus.PUBLISHED})
RETIRED = frozenset({AssetStatus.ARCHIVED, AssetStatus.DELETED})
