"""RegistryHandler on the in-memory fakes: replays, retries, held events, the sweep."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest

from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle, AssetRegistered
from service.domain.registry import Asset, AssetState, Outcome
from service.errors import ConcurrentUpdateError
from service.handlers import registry as registry_handlers
from service.handlers.emit import DeadLetters
from service.handlers.registry import RegistryHandler
from service.observability import Instruments
from tests.fakes import FakeDeadLetterCounters, FakeProducer, FakeRegistryStore
from tests.unit.factories import T0, registration_body, sha

DUPLICATES = "dups"
DEAD = "dead"
REG = "registered"
LIFE = "lifecycle"
HOLD = timedelta(hours=1)
MAX_HELD = 3


class WallClock:
    """The handler's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Monotonic:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Rig:
    store: FakeRegistryStore
    producer: FakeProducer
    counters: FakeDeadLetterCounters
    instruments: Instruments
    clock: WallClock
    monotonic: Monotonic
    changes: list[list[str]] = field(default_factory=list)
    registered: list[Asset] = field(default_factory=list)
    offsets: Any = field(default_factory=lambda: count(100))
    handler: RegistryHandler = field(init=False)

    def __post_init__(self) -> None:
        async def on_change(asset_ids: list[str]) -> None:
            self.changes.append(asset_ids)

        async def on_registered(asset: Asset) -> None:
            self.registered.append(asset)

        self.handler = RegistryHandler(
            store=self.store,
            producer=self.producer,
            dead_letters=DeadLetters(
                self.producer, DEAD, self.counters, self.instruments.dead_letters
            ),
            duplicates_topic=DUPLICATES,
            hold_for=HOLD,
            on_change=on_change,
            duplicates_sent=self.instruments.duplicates,
            on_registered=on_registered,
            now=self.clock,
            max_attempts=5,
            max_held_per_asset=MAX_HELD,
            clock=self.monotonic,
        )

    def message(self, topic: str, body: dict[str, Any] | bytes, key: str) -> RawMessage:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        return RawMessage(topic, 0, next(self.offsets), key.encode(), value, 1_700_000_000_000)

    def again(self, message: RawMessage) -> RawMessage:
        """The same bytes from another offset: a producer's re-send, or a replay."""
        return self.message(message.topic, message.value or b"", message.key.decode())  # type: ignore[union-attr]

    def reg(self, asset_id: str, **overrides: Any) -> RawMessage:
        return self.message(REG, registration_body(asset_id, **overrides), asset_id)

    def life(self, asset_id: str, action: str, event_id: str, **extra: Any) -> RawMessage:
        body = {
            "event_id": event_id,
            "occurred_at": "2026-03-01T13:00:00+00:00",
            "asset_id": asset_id,
            "action": action,
            **extra,
        }
        return self.message(LIFE, body, asset_id)

    async def register(self, message: RawMessage) -> Outcome:
        event = decode(AssetRegistered, message, max_bytes=100_000)
        return await self.handler.registration(event, message.source())

    async def lifecycle(self, message: RawMessage) -> Outcome:
        event = decode(AssetLifecycle, message, max_bytes=100_000)
        return await self.handler.lifecycle(event, message.source())

    async def state(self, asset_id: str) -> AssetState | None:
        return (await self.store.load(asset_id)).state

    async def library(self, library_id: str) -> tuple[int, int]:
        stats = await self.store.library_stats(library_id)
        assert stats is not None
        return stats.asset_count, stats.total_bytes

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.producer.on(DEAD)

    def duplicates_sent(self) -> float:
        value = self.instruments.registry.get_sample_value("media_duplicates_detected_total")
        return value or 0.0


def make_rig(store: FakeRegistryStore | None = None) -> Rig:
    return Rig(
        store or FakeRegistryStore(),
        FakeProducer(),
        FakeDeadLetterCounters(),
        Instruments.create(),
        WallClock(),
        Monotonic(),
    )


@pytest.fixture
def rig() -> Rig:
    return make_rig()


async def test_a_registration_is_applied_projected_and_told(rig: Rig) -> None:
    outcome = await rig.register(rig.reg("a1", library_id="L1", file_size_bytes=1000))
    assert outcome.result == "applied"
    state = await rig.state("a1")
    assert state is not None and state.asset is not None and state.asset.status == "draft"
    assert await rig.library("L1") == (1, 1000)
    assert [(d.asset_id, d.library_id) for d in await rig.store.duplicates(sha(1))] == [
        ("a1", "L1")
    ]
    assert rig.changes == [["a1"]]
    assert [a.asset_id for a in rig.registered] == ["a1"]
    assert rig.producer.sent == [] and rig.store.schedule == {}


