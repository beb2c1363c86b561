"""Suggestions on real Redis and Kafka: sent once, quiet on replays, closed by feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.config import Settings
from service.domain import registry as rules
from service.domain.enums import AssetStatus, Channel, DeadLetterReason, SuggestionType
from service.domain.events import SuggestionFeedback
from service.domain.metrics import Totals
from service.domain.registry import Asset
from service.domain.suggestion_state import Status
from service.domain.windows import Window
from service.errors import DecodeError
from service.runtime import Runtime
from service.store.metrics import ApplyStatus, PerfRow
from tests.conftest import read_topic
from tests.unit.factories import registration, source

pytestmark = [pytest.mark.integration, pytest.mark.secure]


def asset(**overrides: Any) -> Asset:
    """A registered asset, published (performance rules judge only live assets)."""
    state = rules.register(None, registration(**overrides), source()).state
    assert state.asset is not None
    return state.asset.model_copy(update={"status": AssetStatus.PUBLISHED})


def week(clicks: int, impressions: int, channel: str = "display") -> dict[Window, Any]:
    totals = Totals(impressions=impressions, clicks=clicks)
    return {Window.WEEK: {Channel(channel): totals}, Window.DAY: {}}


async def sent(settings: Settings, expected: int) -> list[dict[str, Any]]:
    records = await read_topic(settings, settings.topic_optimization_suggestions, expected, 5)
    return [json.loads(r.value) for r in records]


async def test_file_rules_are_sent_once(runtime: Runtime, settings: Settings) -> None:
    big = asset(
        intended_channels=["display", "web"],
        format="jpeg",
        width=1200,
        height=600,
        file_size_bytes=900_000,
    )
    engine = runtime.suggestions
    assert await engine.on_registered(big) == 3
    assert await engine.on_registered(big) == 0  # a replay: nothing new
    events = await sent(settings, 3)
    # 1200 px is within twice the widest display unit (970 px): no resize
    assert sorted((e["type"], e.get("channel")) for e in events) == [
        ("compress", "display"),
        ("convert_to_webp", "web"),
        ("fix_aspect_ratio", "display"),
    ]
    records = await runtime.suggestion_store.for_asset("a1")
    assert {r.status for r in records} == {Status.OPEN}


async def test_performance_rules_priority_rise_and_feedback(
    runtime: Runtime, settings: Settings
) -> None:
    engine = runtime.suggestions
    a = asset(intended_channels=["display"], file_size_bytes=10_000, width=1200, height=628)
    assert await engine.on_totals(a, week(0, 1_000)) == 1  # medium: upper 0.38 % < 0.46 %
    assert await engine.on_totals(a, week(0, 1_100)) == 0  # nothing material changed
    assert await engine.on_totals(a, week(0, 5_000)) == 1  # priority rose to high
    events = await sent(settings, 2)
    assert [e["priority"] for e in events] == ["medium", "high"]
    assert events[0]["suggestion_id"] == events[1]["suggestion_id"]  # same trigger, same id
    assert [(e["revision"], e["state"]) for e in events] == [(1, "open"), (2, "updated")]
    assert len({e["event_id"] for e in events}) == 2
    assert events[1]["evidence"]["ci95"][1] < events[1]["evidence"]["benchmark"]

    dismissed = SuggestionFeedback(
        event_id="f1",
        occurred_at=datetime.now(UTC),
        suggestion_id=events[1]["suggestion_id"],
        asset_id="a1",
        outcome="dismissed",
    )  # type: ignore[arg-type]
    assert await engine.feedback(dismissed)
    record = await runtime.suggestion_store.by_id(events[1]["suggestion_id"])
    assert record is not None and record.status is Status.DISMISSED
    assert await engine.on_totals(a, week(0, 50_000)) == 0  # dismissed: quiet for 7 cooldowns
    closing = (await sent(settings, 3))[2]
    assert (closing["suggestion_id"], closing["revision"], closing["state"]) == (
        events[1]["suggestion_id"],
        3,
        "dismissed",
    )
    unknown = dismissed.model_copy(update={"suggestion_id": "sug-nope"})
    with pytest.raises(DecodeError) as refused:
        await engine.feedback(unknown)
    assert refused.value.code is DeadLetterReason.UNKNOWN_SUGGESTION


async def test_an_archived_asset_expires_its_open_suggestions(
    runtime: Runtime, settings: Settings
) -> None:
    engine = runtime.suggestions
    a = asset(intended_channels=["display"], file_size_bytes=10_000, width=1200, height=628)
    assert await engine.on_totals(a, week(0, 5_000)) == 1
    archived = a.model_copy(update={"status": AssetStatus.ARCHIVED})
    assert await engine.on_totals(archived, week(0, 50_000)) == 0
    opened, expired = await sent(settings, 2)
    assert (expired["suggestion_id"], expired["state"]) == (opened["suggestion_id"], "expired")
    [record] = await runtime.suggestion_store.for_asset("a1")
    assert record.status is Status.EXPIRED


async def test_fatigue_over_days_from_the_daily_buckets_in_redis(
    runtime: Runtime, settings: Settings
) -> None:
    import time

    now = time.time()
    store = runtime.metrics_store
    await store.point(0, ["a1"])
    rows = [
        PerfRow(f"d{day}", "a1", "email", "c1", int(now) - day * 86_400 - 60, 1_000,
                10 if day < 6 else 30, 0, 0, 0, 0)
        for day in range(20)
    ]  # fmt: skip
    assert (await store.apply(0, 0, len(rows) - 1, rows, now)).status is ApplyStatus.APPLIED
    daily = await store.daily("a1", now)
    assert len(daily) == 30
    assert [d.channel(Channel.EMAIL).impressions for d in daily[:21]] == [1_000] * 20 + [0]
    week_totals = await store.window_totals("a1", Window.WEEK, now)
    day_totals = await store.window_totals("a1", Window.DAY, now)
    assert week_totals is not None and day_totals is not None
    a = asset(intended_channels=["email"], file_size_bytes=10_000, width=1200, height=628)
    totals = {Window.WEEK: week_totals.by_channel, Window.DAY: day_totals.by_channel}
    assert await runtime.suggestions.on_totals(a, totals) == 1
    [event] = await sent(settings, 1)
    assert (event["type"], event["channel"]) == ("creative_fatigue", "email")


async def test_an_applied_suggestion_learns_what_its_variant_did(runtime: Runtime) -> None:
    import time

    engine = runtime.suggestions
    original = asset(intended_channels=["display"], file_size_bytes=10_000, width=1200, height=628)
    assert await engine.on_totals(original, week(0, 5_000)) == 1
    [record] = await runtime.suggestion_store.for_asset("a1")
    applied = SuggestionFeedback(
        event_id="f2",
        occurred_at=datetime.now(UTC),
        suggestion_id=record.suggestion.suggestion_id,
        asset_id="a1",
        outcome="applied",
        new_asset_id="a2",  # type: ignore[arg-type]
    )
    assert await engine.feedback(applied)

    now = time.time()
    store = runtime.metrics_store
    await store.point(0, ["a1", "a2"])
    rows = [
        PerfRow("o1", "a1", "display", "c1", int(now) - 60, 10_000, 20, 0, 0, 0, 0),
        PerfRow("v1", "a2", "display", "c1", int(now) - 60, 10_000, 50, 0, 0, 0, 0),
    ]
    assert (await store.apply(0, 0, 1, rows, now)).status is ApplyStatus.APPLIED
    variant = asset(
        asset_id="a2", intended_channels=["display"], file_size_bytes=10_000, width=1200, height=628
    )
    await engine.on_totals(variant, {Window.WEEK: {}, Window.DAY: {}})
    record = await runtime.suggestion_store.by_id(record.suggestion.suggestion_id)
    assert record is not None and record.status is Status.APPLIED
    assert record.new_asset_id == "a2"
    assert record.realised_improvement_pct == 150.0  # 0.5 % against 0.2 %
    assert record.realised_ci95 is not None and record.realised_ci95[0] > 0
    [known] = await runtime.suggestion_store.realised(SuggestionType.REFRESH_DESIGN)
    assert known.suggestion.suggestion_id == record.suggestion.suggestion_id
