"""Positions of the input partitions and dead-letter counters, on the fake and on Redis."""

from __future__ import annotations

from service.domain.enums import DeadLetterReason
from service.store.positions import Advance, Advanced
from tests.contract.conftest import Backend


async def test_advance_moves_covers_or_finds_redis_behind(backend: Backend) -> None:
    positions = backend.positions
    assert await positions.get("t", 0) == -1
    assert await positions.advance("t", 0, -1, 4) == Advanced(Advance.MOVED, 4)
    assert await positions.get("t", 0) == 4
    assert await positions.get("t", 1) == -1, "partitions are independent"
    # Another owner went further, or the batch is redelivered: nothing moves.
    assert await positions.advance("t", 0, -1, 3) == Advanced(Advance.COVERED, 4)
    assert await positions.advance("t", 0, 4, 4) == Advanced(Advance.COVERED, 4)
    assert await positions.advance("t", 0, 4, 9) == Advanced(Advance.MOVED, 9)

    await backend.set_input_position("t", 0, 6)  # Redis lost its last writes
    assert await positions.advance("t", 0, 9, 12) == Advanced(Advance.BEHIND, 6)
    assert await positions.get("t", 0) == 6, "nothing moved"
    assert await positions.advance("t", 0, 6, 12) == Advanced(Advance.MOVED, 12)


async def test_a_dead_letter_counts_once_per_id(backend: Backend) -> None:
    counters = backend.counters
    assert await counters.count(DeadLetterReason.INVALID_JSON, "t/0/1")
    assert not await counters.count(DeadLetterReason.INVALID_JSON, "t/0/1")
    assert not await counters.count(DeadLetterReason.INTERNAL_ERROR, "t/0/1")
    assert await counters.count(DeadLetterReason.INVALID_JSON, "t/0/2")
    totals = await counters.totals()  # type: ignore[attr-defined]
    assert totals["invalid_json"] == 2 and totals["internal_error"] == 0