async def test_a_replayed_registration_changes_nothing(rig: Rig) -> None:
    message = rig.reg("a1", file_size_bytes=500)
    first = await rig.register(message)
    rev = (await rig.store.load("a1")).rev
    assert await rig.register(message) == first  # redelivered after a crash
    assert await rig.register(rig.again(message)) == first  # re-sent by its producer
    assert (await rig.store.load("a1")).rev == rev
    assert await rig.library("lib-1") == (1, 500)


async def test_duplicates_are_announced_once(rig: Rig) -> None:
    await rig.register(rig.reg("a1", library_id="L1", content_sha256=sha(7)))
    second = rig.reg("a2", library_id="L2", content_sha256=sha(7))
    await rig.register(second)
    await rig.register(second)
    await rig.register(rig.again(second))
    [detected] = rig.producer.on(DUPLICATES)
    assert detected["asset_id"] == "a2" and detected["library_id"] == "L2"
    assert detected["duplicates"] == [{"asset_id": "a1", "library_id": "L1", "same_library": False}]
    assert detected["kind"] == "reuse"  # the earlier copy is in another library
    assert rig.producer.sent[0][1] == sha(7).encode()
    assert rig.duplicates_sent() == 1

    # A third asset with the content names both earlier ones; a1 itself never is announced.
    await rig.register(rig.reg("a3", library_id="L1", content_sha256=sha(7)))
    third = rig.producer.on(DUPLICATES)[1]
    assert [(d["asset_id"], d["same_library"]) for d in third["duplicates"]] == [
        ("a1", True),
        ("a2", False),
    ]
    assert third["kind"] == "redundant_copy"  # a1 holds the same content in L1
    assert rig.duplicates_sent() == 2


async def test_moving_an_asset_moves_its_statistics_and_cleans_up(rig: Rig) -> None:
    original = rig.reg("a1", library_id="L1", content_sha256=sha(1), file_size_bytes=100)
    await rig.register(original)
    await rig.register(rig.reg("a1", library_id="L2", content_sha256=sha(2), file_size_bytes=300))
    await rig.register(original)  # a late redelivery of the first registration
    assert await rig.library("L1") == (0, 0)
    assert await rig.library("L2") == (1, 300)
    assert await rig.store.duplicates(sha(1)) == []
    state = await rig.state("a1")
    assert state is not None and state.departed_libraries == [] and state.departed_hashes == []


class InterleavedStore(FakeRegistryStore):
    """Runs `interleave` (another worker's write) just before the next commit, once."""

    def __init__(self) -> None:
        super().__init__()
        self.interleave: Any = None
        self.refused = 0

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        if self.interleave is not None:
            step, self.interleave = self.interleave, None
            await step()
        written = await super().commit(*args, **kwargs)
        self.refused += not written
        return written


async def test_a_concurrent_update_is_retried_on_the_new_state() -> None:
    store = InterleavedStore()
    rig = make_rig(store)
    await rig.register(rig.reg("a1", file_size_bytes=100))
    other = make_rig(store)  # another worker on the same Redis
    renamed = other.reg("a1", file_size_bytes=900, name="renamed.png")
    store.interleave = lambda: other.register(renamed)

    assert (await rig.lifecycle(rig.life("a1", "approved", "e-approve"))).result == "applied"
    assert store.refused == 1
    state = await rig.state("a1")
    assert state is not None and state.asset is not None
    assert (state.asset.status, state.asset.name) == ("approved", "renamed.png")
    stats = await store.library_stats("lib-1")
    assert stats is not None
    assert (stats.asset_count, stats.total_bytes, stats.by_status["approved"]) == (1, 900, 1)


async def test_an_asset_that_keeps_changing_gives_up_after_max_attempts() -> None:
    class Busy(FakeRegistryStore):
        async def commit(self, *args: Any, **kwargs: Any) -> bool:
            return False

    rig = make_rig(Busy())
    with pytest.raises(ConcurrentUpdateError, match="changed 5 times"):
        await rig.register(rig.reg("a1"))


