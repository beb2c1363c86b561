"""SequentialHandler on the in-memory fakes: the batch protocol of the registry topics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle
from service.errors import DeadLetterUnavailable
from service.handlers.emit import DeadLetters
from service.handlers.sequential import SequentialHandler
from service.observability import Instruments
from tests.fakes import FakeDeadLetterCounters, FakePositions, FakeProducer

TOPIC = "lifecycle"
DEAD = "dead"


def record(offset: int, value: bytes | None = None, partition: int = 0) -> RawMessage:
    if value is None:
        body = {
            "event_id": f"e{offset}",
            "occurred_at": "2026-03-01T13:00:00+00:00",
            "asset_id": "a1",
            "action": "approved",
        }
        value = json.dumps(body).encode()
    return RawMessage(TOPIC, partition, offset, b"a1", value)


def records(first: int, last: int) -> list[RawMessage]:
    return [record(offset) for offset in range(first, last + 1)]


class Rig:
    """A handler whose message handler decodes and remembers, failing as told."""

    def __init__(self) -> None:
        self.positions = FakePositions()
        self.producer = FakeProducer()
        self.counters = FakeDeadLetterCounters()
        self.handled: list[int] = []
        self.failures: dict[int, Exception] = {}  # offset -> raised once, before handling
        dead_letters = DeadLetters(
            self.producer, DEAD, self.counters, Instruments.create().dead_letters
        )
        self.handler = SequentialHandler(TOPIC, self.handle, self.positions, dead_letters)

    async def handle(self, message: RawMessage) -> object:
        failure = self.failures.pop(message.offset, None)
        if failure is not None:
            raise failure
        event = decode(AssetLifecycle, message, max_bytes=4096)
        self.handled.append(message.offset)
        return event

    async def position(self, partition: int = 0) -> int:
        return await self.positions.get(TOPIC, partition)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.producer.on(DEAD)


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_a_batch_is_handled_in_order_and_moves_the_position(rig: Rig) -> None:
    assert await rig.handler(0, []) is None
    assert await rig.handler(0, records(0, 2)) is None
    assert await rig.handler(0, records(3, 4)) is None
    assert rig.handled == [0, 1, 2, 3, 4]
    assert await rig.position() == 4
    assert await rig.position(1) == -1


async def test_a_message_that_does_not_decode_is_dead_lettered_and_the_partition_moves_on(
    rig: Rig,
) -> None:
    batch = [record(0), record(1, b"not json"), record(2, b'{"event_id": "x"}'), record(3)]
    assert await rig.handler(0, batch) is None
    assert rig.handled == [0, 3]
    assert await rig.position() == 3
    letters = rig.dead_letters()
    assert [(letter["source_offset"], letter["reason_code"]) for letter in letters] == [
        (1, "invalid_json"),
        (2, "schema_violation"),
    ]
    assert (await rig.counters.totals())["invalid_json"] == 1


async def test_a_failure_of_the_service_is_dead_lettered_as_internal(rig: Rig) -> None:
    rig.failures[1] = KeyError("a bug")
    assert await rig.handler(0, records(0, 2)) is None
    assert rig.handled == [0, 2]
    [letter] = rig.dead_letters()
    assert letter["reason_code"] == "internal_error" and "KeyError" in letter["reason"]
    assert await rig.position() == 2


async def test_a_transient_failure_keeps_progress_and_the_retry_skips_finished_records(
    rig: Rig,
) -> None:
    rig.failures[2] = ConnectionError("Redis went away")
    with pytest.raises(ConnectionError):
        await rig.handler(0, records(0, 3))
    assert rig.handled == [0, 1]
    assert await rig.position() == -1, "the position moves only after the whole batch"

    assert await rig.handler(0, records(0, 3)) is None  # the consumer hands it again
    assert rig.handled == [0, 1, 2, 3]
    assert await rig.position() == 3
    assert rig.dead_letters() == []


async def test_a_dead_letter_kafka_refuses_stops_the_batch_until_taken(rig: Rig) -> None:
    rig.producer.failure = ConnectionError("broker down")
    with pytest.raises(DeadLetterUnavailable):
        await rig.handler(0, [record(0), record(1, b"not json"), record(2)])
    assert rig.handled == [0] and await rig.position() == -1
    rig.producer.failure = None
    assert await rig.handler(0, [record(0), record(1, b"not json"), record(2)]) is None
    assert rig.handled == [0, 2] and len(rig.dead_letters()) == 1


async def test_the_first_batch_after_an_assignment_seeks_back_to_the_position(
    rig: Rig,
) -> None:
    rig.positions.positions[(TOPIC, 0)] = 4  # Kafka's committed offset ran ahead of Redis
    assert await rig.handler(0, records(7, 9)) == 5
    assert rig.handled == []
    assert await rig.handler(0, records(5, 9)) is None
    assert rig.handled == [5, 6, 7, 8, 9]

    rig.handler.on_assignment()  # the partition came back: its position is read again
    rig.positions.positions[(TOPIC, 0)] = 12  # another owner went on meanwhile
    assert await rig.handler(0, records(20, 21)) == 13
    assert await rig.handler(0, records(13, 13)) is None
    assert rig.handled[-1] == 13 and await rig.position() == 13


async def test_redis_behind_at_the_advance_makes_the_consumer_seek_back(rig: Rig) -> None:
    assert await rig.handler(0, records(0, 4)) is None
    rig.positions.positions[(TOPIC, 0)] = 1  # Redis lost its last writes
    assert await rig.handler(0, records(5, 6)) == 2
    assert await rig.position() == 1, "nothing moved"
    # The lost messages are handled again, with the same effect.
    assert await rig.handler(0, records(2, 6)) is None
    assert rig.handled == [0, 1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6]
    assert await rig.position() == 6


async def test_between_batches_a_position_that_fell_back_is_noticed(rig: Rig) -> None:
    assert await rig.handler.check(0, TOPIC) is None  # nothing handled yet
    assert await rig.handler(0, records(0, 4)) is None
    assert await rig.handler.check(0, TOPIC) is None
    rig.positions.positions[(TOPIC, 0)] = 2
    assert await rig.handler.check(0, TOPIC) == 3
    assert await rig.handler(0, records(3, 5)) is None
    assert rig.handled[-3:] == [3, 4, 5] and await rig.position() == 5


async def test_a_position_another_owner_moved_further_is_kept(rig: Rig) -> None:
    assert await rig.handler(0, records(0, 1)) is None
    rig.positions.positions[(TOPIC, 0)] = 10  # a newer owner of the partition went on
    assert await rig.handler(0, records(2, 3)) is None
    assert await rig.position() == 10
    assert await rig.handler.check(0, TOPIC) is None, "10 is what this worker now expects"
