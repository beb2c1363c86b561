"""The metrics write side's contract (`MetricsStore.apply`), on the fake and on Redis."""

from __future__ import annotations

import time

import pytest

from service.domain.windows import DAY, ONE_DAY, ONE_HOUR, Window
from service.store.metrics import Applied, ApplyStatus, PerfRow
from tests.contract.conftest import Backend

NOW = float(int(time.time()))


def row(n: int, asset: str = "a1", t: float = NOW - 60, impressions: int = 100) -> PerfRow:
    return (f"e{n}", asset, "web", "c1", int(t), impressions, 3, 1, 0, 0, 0)


async def test_a_batch_applies_once_and_then_is_covered(backend: Backend) -> None:
    metrics = backend.metrics
    assert await metrics.position(0) == -1
    rows = [row(n) for n in range(5)]
    assert await metrics.apply(0, 100, 104, rows, NOW) == Applied(ApplyStatus.APPLIED, 104, 5)
    assert await metrics.position(0) == 104
    again = await metrics.apply(0, 100, 104, rows, NOW, expected=104)  # redelivered
    assert again == Applied(ApplyStatus.COVERED, 104)
    assert await metrics.apply(0, 90, 99, [row(9)], NOW) == Applied(ApplyStatus.COVERED, 104)
    assert await metrics.position(1) == -1, "partitions are independent"


async def test_a_batch_straddling_the_position_is_refused_whole(backend: Backend) -> None:
    metrics = backend.metrics
    await metrics.apply(0, 0, 4, [row(n) for n in range(5)], NOW)
    straddling = await metrics.apply(0, 3, 7, [row(n) for n in range(3, 8)], NOW, expected=4)
    assert straddling == Applied(ApplyStatus.STRADDLES, 4)
    assert await metrics.position(0) == 4
    rest = await metrics.apply(0, 5, 7, [row(n) for n in range(5, 8)], NOW, expected=4)
    assert rest == Applied(ApplyStatus.APPLIED, 7, 3)


async def test_a_position_below_the_expected_one_is_behind(backend: Backend) -> None:
    metrics = backend.metrics
    await metrics.apply(0, 0, 9, [row(1)], NOW)
    await backend.set_perf_position(0, 4)  # Redis lost its last writes
    behind = await metrics.apply(0, 10, 12, [row(2)], NOW, expected=9)
    assert behind == Applied(ApplyStatus.BEHIND, 4)
    assert await metrics.position(0) == 4, "nothing was written"
    # Processing again from position + 1: the event of the lost range counts once.
    again = await metrics.apply(0, 5, 12, [row(1), row(2)], NOW, expected=4)
    assert again == Applied(ApplyStatus.APPLIED, 12, applied=1, duplicates=1)


async def test_event_ids_count_once_across_and_within_batches(backend: Backend) -> None:
    metrics = backend.metrics
    assert (await metrics.apply(0, 0, 2, [row(1)] * 3, NOW)) == Applied(
        ApplyStatus.APPLIED, 2, applied=1, duplicates=2
    )
    copy = await metrics.apply(0, 3, 4, [row(1), row(2)], NOW)
    assert (copy.applied, copy.duplicates) == (1, 1)
    # The same id in another partition is another partition's event.
    assert (await metrics.apply(1, 0, 0, [row(1)], NOW)).applied == 1


async def test_an_event_older_than_thirty_days_is_late(backend: Backend) -> None:
    result = await backend.metrics.apply(0, 0, 1, [row(1, t=NOW - 31 * DAY), row(2)], NOW)
    assert result == Applied(ApplyStatus.APPLIED, 1, applied=2, late=1)


async def test_a_batch_that_would_overflow_a_lifetime_counter_is_refused(
    backend: Backend,
) -> None:
    metrics = backend.metrics
    await metrics.apply(0, 0, 0, [row(1, "a1"), row(2, "a2")], NOW)
    near = 2**53 - 1 - 10**9
    await backend.set_lifetime(0, "a1", "ch:web:impressions", near)
    fine, big = row(3, "a2"), row(4, "a1", impressions=10**10)
    refused = await metrics.apply(0, 1, 2, [fine, big], NOW, expected=0)
    assert refused == Applied(ApplyStatus.OVERFLOW, asset_id="a1")
    assert await metrics.position(0) == 0, "nothing was written"
    assert (await metrics.apply(0, 1, 2, [fine], NOW, expected=0)).applied == 1


