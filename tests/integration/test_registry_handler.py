"""The registry handlers against real Redis and Kafka: replays, crashes, held events."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.config import Settings
from service.domain import registry as rules
from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle, AssetRegistered
from service.handlers import registry as registry_handlers
from service.handlers.emit import DeadLetters
from service.handlers.ports import ignore_change, ignore_registered, utc_now
from service.handlers.registry import RegistryHandler
from service.observability import Instruments
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from service.topics import ensure_topics
from tests.conftest import KafkaPort, read_topic
from tests.unit.factories import registration_body, sha

pytestmark = pytest.mark.integration


class FakeClock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


MAX_HELD = 3


@dataclass
class Rig:
    settings: Settings
    store: RegistryStore
    handler: RegistryHandler
    counters: DeadLetterCounters
    offsets: Any
    clock: FakeClock

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
    clock = FakeClock()
    instruments = Instruments.create()
    handler = RegistryHandler(
        store=store,
        producer=producer,
        dead_letters=DeadLetters(
            producer, settings.topic_dead_letter, counters, instruments.dead_letters
        ),
        duplicates_topic=settings.topic_duplicates_detected,
        hold_for=timedelta(hours=1),
        on_change=ignore_change,
        duplicates_sent=instruments.duplicates,
        on_registered=ignore_registered,
        now=utc_now,
        max_held_per_asset=MAX_HELD,
        clock=clock,
    )
    return Rig(settings, store, handler, counters, count(100), clock)


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
    records = await read_topic(rig.settings, rig.settings.topic_duplicates_detected, 1, 5)
    assert len(records) == 1
    detected = json.loads(records[0].value)
    assert records[0].key == sha(7).encode()
    assert detected["asset_id"] == "a2" and detected["library_id"] == "L2"
    assert detected["duplicates"] == [{"asset_id": "a1", "library_id": "L1", "same_library": False}]
    assert detected["kind"] == "reuse"


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

    records = await read_topic(rig.settings, rig.settings.topic_dead_letter, 1, 5)
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
    # the asset never registered and nothing is left of it: its state is gone
    assert (await rig.store.load("ghost")).state is None
    assert await rig.store.due_held(later, 10) == []

    records = await read_topic(rig.settings, rig.settings.topic_dead_letter, 1, 5)
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


# --- bounded held events ----------------------------------------------------------------


async def dead_letters(rig: Rig, expected: int) -> list[dict[str, Any]]:
    records = await read_topic(rig.settings, rig.settings.topic_dead_letter, expected, 5)
    return [json.loads(r.value) for r in records]


async def test_one_event_over_the_cap_is_dead_lettered_and_applies_when_replayed(
    rig: Rig,
) -> None:
    held = [rig.life("a1", "approved", f"e-{i}") for i in range(MAX_HELD - 1)]
    held.append(rig.life("a1", "published", "e-pub", campaign_id="c1"))
    for message in held:
        assert (await rig.lifecycle(message)).result == "held"
    extra = rig.life("a1", "used", "e-extra", campaign_id="c2")
    outcome = await rig.lifecycle(extra)
    assert outcome.result == "rejected"
    assert await rig.lifecycle(extra) == outcome  # redelivered: the same decision
    state = (await rig.store.load("a1")).state
    assert state is not None and len(state.held) == MAX_HELD

    letters = await dead_letters(rig, 1)
    assert {letter["event_id"] for letter in letters} == {
        f"dead-letter/{extra.topic}/0/{extra.offset}"
    }  # sent again for the redelivery, with the same id, and counted once
    letter = letters[0]
    assert letter["reason_code"] == "too_many_held_events"
    assert letter["original_event_id"] == "e-extra"
    assert "already has 3 lifecycle events waiting" in letter["reason"]
    assert "MEDIA_MAX_HELD_EVENTS_PER_ASSET" in letter["reason"]
    assert (await rig.counters.totals())["too_many_held_events"] == 1

    await rig.register(rig.reg("a1"))  # the held events apply...
    replayed = rig.message(rig.settings.topic_asset_lifecycle, extra.value or b"", "a1")
    assert (await rig.lifecycle(replayed)).result == "applied"  # ...and so does the replay
    state = (await rig.store.load("a1")).state
    assert state is not None and state.asset is not None
    assert state.asset.status == "published"
    assert state.asset.campaigns_used_in == ["c1", "c2"]


async def test_the_sweep_takes_batch_after_batch_until_nothing_is_due(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_handlers, "SWEEP_BATCH", 2)
    for i in range(5):
        await rig.lifecycle(rig.life(f"ghost-{i}", "approved", f"e-{i}"))
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await rig.handler.sweep_held(later) == 5
    assert await rig.store.due_held(later, 10) == []
    assert (await rig.counters.totals())["registration_timeout"] == 5


async def test_the_sweep_stops_at_its_budget_and_the_next_one_continues(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_handlers, "SWEEP_BATCH", 2)
    for i in range(5):
        await rig.lifecycle(rig.life(f"ghost-{i}", "approved", f"e-{i}"))
    later = datetime.now(UTC) + timedelta(hours=2)
    rig.clock.step = 1.0  # every asset "takes" a second
    assert await rig.handler.sweep_held(later, budget_seconds=2.5) == 3
    assert len(await rig.store.due_held(later, 10)) == 2
    assert await rig.handler.sweep_held(later, budget_seconds=0.5) == 1  # always one at least
    assert await rig.handler.sweep_held(later, budget_seconds=2.5) == 1
    assert await rig.handler.sweep_held(later, budget_seconds=2.5) == 0
    letters = await dead_letters(rig, 5)
    assert sorted(letter["asset_id"] for letter in letters) == [f"ghost-{i}" for i in range(5)]


async def test_an_expired_unregistered_asset_leaves_only_its_seen_hash(
    rig: Rig, redis: Any
) -> None:
    keys = Keys(rig.settings.redis_key_prefix)
    first = rig.life("ghost", "approved", "e-1")
    second = rig.life("ghost", "archived", "e-2")
    await rig.lifecycle(first)
    await rig.lifecycle(second)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await rig.handler.sweep_held(later) == 2
    assert not await redis.exists(keys.asset_state("ghost"))
    assert await redis.zscore(keys.held_schedule, "ghost") is None
    assert await redis.hlen(keys.asset_seen("ghost")) == 2  # expires on its own

    # A re-sent copy of a settled event is recognised: nothing is held again, and its
    # dead letter, if sent again, is counted once.
    copy = await rig.lifecycle(first)
    assert copy.result == "rejected"
    assert copy.rejections[0].reason_code == "registration_timeout"
    assert not await redis.exists(keys.asset_state("ghost"))
    assert await redis.zscore(keys.held_schedule, "ghost") is None
    assert (await rig.counters.totals())["registration_timeout"] == 2

    # A replay from another offset is held again, expires again, and is forgotten again.
    replayed = rig.message(rig.settings.topic_asset_lifecycle, first.value or b"", "ghost")
    assert (await rig.lifecycle(replayed)).result == "held"
    state = (await rig.store.load("ghost")).state
    assert state is not None and state.rev == 1 and len(state.held) == 1
    even_later = later + timedelta(hours=2)
    assert await rig.handler.sweep_held(even_later) == 1
    assert not await redis.exists(keys.asset_state("ghost"))
    assert (await rig.counters.totals())["registration_timeout"] == 3
    ids = {letter["event_id"] for letter in await dead_letters(rig, 4)}
    assert f"dead-letter/{replayed.topic}/0/{replayed.offset}" in ids
    assert len(ids) == 3  # the copy's dead letter repeats the first one's id


async def test_an_asset_that_changed_meanwhile_is_not_forgotten(rig: Rig, redis: Any) -> None:
    await rig.lifecycle(rig.life("ghost", "approved", "e-1"))
    later = datetime.now(UTC) + timedelta(hours=2)
    loaded = await rig.store.load("ghost")
    assert loaded.state is not None
    expired, rejections = rules.expire_held(loaded.state, later, timedelta(hours=1))
    assert await rig.store.commit("ghost", loaded.rev, expired, {})
    # a new event is held meanwhile: the rev the sweep read is gone
    await rig.lifecycle(rig.life("ghost", "published", "e-2", campaign_id="c1"))
    assert not await rig.store.forget("ghost", expired.rev)
    state = (await rig.store.load("ghost")).state
    assert state is not None and [h.event.event_id for h in state.held] == ["e-2"]
    assert state.undelivered == rejections

    # the next sweep (before e-2 expires) sends the outbox and keeps the state
    now = datetime.now(UTC)
    assert await rig.handler.sweep_held(now) == 1
    state = (await rig.store.load("ghost")).state
    assert state is not None and state.undelivered == [] and len(state.held) == 1
    deadline = await redis.zscore(Keys(rig.settings.redis_key_prefix).held_schedule, "ghost")
    expires = state.held[0].received_at + timedelta(hours=1)
    assert deadline == int(expires.timestamp() * 1000)


async def test_the_forget_script_checks_its_input_and_never_deletes_a_live_state(
    rig: Rig, redis: Any
) -> None:
    keys = Keys(rig.settings.redis_key_prefix)
    scripts = Scripts.register(redis)
    state_key = keys.asset_state("a1")
    for bad in ("0", "-1", "1.5", "x", "", "9007199254740992"):
        with pytest.raises(ResponseError, match="bad input"):
            await scripts.asset_forget(keys=[state_key], args=[bad])
    with pytest.raises(ResponseError, match="bad input"):
        await scripts.asset_forget(keys=[state_key], args=[1, 2])
    assert await scripts.asset_forget(keys=[state_key], args=[1]) == 0  # no state at all

    await rig.lifecycle(rig.life("a1", "approved", "e-1"))
    with pytest.raises(ResponseError, match="not forgettable: lifecycle events are held"):
        await rig.store.forget("a1", 1)
    await rig.register(rig.reg("a1"))
    rev = (await rig.store.load("a1")).rev
    with pytest.raises(ResponseError, match="not forgettable: the asset is registered"):
        await rig.store.forget("a1", rev)
    assert await redis.exists(state_key)
