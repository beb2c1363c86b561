"""The registry handlers against real Redis and Kafka: replays, crashes, held events."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from service.agents.emit import DeadLetters
from service.agents.registry import RegistryHandler
from service.config import Settings
from service.domain import registry as rules
from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle, AssetRegistered
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from service.topics import ensure_topics
from tests.conftest import KafkaPort, read_topic
from tests.unit.factories import registration_body, sha

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    settings: Settings
    store: RegistryStore
    handler: RegistryHandler
    counters: DeadLetterCounters
    offsets: Any

    def message(self, topic: str, body: dict[str, Any] | bytes, key: str) -> RawMessage:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        return RawMessage(topic, 0, next(self.offsets), key.encode(), value, 1_700_000_000_000)

    async def register(self, message: RawMessage) -> Any:
        event = decode(AssetRegistered, message, max_bytes=self.settings.max_message_bytes)
        return await self.handler.registration(event, message.source())

    async def lifecycle(self, message: RawMessage) -> Any:
        event = decode(AssetLifecycle, message, max_bytes=self.settings.max_message_bytes)
        return await self.handler.lifecycle(event, message.source())

    def reg(self, asset_id: str, **overrides: Any) -> RawMessage:
        body = registration_body(asset_id, **overrides)
        return self.message(self.settings.topic_asset_registered, body, asset_id)

    def life(self, asset_id: str, action: str, event_id: str, **extra: Any) -> RawMessage:
        body = {
            "event_id": event_id,
            "occurred_at": "2026-03-01T13:00:00+00:00",
            "asset_id": asset_id,
            "action": action,
            **extra,
        }
        return self.message(self.settings.topic_asset_lifecycle, body, asset_id)


@pytest.fixture
async def rig(settings: Settings, redis: Any, producer: KafkaPort) -> Rig:
    await ensure_topics(settings)
    keys = Keys(settings.redis_key_prefix)
    scripts = Scripts.register(redis)
    store = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)
    counters = DeadLetterCounters(redis, keys, scripts, 3600)
    handler = RegistryHandler(
        store=store,
        producer=producer,
        dead_letters=DeadLetters(producer, settings.topic_dead_letter, counters),
        duplicates_topic=settings.topic_duplicates_detected,
        hold_for=timedelta(hours=1),
    )
    return Rig(settings, store, handler, counters, count(100))


async def assets_and_bytes(rig: Rig, library_id: str) -> tuple[int, int]:
    stats = await rig.store.library_stats(library_id)
    assert stats is not None
    return stats.asset_count, stats.total_bytes


async def test_redelivered_registration_is_applied_and_announced_once(rig: Rig) -> None:
    first = rig.reg("a1", library_id="L1", content_sha256=sha(7), file_size_bytes=1000)
    second = rig.reg("a2", library_id="L2", content_sha256=sha(7), file_size_bytes=2000)
    await rig.register(first)
    await rig.register(second)
    await rig.register(second)  # redelivered after a crash: same offset
    copy = RawMessage(second.topic, 3, 999, second.key, second.value)  # re-sent by a producer
    assert (await rig.register(copy)).result == "applied"

    assert await assets_and_bytes(rig, "L1") == (1, 1000)
    assert await assets_and_bytes(rig, "L2") == (1, 2000)
    records = await read_topic(
        rig.settings.kafka_bootstrap_servers, rig.settings.topic_duplicates_detected, 1, 5
    )
    assert len(records) == 1
    detected = json.loads(records[0].value)
    assert records[0].key == sha(7).encode()
    assert detected["asset_id"] == "a2" and detected["library_id"] == "L2"
    assert detected["duplicates"] == [{"asset_id": "a1", "library_id": "L1"}]


async def test_crash_between_commit_and_projection_is_repaired_by_the_replay(rig: Rig) -> None:
    message = rig.reg("a1", file_size_bytes=500)
    event = decode(AssetRegistered, message, max_bytes=10_000)
    decision = rules.register(None, event, message.source())
    # the worker wrote the state, then died before projecting it and committing the offset
    assert await rig.store.commit("a1", 0, decision.state, decision.settled)
    assert await rig.store.library_stats("lib-1") is None

    await rig.register(message)  # Kafka redelivers the message
    await rig.register(message)
    assert await assets_and_bytes(rig, "lib-1") == (1, 500)


async def test_moving_an_asset_moves_its_statistics_and_indexes(rig: Rig) -> None:
    original = rig.reg("a1", library_id="L1", content_sha256=sha(1), file_size_bytes=100)
    await rig.register(original)
    await rig.register(rig.reg("a1", library_id="L2", content_sha256=sha(2), file_size_bytes=300))
    await rig.register(original)  # a late redelivery of the first registration changes nothing

    assert await assets_and_bytes(rig, "L1") == (0, 0)
    assert await assets_and_bytes(rig, "L2") == (1, 300)
    assert await rig.store.duplicates(sha(1)) == []
    assert [d.asset_id for d in await rig.store.duplicates(sha(2))] == ["a1"]
    loaded = await rig.store.load("a1")
    assert loaded.state is not None
    assert loaded.state.departed_libraries == [] and loaded.state.departed_hashes == []


async def test_lifecycle_counts_and_invalid_transitions_go_to_dead_letters(rig: Rig) -> None:
    await rig.register(rig.reg("a1", file_size_bytes=100))
    approved = rig.life("a1", "approved", "e-approve")
    assert (await rig.lifecycle(approved)).result == "applied"
    assert (await rig.lifecycle(approved)).result == "applied"  # replay: no second transition
    bad = rig.life("a1", "archived", "e-archive")
    assert (await rig.lifecycle(bad)).result == "rejected"
    await rig.lifecycle(bad)  # replayed after a crash: the dead letter may repeat, not the count
    await rig.lifecycle(rig.life("a1", "used", "e-use", campaign_id="c9"))

    stats = await rig.store.library_stats("lib-1")
    assert stats is not None
    assert stats.by_status["approved"] == 1 and stats.by_status["draft"] == 0
    asset = (await rig.store.load("a1")).state
    assert asset is not None and asset.asset is not None
    assert asset.asset.usage_count == 1 and asset.asset.campaigns_used_in == ["c9"]

    records = await read_topic(
        rig.settings.kafka_bootstrap_servers, rig.settings.topic_dead_letter, 1, 5
    )
    letters = {json.loads(r.value)["event_id"] for r in records}
    assert letters == {f"dead-letter/{bad.topic}/0/{bad.offset}"}
    letter = json.loads(records[0].value)
    assert letter["reason_code"] == "invalid_transition"
    assert base64.b64decode(letter["value_base64"]) == bad.value
    assert letter["original_event_id"] == "e-archive"
    assert (await rig.counters.totals())["invalid_transition"] == 1


async def test_held_events_apply_on_registration_or_expire(rig: Rig) -> None:
    early = rig.life("a1", "approved", "e-early")
    assert (await rig.lifecycle(early)).result == "held"
    orphan = rig.life("ghost", "approved", "e-ghost")
    assert (await rig.lifecycle(orphan)).result == "held"
    assert await rig.handler.sweep_held() == 0  # nothing is due yet

    await rig.register(rig.reg("a1"))
    state = (await rig.store.load("a1")).state
    assert state is not None and state.asset is not None
    assert state.asset.status == "approved" and state.held == []

    later = datetime.now(UTC) + timedelta(hours=2)
    assert await rig.handler.sweep_held(later) == 1
    assert await rig.handler.sweep_held(later) == 0
    ghost = (await rig.store.load("ghost")).state
    assert ghost is not None and ghost.held == [] and ghost.undelivered == []
    assert await rig.store.due_held(later, 10) == []

    records = await read_topic(
        rig.settings.kafka_bootstrap_servers, rig.settings.topic_dead_letter, 1, 5
    )
    assert len(records) == 1
    letter = json.loads(records[0].value)
    assert letter["reason_code"] == "registration_timeout"
    assert letter["asset_id"] == "ghost"
    assert base64.b64decode(letter["value_base64"]) == orphan.value
    assert (await rig.counters.totals())["registration_timeout"] == 1


async def test_deleted_asset_leaves_its_library_and_content_index(rig: Rig) -> None:
    await rig.register(rig.reg("a1", content_sha256=sha(3)))
    await rig.register(rig.reg("a2", content_sha256=sha(3)))
    await rig.lifecycle(rig.life("a1", "deleted", "e-del"))
    assert await assets_and_bytes(rig, "lib-1") == (1, 250_000)
    assert [d.asset_id for d in await rig.store.duplicates(sha(3))] == ["a2"]
    outcome = await rig.register(rig.reg("a1"))
    assert outcome.result == "rejected"
    assert outcome.rejections[0].reason_code == "asset_deleted"


async def test_a_replayed_rejection_is_decided_again(rig: Rig) -> None:
    """After a fix, the dead letter's bytes are produced again: the event now applies."""
    await rig.register(rig.reg("a1"))
    archive = rig.life("a1", "archived", "e-archive")
    assert (await rig.lifecycle(archive)).result == "rejected"
    await rig.lifecycle(rig.life("a1", "approved", "e-approve"))
    await rig.lifecycle(rig.life("a1", "published", "e-publish", campaign_id="c1"))
    replayed = rig.message(rig.settings.topic_asset_lifecycle, archive.value or b"", "a1")
    assert (await rig.lifecycle(replayed)).result == "applied"
    state = (await rig.store.load("a1")).state
    assert state is not None and state.asset is not None and state.asset.status == "archived"
    # and once applied, a further copy is a duplicate like any other
    again = rig.message(rig.settings.topic_asset_lifecycle, archive.value or b"", "a1")
    assert (await rig.lifecycle(again)).source == replayed.source()