@pytest.mark.parametrize(
    "bad",
    [
        ("e1", "a1", "web", "c1", int(NOW), -1, 0, 0, 0, 0, 0),
        ("e1", "a1", "web", "c1", int(NOW), 10**11, 0, 0, 0, 0, 0),
        ("e1", "", "web", "c1", int(NOW), 1, 0, 0, 0, 0, 0),
        ("e1", "a1", "web", "c1", int(NOW), 1, 0, 0, 0, 0),
    ],
)
async def test_bad_input_is_refused_before_any_write(backend: Backend, bad: PerfRow) -> None:
    with pytest.raises(Exception, match="bad input"):
        await backend.metrics.apply(0, 0, 1, [row(1), bad], NOW)
    assert await backend.metrics.position(0) == -1
    assert (await backend.metrics.apply(0, 0, 0, [row(1)], NOW)).applied == 1


@pytest.mark.parametrize(
    ("first", "last", "expected"), [(-1, 0, -1), (2, 1, -1), (0, 0, -2), (0, True, -1)]
)
async def test_bad_offsets_are_refused_before_any_write(
    backend: Backend, first: int, last: int, expected: int
) -> None:
    with pytest.raises(Exception, match="bad input"):
        await backend.metrics.apply(0, first, last, [row(1)], NOW, expected=expected)
    assert await backend.metrics.position(0) == -1


async def test_series_reads_each_bucket_zero_filled(backend: Backend) -> None:
    metrics = backend.metrics
    assert await metrics.series("a1", ONE_HOUR, [0, 3600]) is None  # never applied
    hour = int(NOW) - int(NOW) % 3600
    rows = [row(1, t=hour + 1), row(2, t=hour - 3600 + 5, impressions=7), row(3, t=hour + 2)]
    await metrics.point(0, ["a1"])
    await metrics.apply(0, 0, 2, rows, NOW)
    starts = [hour - 7200, hour - 3600, hour]
    series = await metrics.series("a1", ONE_HOUR, starts)
    assert series is not None
    assert [s.total.impressions for s in series] == [0, 7, 200]
    assert [s.campaign("c1").clicks for s in series] == [0, 3, 6]
    days = await metrics.series("a1", ONE_DAY, [int(NOW) - int(NOW) % DAY])
    assert days is not None and days[0].total.impressions >= 200  # the hour before: maybe


async def test_a_forgotten_asset_loses_its_lifetime_and_pointer_only(backend: Backend) -> None:
    metrics = backend.metrics
    await metrics.point(0, ["a1", "a2"])
    await metrics.apply(0, 0, 1, [row(1, "a1"), row(2, "a2")], NOW)
    await metrics.forget("a1", 0)
    await metrics.forget("a1", 0)  # idempotent
    assert await metrics.partitions_of(["a1", "a2"]) == [None, 0]
    assert await metrics.totals("a1", Window.LIFETIME, NOW) is None
    kept = await metrics.totals("a2", Window.LIFETIME, NOW)
    assert kept is not None and kept.impressions == 100


@pytest.mark.cluster  # HSCAN through the cluster client too
async def test_counted_assets_are_those_with_counts_in_a_bucket(backend: Backend) -> None:
    metrics = backend.metrics
    hour = int(NOW) - int(NOW) % 3600
    # More assets than one HSCAN page holds, so that the pages are joined.
    many = [f"a{n}" for n in range(1_500)]
    rows = [row(n, asset, t=hour + 5) for n, asset in enumerate(many)]
    rows += [row(2_000, "old", t=hour - 3600 + 5), row(2_001, "other", t=hour + 5)]
    await metrics.point(0, [*many, "old"])
    await metrics.point(1, ["other"])
    await metrics.apply(0, 0, len(rows) - 2, rows[:-1], NOW)
    await metrics.apply(1, 0, 0, rows[-1:], NOW)
    assert await metrics.counted_assets(0, ONE_HOUR, hour) == set(many)
    assert await metrics.counted_assets(0, ONE_HOUR, hour - 3600) == {"old"}
    assert await metrics.counted_assets(1, ONE_HOUR, hour) == {"other"}
    assert await metrics.counted_assets(0, ONE_HOUR, hour - 7200) == set()
