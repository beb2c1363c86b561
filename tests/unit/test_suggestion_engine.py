"""SuggestionEngine on the in-memory fakes: sent once, quiet on replays, the cooldowns,
feedback, and the realised improvement of an applied suggestion's variant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from service.domain import registry as rules
from service.domain.enums import AssetStatus, Channel, DeadLetterReason, Priority, SuggestionType
from service.domain.events import ManualSuggestionRequest, SuggestionFeedback
from service.domain.metrics import Totals
from service.domain.registry import Asset
from service.domain.suggestion_state import DISMISSED_COOLDOWNS, Status
from service.domain.windows import Window, window_buckets
from service.errors import DecodeError
from service.handlers.suggestions import SuggestionEngine
from service.observability import Instruments
from service.runtime import load_rules
from service.store.codecs import window_totals
from service.store.metrics import ApplyStatus, PerfRow
from tests.fakes import FakeMetricsStore, FakeProducer, FakeSuggestionStore
from tests.unit.factories import T0, registration, source

TOPIC = "suggestions"
COOLDOWN = timedelta(hours=6)
NOW = T0.timestamp()


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    store: FakeSuggestionStore = field(default_factory=FakeSuggestionStore)
    producer: FakeProducer = field(default_factory=FakeProducer)
    metrics: FakeMetricsStore = field(default_factory=FakeMetricsStore)
    instruments: Instruments = field(default_factory=Instruments.create)
    clock: WallClock = field(default_factory=WallClock)
    engine: SuggestionEngine = field(init=False)

    def __post_init__(self) -> None:
        async def lifetime(asset_id: str, channel: Channel | None) -> Totals:
            totals = await self.metrics.totals(asset_id, Window.LIFETIME, NOW, channel=channel)
            return totals or Totals()

        async def daily(asset_id: str, now: float) -> list[Mapping[Channel, Totals]]:
            partition = self.metrics.pointers.get(asset_id)
            if partition is None:
                return []
            resolution, starts = window_buckets(Window.MONTH, now)
            buckets = self.metrics.buckets
            return [
                window_totals(
                    [buckets.get((partition, asset_id, resolution.name, s), {})]
                ).by_channel
                for s in starts
            ]

        self.engine = SuggestionEngine(
            self.store,
            self.producer,
            TOPIC,
            load_rules(None),
            COOLDOWN,
            self.instruments.suggestions,
            lifetime,
            daily=daily,
            now=self.clock,
        )

    def sent(self) -> list[dict[str, Any]]:
        return self.producer.on(TOPIC)

    def counted(self, suggestion_type: str, priority: str) -> float:
        value = self.instruments.registry.get_sample_value(
            "media_suggestions_emitted_total", {"type": suggestion_type, "priority": priority}
        )
        return value or 0.0

    def feedback(
        self, suggestion_id: str, outcome: str, new_asset_id: str | None = None
    ) -> SuggestionFeedback:
        return SuggestionFeedback(
            event_id=f"f-{suggestion_id}-{outcome}",
            occurred_at=self.clock.now,
            suggestion_id=suggestion_id,
            asset_id="a1",
            outcome=outcome,  # type: ignore[arg-type]
            new_asset_id=new_asset_id,
        )


@pytest.fixture
def rig() -> Rig:
    return Rig()


def asset(asset_id: str = "a1", **overrides: Any) -> Asset:
    state = rules.register(None, registration(asset_id, **overrides), source()).state
    assert state.asset is not None
    return state.asset


def display_asset(asset_id: str = "a1", status: AssetStatus = AssetStatus.PUBLISHED) -> Asset:
    """A published asset for display with nothing to say about its file."""
    registered = asset(
        asset_id, intended_channels=["display"], file_size_bytes=10_000, width=1200, height=628
    )
    return registered.model_copy(update={"status": status})


def week(clicks: int, impressions: int) -> dict[Window, dict[Channel, Totals]]:
    return {Window.WEEK: {Channel.DISPLAY: Totals(impressions, clicks)}, Window.DAY: {}}


async def test_file_rules_are_sent_at_registration_and_quiet_on_a_replay(rig: Rig) -> None:
    big = asset(
        intended_channels=["display", "web"],
        format="jpeg",
        width=1200,
        height=600,
        file_size_bytes=900_000,
    )
    assert await rig.engine.on_registered(big) == 3
    assert await rig.engine.on_registered(big) == 0  # redelivered: nothing new
    rig.clock.now += 10 * COOLDOWN
    assert await rig.engine.on_registered(big) == 0, "an open suggestion is not repeated"

    sent = rig.sent()
    assert sorted((e["type"], e.get("channel")) for e in sent) == [
        ("compress", "display"),
        ("convert_to_webp", "web"),
        ("fix_aspect_ratio", "display"),  # 2:1 is no display ratio; 1200 px is within 2x
    ]
    assert {key for _, key, _ in rig.producer.sent} == {b"a1"}
    assert all(e["event_id"] == f"{e['suggestion_id']}:1" for e in sent)
    assert all((e["revision"], e["state"]) == (1, "open") for e in sent)
    assert all(e["created_at"] == e["occurred_at"] for e in sent)
    records = await rig.store.for_asset("a1")
    assert sorted(r.suggestion.suggestion_id for r in records) == sorted(
        e["suggestion_id"] for e in sent
    )
    assert {r.status for r in records} == {Status.OPEN}
    listed, _ = await rig.store.library_page("lib-1", filters={}, cursor=None, limit=10)
    assert {r.suggestion.suggestion_id for r in listed} == {e["suggestion_id"] for e in sent}
    assert sum(rig.counted(e["type"], e["priority"]) for e in sent) == 3


async def test_a_small_clean_file_gets_no_suggestion(rig: Rig) -> None:
    assert await rig.engine.on_registered(display_asset()) == 0
    assert rig.sent() == [] and rig.store.slots == {}


async def test_a_higher_priority_is_sent_at_once(rig: Rig) -> None:
    a = display_asset()
    assert await rig.engine.on_totals(a, week(0, 1_000)) == 1  # upper bound 0.38 % < 0.46 %
    assert await rig.engine.on_totals(a, week(0, 1_100)) == 0  # nothing material changed
    assert await rig.engine.on_totals(a, week(0, 5_000)) == 1  # below half the benchmark
    first, second = rig.sent()
    assert (first["priority"], second["priority"]) == ("medium", "high")
    assert first["suggestion_id"] == second["suggestion_id"], "same trigger, same id"
    assert first["event_id"] != second["event_id"], "every event has its own id"
    assert (second["revision"], second["state"]) == (2, "updated")
    assert second["created_at"] == first["created_at"]
    [record] = await rig.store.for_asset("a1")
    assert record.suggestion.priority is Priority.HIGH and record.status is Status.OPEN
    assert await rig.engine.on_totals(a, week(0, 50_000)) == 0, "high is the top"


async def test_a_material_change_is_sent_again_only_after_the_cooldown(rig: Rig) -> None:
    a = display_asset()
    assert await rig.engine.on_totals(a, week(20, 10_000)) == 1
    [first] = rig.sent()
    assert first["priority"] == "medium" and first["estimated_improvement_pct"] == 56.5
    # A materially different estimate at the same priority: quiet during the cooldown.
    assert await rig.engine.on_totals(a, week(30, 10_000)) == 0
    rig.clock.now += COOLDOWN - timedelta(seconds=1)
    assert await rig.engine.on_totals(a, week(30, 10_000)) == 0
    rig.clock.now += timedelta(seconds=1)
    assert await rig.engine.on_totals(a, week(30, 10_000)) == 1
    second = rig.sent()[1]
    assert (second["priority"], second["estimated_improvement_pct"]) == ("medium", 34.8)
    assert datetime.fromisoformat(second["occurred_at"]) == rig.clock.now
    assert (second["revision"], second["state"]) == (2, "updated")
    # The cooldown counts from the last send: an immediate further change waits again.
    assert await rig.engine.on_totals(a, week(20, 10_000)) == 0


async def test_a_dismissed_suggestion_stays_quiet_for_its_cooldowns(rig: Rig) -> None:
    a = display_asset()
    await rig.engine.on_totals(a, week(0, 1_000))
    [sent] = rig.sent()
    rig.clock.now += timedelta(hours=1)
    assert await rig.engine.feedback(rig.feedback(sent["suggestion_id"], "dismissed"))
    record = await rig.store.by_id(sent["suggestion_id"])
    assert record is not None and record.status is Status.DISMISSED
    assert record.closed_at == rig.clock.now and record.new_asset_id is None
    assert await rig.store.variant_of("a2") is None

    closed_at = rig.clock.now
    rig.clock.now = closed_at + DISMISSED_COOLDOWNS * COOLDOWN - timedelta(seconds=1)
    assert await rig.engine.on_totals(a, week(0, 50_000)) == 0, "even a higher priority"
    rig.clock.now = closed_at + DISMISSED_COOLDOWNS * COOLDOWN
    assert await rig.engine.on_totals(a, week(0, 50_000)) == 1
    [record] = await rig.store.for_asset("a1")
    assert record.status is Status.OPEN and record.closed_at is None
    states = [(e["suggestion_id"], e["revision"], e["state"]) for e in rig.sent()]
    sid = sent["suggestion_id"]
    assert states == [(sid, 1, "open"), (sid, 2, "dismissed"), (sid, 3, "open")]


async def test_feedback_closes_an_open_suggestion_once(rig: Rig) -> None:
    a = display_asset()
    await rig.engine.on_totals(a, week(0, 5_000))
    [sent] = rig.sent()
    suggestion_id = sent["suggestion_id"]

    rig.clock.now += timedelta(minutes=5)
    applied = rig.feedback(suggestion_id, "applied", new_asset_id="a2")
    assert await rig.engine.feedback(applied)
    record = await rig.store.by_id(suggestion_id)
    assert record is not None and record.status is Status.APPLIED
    assert (record.closed_at, record.new_asset_id) == (rig.clock.now, "a2")
    assert await rig.store.variant_of("a2") == suggestion_id
    assert rig.store.originals["a2"] == a.asset_id  # listed among the original's variants
    closing = rig.sent()[-1]
    assert closing["event_id"] == f"{suggestion_id}:2"
    assert (closing["state"], closing["revision"], closing["new_asset_id"]) == ("applied", 2, "a2")
    assert closing["occurred_at"] == applied.occurred_at.isoformat().replace("+00:00", "Z")

    # Already closed: a later dismissal changes nothing and sends nothing.
    rig.clock.now += timedelta(minutes=5)
    assert not await rig.engine.feedback(rig.feedback(suggestion_id, "dismissed"))
    assert await rig.store.by_id(suggestion_id) == record
    assert len(rig.sent()) == 2
    # Applied: quiet for one cooldown after it closed.
    rig.clock.now = applied.occurred_at + COOLDOWN - timedelta(seconds=1)
    assert await rig.engine.on_totals(a, week(0, 5_000)) == 0
    rig.clock.now = applied.occurred_at + COOLDOWN
    assert await rig.engine.on_totals(a, week(0, 5_000)) == 1


async def test_feedback_for_an_unknown_suggestion_or_another_assets_is_refused(rig: Rig) -> None:
    with pytest.raises(DecodeError) as unknown:
        await rig.engine.feedback(rig.feedback("sug-unknown", "applied"))
    assert unknown.value.code is DeadLetterReason.UNKNOWN_SUGGESTION
    assert "sug-unknown" in unknown.value.reason

    await rig.engine.on_totals(display_asset("a9"), week(0, 5_000))
    [sent] = rig.sent()
    with pytest.raises(DecodeError) as other:
        await rig.engine.feedback(rig.feedback(sent["suggestion_id"], "dismissed"))  # asset a1
    assert other.value.code is DeadLetterReason.SUGGESTION_ASSET_MISMATCH
    assert "asset_id 'a9'" in other.value.reason
    record = await rig.store.by_id(sent["suggestion_id"])
    assert record is not None and record.status is Status.OPEN
    assert len(rig.sent()) == 1


async def test_a_replaced_file_supersedes_and_expires_its_suggestions(rig: Rig) -> None:
    big = asset(
        intended_channels=["display"],
        format="jpeg",
        width=1200,
        height=628,
        file_size_bytes=400_000,
    )
    assert await rig.engine.on_registered(big) == 1  # compress: over 150 KB
    [first] = rig.sent()
    # Re-registered at another size over the limit: the same suggestion, revised (once
    # the cooldown passed: the estimate moved, the priority did not).
    rig.clock.now += COOLDOWN
    bigger = big.model_copy(update={"file_size_bytes": 900_000})
    assert await rig.engine.on_registered(bigger) == 1
    assert (rig.sent()[-1]["state"], rig.sent()[-1]["revision"]) == ("updated", 2)
    assert rig.sent()[-1]["suggestion_id"] == first["suggestion_id"]
    # Re-registered with a 2:1 crop of 100 KB: compress expires, fix_aspect_ratio opens.
    cropped = big.model_copy(update={"file_size_bytes": 100_000, "height": 600})
    assert await rig.engine.on_registered(cropped) == 1
    expired, opened = rig.sent()[-2:]
    assert (expired["suggestion_id"], expired["state"], expired["revision"]) == (
        first["suggestion_id"],
        "expired",
        3,
    )
    assert expired["evidence"]["closed_because"]
    assert (opened["type"], opened["state"]) == ("fix_aspect_ratio", "open")
    assert len({e["event_id"] for e in rig.sent()}) == len(rig.sent())


async def test_a_new_trigger_in_the_same_slot_supersedes_the_open_suggestion(rig: Rig) -> None:
    wide = asset(
        intended_channels=["display"], format="jpeg", width=1200, height=600, file_size_bytes=9_000
    )
    await rig.engine.on_registered(wide)
    [first] = rig.sent()
    wider = wide.model_copy(update={"height": 500})  # 2.4:1: another ratio, another id
    assert await rig.engine.on_registered(wider) == 1
    superseded, replacement = rig.sent()[1:]
    assert (superseded["suggestion_id"], superseded["state"]) == (
        first["suggestion_id"],
        "superseded",
    )
    assert superseded["superseded_by"] == replacement["suggestion_id"] != first["suggestion_id"]
    old = await rig.store.by_id(first["suggestion_id"])
    assert old is not None and old.status is Status.SUPERSEDED, "still found by id"
    assert not await rig.engine.feedback(rig.feedback(first["suggestion_id"], "applied"))


async def test_no_performance_suggestions_unless_approved_or_published(rig: Rig) -> None:
    draft = display_asset(status=AssetStatus.DRAFT)
    assert await rig.engine.on_totals(draft, week(0, 5_000)) == 0
    assert rig.sent() == []
    live = display_asset(status=AssetStatus.PUBLISHED)
    assert await rig.engine.on_totals(live, week(0, 5_000)) == 1
    [opened] = rig.sent()
    archived = display_asset(status=AssetStatus.ARCHIVED)
    assert await rig.engine.on_totals(archived, week(0, 50_000)) == 0
    closing = rig.sent()[-1]
    assert (closing["suggestion_id"], closing["state"]) == (opened["suggestion_id"], "expired")
    record = await rig.store.by_id(opened["suggestion_id"])
    assert record is not None and record.status is Status.EXPIRED
    assert await rig.engine.on_totals(archived, week(0, 50_000)) == 0
    assert len(rig.sent()) == 2, "expired once"


async def test_a_recovered_ctr_expires_the_performance_suggestion(rig: Rig) -> None:
    a = display_asset()
    await rig.engine.on_totals(a, week(0, 5_000))
    assert await rig.engine.on_totals(a, week(30, 5_000)) == 0  # 0.6 %: above 0.46 %
    assert rig.sent()[-1]["state"] == "expired"
    # Too few impressions for a verdict: nothing expires.
    b = display_asset("b1")
    await rig.engine.on_totals(b, week(0, 5_000))
    await rig.engine.on_totals(b, week(0, 100))
    assert rig.sent()[-1]["state"] == "open"


async def test_applied_without_a_variant_links_nothing(rig: Rig) -> None:
    await rig.engine.on_totals(display_asset(), week(0, 5_000))
    [sent] = rig.sent()
    assert await rig.engine.feedback(rig.feedback(sent["suggestion_id"], "applied"))
    assert rig.store.variants == {}
    record = await rig.store.by_id(sent["suggestion_id"])
    assert record is not None and record.status is Status.APPLIED


async def perform(rig: Rig, first: int, rows: list[tuple[str, int, int]]) -> None:
    """(asset, impressions, clicks) on display, applied on partition 0 an hour before NOW."""
    await rig.metrics.point(0, sorted({r[0] for r in rows}))
    perf = [
        PerfRow(
            f"ev{first + n}", a, "display", "c1", int(NOW) - 3600, impressions, clicks, 0, 0, 0, 0
        )
        for n, (a, impressions, clicks) in enumerate(rows)
    ]
    result = await rig.metrics.apply(0, first, first + len(perf) - 1, perf, NOW)
    assert result.status is ApplyStatus.APPLIED


async def test_the_realised_improvement_is_recorded_once_the_variant_has_enough(
    rig: Rig,
) -> None:
    original, variant = display_asset("a1"), display_asset("a2")
    await rig.engine.on_totals(original, week(0, 5_000))
    [sent] = rig.sent()
    suggestion_id = sent["suggestion_id"]
    await rig.engine.feedback(rig.feedback(suggestion_id, "applied", new_asset_id="a2"))

    await perform(rig, 0, [("a1", 10_000, 20), ("a2", 100, 1)])  # the variant: too few yet
    await rig.engine.on_totals(variant, {Window.WEEK: {}, Window.DAY: {}})
    record = await rig.store.by_id(suggestion_id)
    assert record is not None and record.realised_improvement_pct is None
    assert await rig.store.realised(SuggestionType.REFRESH_DESIGN) == []

    await perform(rig, 2, [("a2", 9_900, 49)])  # 50 clicks in 10,000 against 20
    await rig.engine.on_totals(variant, {Window.WEEK: {}, Window.DAY: {}})
    record = await rig.store.by_id(suggestion_id)
    assert record is not None and record.status is Status.APPLIED
    assert record.realised_improvement_pct == 150.0  # 0.5 % against 0.2 %
    assert record.realised_ci95 is not None and record.realised_ci95[0] > 0
    [known] = await rig.store.realised(SuggestionType.REFRESH_DESIGN)
    assert known == record

    # Recorded once: more events of the variant do not change it.
    await perform(rig, 3, [("a2", 10_000, 0)])
    await rig.engine.on_totals(variant, {Window.WEEK: {}, Window.DAY: {}})
    assert await rig.store.by_id(suggestion_id) == record
    # The original itself is no variant: nothing is recorded for it.
    await rig.engine.on_totals(original, {Window.WEEK: {}, Window.DAY: {}})
    assert await rig.store.realised(SuggestionType.REFRESH_DESIGN) == [record]


async def test_fatigue_that_began_six_days_ago_is_sent_from_the_daily_buckets(rig: Rig) -> None:
    """~3 % CTR for two weeks, then ~1 % for the last six days, on display: the engine reads
    the asset's daily buckets and sends creative_fatigue, not refresh_design."""
    a = display_asset("a1")
    await rig.metrics.point(0, ["a1"])
    rows = [
        PerfRow(
            f"ev{day}",
            "a1",
            "display",
            "c1",
            int(NOW) - day * 86_400,
            2_000,
            20 if day < 6 else 60,
            0,
            0,
            0,
            0,
        )
        for day in range(20)
    ]
    applied = await rig.metrics.apply(0, 0, len(rows) - 1, rows, NOW)
    assert applied.status is ApplyStatus.APPLIED
    week_totals = await rig.metrics.window_totals("a1", Window.WEEK, NOW)
    day_totals = await rig.metrics.window_totals("a1", Window.DAY, NOW)
    assert week_totals is not None and day_totals is not None
    totals = {Window.WEEK: week_totals.by_channel, Window.DAY: day_totals.by_channel}
    assert await rig.engine.on_totals(a, totals) == 1
    [sent] = rig.sent()
    assert (sent["type"], sent["channel"], sent["priority"]) == (
        "creative_fatigue",
        "display",
        "high",
    )
    assert sent["evidence"]["recent_period"] == "the last 6 days"
    assert sent["evidence"]["baseline_period"] == "days 7-30"
    assert sent["evidence"]["recent_impressions"] == 12_000