async def test_lifecycle_events_before_the_registration_are_held_then_applied(rig: Rig) -> None:
    assert (await rig.lifecycle(rig.life("a1", "approved", "e-1"))).result == "held"
    published = rig.life("a1", "published", "e-2", campaign_id="c1")
    assert (await rig.lifecycle(published)).result == "held"
    assert rig.store.schedule == {"a1": int((T0 + HOLD).timestamp() * 1000)}
    assert rig.changes == [], "nothing a board shows changed yet"

    await rig.register(rig.reg("a1"))
    state = await rig.state("a1")
    assert state is not None and state.asset is not None and state.held == []
    assert (state.asset.status, state.asset.campaigns_used_in) == ("published", ["c1"])
    assert rig.store.schedule == {}
    stats = await rig.store.library_stats("lib-1")
    assert stats is not None and stats.by_status["published"] == 1
    assert (await rig.lifecycle(published)).result == "applied", "settled by the registration"
    assert rig.dead_letters() == []


async def test_a_rejection_is_dead_lettered_and_counted_once(rig: Rig) -> None:
    await rig.register(rig.reg("a1"))
    bad = rig.life("a1", "archived", "e-archive")
    assert (await rig.lifecycle(bad)).result == "rejected"
    assert (await rig.lifecycle(bad)).result == "rejected"  # redelivered after a crash
    letters = rig.dead_letters()
    assert [letter["event_id"] for letter in letters] == [f"dead-letter/{LIFE}/0/{bad.offset}"] * 2
    assert letters[0]["reason_code"] == "invalid_transition"
    assert letters[0]["original_event_id"] == "e-archive" and letters[0]["asset_id"] == "a1"
    assert (await rig.counters.totals())["invalid_transition"] == 1
    state = await rig.state("a1")
    assert state is not None and state.asset is not None and state.asset.status == "draft"


async def test_a_rejected_event_replayed_after_a_fix_is_decided_again(rig: Rig) -> None:
    await rig.register(rig.reg("a1"))
    archive = rig.life("a1", "archived", "e-archive")
    assert (await rig.lifecycle(archive)).result == "rejected"
    await rig.lifecycle(rig.life("a1", "approved", "e-approve"))
    await rig.lifecycle(rig.life("a1", "published", "e-publish", campaign_id="c1"))
    replayed = rig.again(archive)
    assert (await rig.lifecycle(replayed)).result == "applied"
    # Once applied, another copy is a re-sent copy like any other: nothing is sent for it.
    sent = len(rig.producer.sent)
    assert (await rig.lifecycle(rig.again(archive))).source == replayed.source()
    assert len(rig.producer.sent) == sent


async def test_one_event_over_the_held_cap_is_dead_lettered(rig: Rig) -> None:
    for i in range(MAX_HELD):
        assert (await rig.lifecycle(rig.life("a1", "approved", f"e-{i}"))).result == "held"
    extra = rig.life("a1", "approved", "e-extra")
    outcome = await rig.lifecycle(extra)
    assert outcome.result == "rejected"
    assert outcome.rejections[0].reason_code == "too_many_held_events"
    state = await rig.state("a1")
    assert state is not None and len(state.held) == MAX_HELD
    assert [letter["reason_code"] for letter in rig.dead_letters()] == ["too_many_held_events"]


async def test_a_deleted_asset_leaves_and_cannot_register_again(rig: Rig) -> None:
    await rig.register(rig.reg("a1", content_sha256=sha(3)))
    await rig.register(rig.reg("a2", content_sha256=sha(3)))
    await rig.lifecycle(rig.life("a1", "deleted", "e-del"))
    assert await rig.library("lib-1") == (1, 250_000)
    assert [d.asset_id for d in await rig.store.duplicates(sha(3))] == ["a2"]
    outcome = await rig.register(rig.reg("a1"))
    assert outcome.result == "rejected" and outcome.rejections[0].reason_code == "asset_deleted"
    assert [letter["reason_code"] for letter in rig.dead_letters()] == ["asset_deleted"]


# --- the sweep, on the injected clocks ----------------------------------------------------


