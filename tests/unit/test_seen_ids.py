"""The table of ids a partition applied (service/store/seen_ids.py), without Redis: the
step's read is built by hand here; tests/integration/test_seen_ids.py runs the scripts."""

from __future__ import annotations

import random

import pytest

from service.store.seen_ids import (
    ENTRY_CHARS,
    FINGERPRINT_CHARS,
    GENERATION_SECONDS,
    SeenRead,
    address,
    buckets_to_read,
    fingerprint,
    generation,
    grown_size,
    record,
    split_source,
    stamp,
)

NOW = 1_780_003_000


def test_a_fingerprint_is_seven_bit_text_and_its_number_comes_from_its_first_characters() -> None:
    for n in range(2_000):
        fp, number = fingerprint(f"event-{n}")
        assert len(fp) == FINGERPRINT_CHARS and fp.isascii()
        expected = sum(ord(ch) << (7 * i) for i, ch in enumerate(fp[:4]))
        assert number == expected < 2**28
    assert len({fingerprint(f"event-{n}")[0] for n in range(20_000)}) == 20_000


def test_growing_by_one_bucket_moves_ids_only_from_the_bucket_it_is_split_off() -> None:
    numbers = random.Random(7).sample(range(2**28), 3_000)
    for size in range(1, 600):
        for number in numbers:
            before, after = address(number, size), address(number, size + 1)
            assert 0 <= after <= size
            assert after == before or (after == size and before == split_source(size))


def entry(event_id: str, written: int) -> str:
    return fingerprint(event_id)[0] + stamp(written)


def read_of(table: dict[int, list[str]], buckets: int, grow_to: int | None = None) -> SeenRead:
    """The read of a whole table of `buckets` buckets (a step reads only what it needs)."""
    values = {bucket: "".join(entries) for bucket, entries in table.items()}
    return SeenRead(buckets, sum(map(len, table.values())), grow_to or buckets, values)


def step(read: SeenRead, event_ids: list[str], now: int = NOW) -> tuple[list[int], SeenRead]:
    """One step: which ids were known, and the table it leaves (read whole again)."""
    prints = [fingerprint(e) for e in event_ids]
    update = record(read, [p for p, _ in prints], [n for _, n in prints], now)
    values = {**read.values, **update.written}
    return update.known, SeenRead(update.buckets, update.entries, update.buckets, values)


def test_ids_are_known_once_recorded_and_only_then() -> None:
    table = read_of({}, 1)
    known, table = step(table, ["e1", "e2"])
    assert known == []
    known, table = step(table, ["e3", "e2", "e4", "e1"])
    assert known == [1, 3]
    assert table.entries == 4


def test_an_id_is_remembered_for_five_generations_of_processing_time() -> None:
    current = generation(NOW)
    for age, remembered in [(0, True), (4, True), (5, False), (40, False)]:
        table = read_of({0: [entry("old", current - age)]}, 1)
        known, after = step(table, ["old"])
        assert (known == [0]) is remembered, age
        # A stale entry at the front of the bucket is dropped when the step rewrites it.
        assert after.entries == 1
        assert after.values[0].count(fingerprint("old")[0]) == 1


def test_a_generation_stamp_comes_round_only_after_eleven_years() -> None:
    current = generation(NOW)
    wrapped = current - 2**14  # the same two characters
    assert stamp(wrapped) == stamp(current)
    assert 2**14 * GENERATION_SECONDS > 11 * 365 * 86_400


def test_a_match_across_two_entries_is_not_an_id() -> None:
    live = stamp(generation(NOW))
    # An id whose fingerprint's characters 7 and 8 read as the current stamp: it can
    # straddle two live entries, its first six characters ending the first one (and the
    # two characters after it read as a live stamp too).
    event_id = next(e for n in range(10**6) if fingerprint(e := f"x{n}")[0][6:8] == live)
    fp = fingerprint(event_id)[0]
    first = "z" * 5 + fp[:6] + live
    second = fp[8:] + live + "y" * 6 + live
    value = first + second
    assert value.find(fp) == 5 and len(value) == 2 * ENTRY_CHARS
    known, after = step(SeenRead(1, 2, 1, {0: value}), [event_id])
    assert known == [] and after.entries == 3, "recorded as new; both entries kept"


def test_growth_splits_buckets_and_every_entry_stays_where_its_number_says() -> None:
    rng = random.Random(3)
    ids = [f"event-{n}" for n in range(5_000)]
    table = read_of({}, 1)
    applied: set[str] = set()
    while ids:
        batch = [ids.pop() for _ in range(min(len(ids), rng.randrange(1, 400)))]
        batch += rng.sample(sorted(applied), min(len(applied), 20))  # copies
        grow_to = grown_size(table.buckets, table.entries, len(batch))
        known, table = step(SeenRead(table.buckets, table.entries, grow_to, table.values), batch)
        assert {batch[i] for i in known} == applied & set(batch)
        applied.update(batch)
    assert table.entries == len(applied) == 5_000
    assert 5_000 / 16 <= table.buckets <= 2 * 5_000 / 16
    for bucket, value in table.values.items():
        assert len(value) % ENTRY_CHARS == 0
        for at in range(0, len(value), ENTRY_CHARS):
            number = sum(ord(ch) << (7 * i) for i, ch in enumerate(value[at : at + 4]))
            assert address(number, table.buckets) == bucket


def test_the_table_grows_to_hold_sixteen_a_bucket_at_most_doubling() -> None:
    assert grown_size(1, 0, 16) == 1
    assert grown_size(1, 0, 17) == 2
    assert grown_size(4, 60, 40) == 7  # 100 entries: 7 buckets of 16
    assert grown_size(4, 60, 1_000) == 8, "at most twice as many in one step"
    assert grown_size(8, 60, 0) == 8, "never shrinks"
    assert grown_size(1 << 28, 1 << 40, 5) == 1 << 28, "at most 2^28 buckets"


def test_a_step_reads_the_buckets_it_splits_then_each_ids_bucket_before_the_splits() -> None:
    # Growing from 5 to 7 buckets splits 5 off 1 and 6 off 2. In a table of 5 buckets,
    # number 13 (0b1101) is in bucket 5 of 8, which does not exist yet: bucket 1.
    assert buckets_to_read(5, 7, [13, 2, 12]) == [1, 2, 1, 2, 4]
    assert buckets_to_read(1, 1, [7, 8]) == [0, 0]
    assert buckets_to_read(3, 3, []) == []


def test_a_reply_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="3 buckets for 1 splits and 1 ids"):
        SeenRead.of_reply(1, 0, 2, ["", "", ""], [5])


def test_an_entry_count_that_went_wrong_never_goes_below_zero() -> None:
    stale = entry("old", generation(NOW) - 9)
    known, after = step(SeenRead(1, 0, 1, {0: stale * 3}), ["new"])
    assert known == [] and after.entries == 0
    assert after.values[0] == entry("new", generation(NOW))