async def test_a_byte_saving_is_realised_from_the_variants_file_in_bytes(rig: Rig) -> None:
    """compress estimates bytes saved: its outcome is the variant's size against the
    original's, not a CTR change."""
    big = asset(
        intended_channels=["display"],
        format="jpeg",
        width=1200,
        height=628,
        file_size_bytes=400_000,
    )
    await rig.engine.on_registered(big)
    [sent] = rig.sent()
    assert sent["type"] == "compress" and sent["estimated_improvement_pct"] == 61.6
    await rig.engine.feedback(rig.feedback(sent["suggestion_id"], "applied", new_asset_id="a2"))
    variant = asset(
        "a2", intended_channels=["display"], format="jpeg", width=1200, height=628,
        file_size_bytes=120_000,
    )  # fmt: skip
    await rig.engine.on_registered(variant)
    record = await rig.store.by_id(sent["suggestion_id"])
    assert record is not None
    assert (record.realised_improvement_pct, record.realised_ci95) == (70.0, (70.0, 70.0))
    [known] = await rig.store.realised(SuggestionType.COMPRESS)
    assert known == record


async def test_a_compliance_suggestion_has_no_outcome_to_realise(rig: Rig) -> None:
    wide = asset(
        intended_channels=["display"], format="jpeg", width=1200, height=600, file_size_bytes=9_000
    )
    await rig.engine.on_registered(wide)
    [sent] = rig.sent()
    await rig.engine.feedback(rig.feedback(sent["suggestion_id"], "applied", new_asset_id="a2"))
    await rig.engine.on_registered(
        asset("a2", intended_channels=["display"], file_size_bytes=9_000)
    )
    record = await rig.store.by_id(sent["suggestion_id"])
    assert record is not None and record.realised_improvement_pct is None


async def test_a_manual_suggestion_takes_feedback_and_no_rule_touches_it(rig: Rig) -> None:
    request = ManualSuggestionRequest(
        event_id="req-9",
        occurred_at=T0,
        type=SuggestionType.COMPRESS,
        priority=Priority.LOW,
        channel=Channel.DISPLAY,
        description="Squeeze it for the partner site.",
        estimated_improvement_pct=10.0,
    )
    small = display_asset()  # nothing for the rules to say about its file
    made = await rig.engine.manual(small, request)
    await rig.engine.on_registered(small)  # the file rules do not expire it
    record = await rig.store.by_id(made.suggestion_id)
    assert record is not None and record.status is Status.OPEN
    assert await rig.engine.feedback(rig.feedback(made.suggestion_id, "dismissed"))
    closing = rig.sent()[-1]
    assert (closing["origin"], closing["state"], closing["revision"]) == ("manual", "dismissed", 2)
    assert len(rig.sent()) == 2