async def test_the_sweep_expires_what_waited_longer_than_the_hold(rig: Rig) -> None:
    held = rig.life("ghost", "approved", "e-ghost")
    await rig.lifecycle(held)
    await rig.lifecycle(rig.life("a1", "approved", "e-early"))
    await rig.register(rig.reg("a1"))
    rig.clock.now = T0 + HOLD - timedelta(seconds=1)
    assert await rig.handler.sweep_held() == 0  # not due yet

    rig.clock.now = T0 + HOLD
    assert await rig.handler.sweep_held() == 1
    assert await rig.handler.sweep_held() == 0
    assert await rig.state("ghost") is None, "an asset that never registered leaves nothing"
    assert rig.store.schedule == {}
    [letter] = rig.dead_letters()
    assert (letter["reason_code"], letter["asset_id"]) == ("registration_timeout", "ghost")
    assert (await rig.counters.totals())["registration_timeout"] == 1

    # A re-sent copy is recognised by the seen outcome; a replay is held again.
    assert (await rig.lifecycle(held)).result == "rejected"
    assert await rig.state("ghost") is None
    assert (await rig.lifecycle(rig.again(held))).result == "held"
    assert "ghost" in rig.store.schedule


async def test_the_sweep_keeps_an_asset_with_events_still_held(rig: Rig) -> None:
    await rig.lifecycle(rig.life("ghost", "approved", "e-1"))
    rig.clock.now = T0 + timedelta(minutes=30)
    await rig.lifecycle(rig.life("ghost", "published", "e-2", campaign_id="c1"))
    rig.clock.now = T0 + HOLD
    assert await rig.handler.sweep_held() == 1
    state = await rig.state("ghost")
    assert state is not None and state.undelivered == []
    assert [h.event.event_id for h in state.held] == ["e-2"]
    later = T0 + timedelta(minutes=30) + HOLD
    assert rig.store.schedule == {"ghost": int(later.timestamp() * 1000)}


async def test_an_asset_that_changed_meanwhile_is_not_forgotten(rig: Rig) -> None:
    await rig.lifecycle(rig.life("ghost", "approved", "e-1"))
    rig.clock.now = T0 + HOLD
    newcomer = rig.life("ghost", "published", "e-2", campaign_id="c1")
    forget = rig.store.forget

    async def forget_after_a_new_event(asset_id: str, expected_rev: int) -> bool:
        await rig.lifecycle(newcomer)  # held meanwhile: the rev the sweep read is gone
        return await forget(asset_id, expected_rev)

    rig.store.forget = forget_after_a_new_event  # type: ignore[method-assign]
    assert await rig.handler.sweep_held() == 1
    state = await rig.state("ghost")
    assert state is not None and [h.event.event_id for h in state.held] == ["e-2"]
    assert len(state.undelivered) == 1, "kept: the next sweep sends it again"
    assert "ghost" in await rig.store.due_held(rig.clock.now, 10)

    rig.store.forget = forget  # type: ignore[method-assign]
    assert await rig.handler.sweep_held() == 1  # sent again, with the same id
    state = await rig.state("ghost")
    assert state is not None and state.undelivered == [] and len(state.held) == 1
    assert rig.store.schedule == {"ghost": int((T0 + 2 * HOLD).timestamp() * 1000)}
    letters = rig.dead_letters()
    assert len(letters) == 2 and letters[0]["event_id"] == letters[1]["event_id"]
    assert (await rig.counters.totals())["registration_timeout"] == 1


async def test_the_sweep_drains_batch_after_batch_within_its_budget(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_handlers, "SWEEP_BATCH", 2)
    for i in range(5):
        await rig.lifecycle(rig.life(f"ghost-{i}", "approved", f"e-{i}"))
    rig.clock.now = T0 + 2 * HOLD
    rig.monotonic.step = 1.0  # every asset "takes" a second
    assert await rig.handler.sweep_held(budget_seconds=2.5) == 3
    assert len(await rig.store.due_held(rig.clock.now, 10)) == 2
    assert await rig.handler.sweep_held(budget_seconds=0.5) == 1  # always one at least
    rig.monotonic.step = 0.0
    assert await rig.handler.sweep_held() == 1
    assert await rig.handler.sweep_held() == 0
    assert sorted(letter["asset_id"] for letter in rig.dead_letters()) == [
        f"ghost-{i}" for i in range(5)
    ]


async def test_a_sweep_given_its_time_takes_it_over_the_clock(rig: Rig) -> None:
    await rig.lifecycle(rig.life("ghost", "approved", "e-1"))
    assert await rig.handler.sweep_held(T0 + 2 * HOLD) == 1
    assert await rig.state("ghost") is None
