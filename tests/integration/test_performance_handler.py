"""The performance handler on real Redis and Kafka: dead letters, resume, replays."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from service.config import Settings
from service.domain.decoding import RawMessage
from service.domain.windows import Window
from service.handlers.emit import DeadLetters
from service.handlers.performance import PerformanceHandler
from service.observability import Instruments
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.metrics import EventCounts, MetricsStore
from service.store.scripts import Scripts
from service.topics import ensure_topics
from tests.conftest import KafkaPort, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.secure]


@pytest.fixture
async def parts(settings: Settings, redis: Any, producer: KafkaPort) -> tuple[Any, ...]:
    await ensure_topics(settings)
    keys = Keys(settings.redis_key_prefix)
    scripts = Scripts.register(redis)
    store = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
    dead = DeadLetters(
        producer,
        settings.topic_dead_letter,
        DeadLetterCounters(redis, keys, scripts, 3600),
        Instruments.create().dead_letters,
    )
    return store, dead


def handler(parts: tuple[Any, ...]) -> PerformanceHandler:
    store, dead = parts
    return PerformanceHandler(
        store,
        dead,
        max_message_bytes=4096,
        future_tolerance_seconds=300,
        instruments=Instruments.create(),
    )


def message(offset: int, asset: str = "a1", *, ahead: float = -60, **extra: Any) -> RawMessage:
    body = {
        "event_id": f"e{offset}",
        "occurred_at": datetime.fromtimestamp(time.time() + ahead, UTC).isoformat(),
        "asset_id": asset,
        "campaign_id": "c1",
        "channel": "web",
        "impressions": 10,
        "clicks": 1,
        **extra,
    }
    return RawMessage("perf", 0, offset, asset.encode(), json.dumps(body).encode())


async def test_bad_and_future_events_are_dead_lettered(
    parts: tuple[Any, ...], settings: Settings
) -> None:
    store, _ = parts
    batch = [
        message(0),
        RawMessage("perf", 0, 1, b"a1", b"not json"),
        message(2, ahead=3600),
        message(3, impressions=-1),
    ]
    assert await handler(parts)(0, batch) is None
    assert await store.counters(1) == EventCounts(applied=1, duplicates=0, late=0)
    assert await store.position(0) == 3
    records = await read_topic(settings, settings.topic_dead_letter, 3, 5)
    reasons = sorted(json.loads(r.value)["reason_code"] for r in records)
    assert reasons == ["future_event", "invalid_json", "schema_violation"]
    future = next(json.loads(r.value) for r in records if b"future_event" in r.value)
    assert "MEDIA_FUTURE_TOLERANCE_SECONDS" in future["reason"]


async def test_a_new_owner_resumes_from_the_position_in_redis(parts: tuple[Any, ...]) -> None:
    store, _ = parts
    first = handler(parts)
    assert await first(0, [message(n) for n in range(5)]) is None
    # Kafka's committed offset ran ahead of Redis: the next owner is handed offset 10.
    second = handler(parts)
    assert await second(0, [message(n) for n in range(10, 12)]) == 5
    assert await second(0, [message(n) for n in range(5, 12)]) is None
    # A redelivery of what is applied changes nothing, a straddling batch only its new part.
    assert await second(0, [message(n) for n in range(3, 14)]) is None
    totals = await store.totals("a1", Window.HOUR, time.time())
    assert totals is not None and totals.impressions == 140
    assert (await store.counters(1)).applied == 14
    second.on_assignment()
    assert await second(0, [message(14)]) is None  # position 13: continues
