"""bench/handler.py: the fetches it hands over, and the split of a step's cost."""

from __future__ import annotations

from bench.handler import Feed, Measure, step_cost
from bench.plan import Plan


def test_fetches_take_the_partitions_in_turn_with_offsets_that_go_on() -> None:
    feed = Feed(Plan(assets=50, partitions=4), "t")
    first = feed.fetches(400, 30)
    assert sum(len(records) for _, records in first) == 400
    seen: dict[int, int] = {}
    for partition, records in first:
        assert 0 < len(records) <= 30
        assert all(r.partition == partition for r in records)
        offsets = [r.offset for r in records]
        assert offsets == list(range(seen.get(partition, 0), seen.get(partition, 0) + len(records)))
        seen[partition] = offsets[-1] + 1
    # A round gives every partition one fetch before any gets a second.
    assert [p for p, _ in first[:4]] == sorted({p for p, _ in first})
    later = feed.fetches(100, 30)
    for partition, records in later:
        assert records[0].offset >= seen[partition], "offsets go on from the last fetch"
        seen[partition] = records[-1].offset + 1


def measure(records: int, cpu_us: float) -> Measure:
    return Measure(records, 1000, cpu_us, cpu_us, 1.0, 0.0, 0.0, 0.0)


def test_a_step_splits_into_a_fixed_cost_and_a_cost_per_event() -> None:
    # 500 µs a step and 40 µs an event: 20 records cost 65 µs each, 250 cost 42.
    fixed, per_event = step_cost([measure(250, 42.0), measure(20, 65.0)]) or (0, 0)
    assert round(fixed) == 500 and round(per_event) == 40
    assert step_cost([measure(250, 42.0)]) is None
