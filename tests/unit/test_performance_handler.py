"""PerformanceHandler on the in-memory fakes: dead letters, resume, straddles, fallbacks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from service.domain.decoding import RawMessage
from service.handlers.emit import DeadLetters
from service.handlers.performance import MAX_EVENTS_PER_STEP, PerformanceHandler
from service.observability import Instruments
from service.store.metrics import Applied, PerfRow
from tests.fakes import FakeDeadLetterCounters, FakeMetricsStore, FakeProducer

NOW = 1_780_000_000.0
DEAD = "dead"
IMPRESSIONS = "ch:web:impressions"


def message(offset: int, asset: str = "a1", *, ahead: float = -60, **extra: Any) -> RawMessage:
    body = {
        "event_id": f"e{offset}",
        "occurred_at": datetime.fromtimestamp(NOW + ahead, UTC).isoformat(),
        "asset_id": asset,
        "campaign_id": "c1",
        "channel": "web",
        "impressions": 10,
        "clicks": 1,
        **extra,
    }
    return RawMessage("perf", 0, offset, asset.encode(), json.dumps(body).encode())


def messages(first: int, last: int, asset: str = "a1") -> list[RawMessage]:
    return [message(offset, asset) for offset in range(first, last + 1)]


class Rig:
    def __init__(self, store: FakeMetricsStore | None = None) -> None:
        self.store = store or FakeMetricsStore()
        self.producer = FakeProducer()
        self.counters = FakeDeadLetterCounters()
        self.handler = self.new_handler()

    def new_handler(self) -> PerformanceHandler:
        """A handler as a worker builds it (a new owner of the partition, when called again)."""
        dead_letters = DeadLetters(
            self.producer, DEAD, self.counters, Instruments.create().dead_letters
        )
        return PerformanceHandler(
            self.store,
            dead_letters,
            max_message_bytes=4096,
            future_tolerance_seconds=300,
            instruments=Instruments.create(),
            clock=lambda: NOW,
        )

    def impressions(self, asset: str = "a1") -> int:
        return self.store.lifetime_of(asset, IMPRESSIONS)

    def reasons(self) -> list[tuple[int, str]]:
        return [(m["source_offset"], m["reason_code"]) for m in self.producer.on(DEAD)]


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_bad_and_future_events_are_dead_lettered_and_the_rest_applies(rig: Rig) -> None:
    batch = [
        message(0),
        RawMessage("perf", 0, 1, b"a1", b"not json"),
        message(2, ahead=3600),
        message(3, impressions=-1),
        message(4, ahead=200),  # within the tolerance
    ]
    assert await rig.handler(0, batch) is None
    assert rig.reasons() == [(1, "invalid_json"), (2, "future_event"), (3, "schema_violation")]
    future = rig.producer.on(DEAD)[1]
    assert "MEDIA_FUTURE_TOLERANCE_SECONDS" in future["reason"]
    assert future["original_event_id"] == "e2"
    assert await rig.store.position(0) == 4
    assert rig.impressions() == 20 and rig.store.counters[0]["applied"] == 2
    assert rig.store.pointers == {"a1": 0}


async def test_the_first_batch_after_an_assignment_resumes_from_the_position(rig: Rig) -> None:
    assert await rig.handler(0, messages(0, 4)) is None
    second = rig.new_handler()  # Kafka's committed offset ran ahead of Redis
    assert await second(0, messages(10, 11)) == 5
    assert rig.store.calls[-1][1:3] == (0, 4), "nothing applied for the dropped batch"
    assert await second(0, messages(5, 11)) is None
    assert await rig.store.position(0) == 11 and rig.impressions() == 120
    assert await second(0, []) is None


async def test_a_straddling_batch_applies_only_its_new_part(rig: Rig) -> None:
    assert await rig.handler(0, messages(0, 4)) is None
    second = rig.new_handler()
    assert await second(0, messages(3, 8)) is None
    assert rig.store.calls[-2:] == [(0, 3, 8, 6), (0, 5, 8, 4)]
    assert rig.impressions() == 90 and rig.store.counters[0]["duplicates"] == 0
    assert await second(0, messages(3, 8)) is None, "covered: a redelivery changes nothing"
    assert rig.impressions() == 90 and await rig.store.position(0) == 8


async def test_redis_behind_makes_it_seek_back_and_point_again(rig: Rig) -> None:
    assert await rig.handler(0, messages(0, 4)) is None
    # Redis lost its last writes: the position, and the pointer written with them.
    rig.store.positions[0] = 1
    del rig.store.pointers["a1"]
    assert await rig.handler(0, messages(5, 6)) == 2
    assert await rig.store.position(0) == 1
    assert await rig.handler(0, messages(2, 6)) is None
    assert rig.store.pointers == {"a1": 0}, "the pointer cache was cleared"
    assert await rig.store.position(0) == 6
    assert rig.impressions() == 70 and rig.store.counters[0]["duplicates"] == 3
    assert rig.store.resets == [[0]], "what the store kept of partition 0 is dropped"


async def test_moved_partitions_drop_what_the_store_kept_of_them(rig: Rig) -> None:
    assert await rig.handler(0, messages(0, 4)) is None
    rig.handler.on_assignment()
    assert rig.store.resets == [None]


async def test_between_batches_a_position_that_fell_back_is_noticed(rig: Rig) -> None:
    assert await rig.handler.check(0, "perf") is None
    assert await rig.handler(0, messages(0, 4)) is None
    assert await rig.handler.check(0, "perf") is None
    rig.store.positions[0] = 2
    assert await rig.handler.check(0, "perf") == 3
    assert await rig.handler(0, messages(3, 5)) is None
    assert await rig.store.position(0) == 5


class BrokenOn(FakeMetricsStore):
    """A store whose script fails (not transiently) on any batch holding one event id."""

    def __init__(self, event_id: str) -> None:
        super().__init__()
        self.event_id = event_id

    async def apply(
        self,
        partition: int,
        first: int,
        last: int,
        rows: Sequence[PerfRow],
        now: float,
        *,
        expected: int = -1,
    ) -> Applied:
        if any(row[0] == self.event_id for row in rows):
            raise RuntimeError("the script failed on this event")
        return await super().apply(partition, first, last, rows, now, expected=expected)


async def test_a_failing_batch_is_applied_record_by_record_and_only_the_culprit_dead_lettered() -> (
    None
):
    rig = Rig(BrokenOn("e2"))
    assert await rig.handler(0, messages(0, 4)) is None
    assert rig.reasons() == [(2, "internal_error")]
    letter = rig.producer.on(DEAD)[0]
    assert "RuntimeError" in letter["reason"]
    assert await rig.store.position(0) == 4
    assert rig.impressions() == 40 and rig.store.counters[0]["applied"] == 4


async def test_a_transient_failure_leaves_the_batch_to_the_consumer() -> None:
    class Away(FakeMetricsStore):
        down = True

        async def apply(self, *args: Any, **kwargs: Any) -> Applied:
            if self.down:
                raise ConnectionError("Redis went away")
            return await super().apply(*args, **kwargs)

    store = Away()
    rig = Rig(store)
    with pytest.raises(ConnectionError):
        await rig.handler(0, messages(0, 2))
    assert rig.reasons() == [] and await store.position(0) == -1
    store.down = False
    assert await rig.handler(0, messages(0, 2)) is None
    assert rig.impressions() == 30


async def test_the_records_of_an_asset_that_would_overflow_are_dead_lettered(rig: Rig) -> None:
    assert await rig.handler(0, [message(0, "a1"), message(1, "a2")]) is None
    near = 2**53 - 1 - 5
    rig.store.lifetime[(0, "a1")]["ch:web"] = [near, 0, 0, 0, 0, 0]
    assert await rig.handler(0, [message(2, "a2"), message(3, "a1"), message(4, "a2")]) is None
    assert rig.reasons() == [(3, "counter_overflow")]
    assert rig.impressions("a1") == near and rig.impressions("a2") == 30
    assert await rig.store.position(0) == 4


async def test_a_large_batch_is_applied_in_bounded_steps(rig: Rig) -> None:
    """One script call holds Redis: a batch of two steps and a half takes three steps of
    at most MAX_EVENTS_PER_STEP records, each moving the position."""
    step = MAX_EVENTS_PER_STEP
    last = 2 * step + step // 4 - 1
    assert await rig.handler(0, messages(0, last)) is None
    assert [(first, end, n) for _, first, end, n in rig.store.calls] == [
        (0, step - 1, step),
        (step, 2 * step - 1, step),
        (2 * step, last, step // 4),
    ]
    assert rig.impressions() == 10 * (last + 1) and await rig.store.position(0) == last
