"""Redis store of the rolling performance metrics.

Writes: one `perf_apply.lua` call per step of one partition, with the step added up per
counter by the worker (`perf_batch.merge`); the script checks and moves the partition's
position in the same atomic step as the sums (see its header). Reads: an asset's pointer
gives the partition whose hashes hold its counters; a window is the sum of the asset's
counters in its buckets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from service.domain.enums import Channel
from service.domain.events import MAX_METRIC_DELTA
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import Resolution, Window, window_buckets
from service.store.codecs import (
    Counters,
    counter_name,
    decode_counters,
    decode_dimensions,
    window_totals,
)
from service.store.keys import Keys
from service.store.perf_batch import (
    GENERATION_SECONDS,
    SEEN_SECONDS,
    MergedBatch,
    PerfRow,
    generations,
    merge,
)
from service.store.scripts import Scripts

__all__ = ["Applied", "ApplyStatus", "EventCounts", "MetricsStore", "PerfRow"]

# Assets per perf_read.lua call: a board refresh's chunk of 50 reads 24 hour buckets, 7
# days and the lifetime hash of each, and one call must not hold Redis for long.
READ_ASSETS_PER_CALL = 10
# perf_read.lua calls in flight at once for one read (each takes a pooled connection).
READS_IN_FLIGHT = 8


class ApplyStatus(Enum):
    """What `perf_apply.lua` did with a batch (its header explains each)."""

    APPLIED = 1
    COVERED = 0  # applied before, as a whole
    STRADDLES = -1  # the position lies inside the batch
    BEHIND = -2  # Redis holds a position below the one this worker expects: it lost writes
    OVERFLOW = -3  # a lifetime counter of `asset_id` would pass 2^53 - 1
    KNOWN_IDS = -4  # some ids were applied before: `apply` merges again without them


@dataclass(frozen=True, slots=True)
class EventCounts:
    """Performance events over every partition: applied, skipped as copies, and late
    (older than the longest window, counted in lifetime only)."""

    applied: int
    duplicates: int
    late: int


@dataclass(frozen=True, slots=True)
class Applied:
    """What one call did, and the partition's position when it did not apply the batch."""

    status: ApplyStatus
    position: int = -1
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    asset_id: str | None = None


def check_rows(rows: Sequence[PerfRow]) -> None:
    """Bad rows are an error before anything is written (`perf_apply.lua` checks what it
    adds again; this names the event)."""
    for i, row in enumerate(rows, 1):
        if len(row) != 11:
            raise ValueError(f"bad input: event {i} must have 11 values, got {len(row)}")
        for f in range(4):
            value = row[f]
            if type(value) is not str or not value:
                raise ValueError(f"bad input: event {i} field {f + 1} must be a non-empty string")
        deltas = row[5:]
        if type(row[4]) is not int or any(type(d) is not int for d in deltas):
            raise ValueError(f"bad input: event {i} time and counts must be integers")
        if min(deltas) < 0 or max(deltas) > MAX_METRIC_DELTA:
            raise ValueError(
                f"bad input: event {i} counts must be in [0, {MAX_METRIC_DELTA}], got {deltas}"
            )


class MetricsStore:
    def __init__(self, redis: Any, keys: Keys, scripts: Scripts, topic: str) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._topic = topic

    async def position(self, partition: int) -> int:
        """Offset of the last event of the partition applied, or -1."""
        value = await self._redis.get(self._keys.perf_position(partition, self._topic))
        return -1 if value is None else int(value)

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
        """Apply a batch (offsets `first`..`last`) if the position is still `expected` or
        beyond; see perf_apply.lua for every outcome."""
        check_rows(rows)
        now_s = int(now)
        known: set[str] = set()
        while True:
            batch = merge(rows, now_s, known)
            reply = await self._call(partition, first, last, expected, batch, now_s)
            status = ApplyStatus(int(reply[0]))
            if status is ApplyStatus.KNOWN_IDS:
                known.update(batch.event_ids[int(i) - 1] for i in reply[1:])
                continue
            if status is ApplyStatus.APPLIED:
                return Applied(status, last, int(reply[1]), int(reply[2]), int(reply[3]))
            if status is ApplyStatus.OVERFLOW:
                return Applied(status, asset_id=str(reply[1]))
            return Applied(status, int(reply[1]))

    async def _call(
        self, partition: int, first: int, last: int, expected: int, batch: MergedBatch, now: int
    ) -> Any:
        keys = self._keys
        starts = generations(now)
        hashes = [keys.perf_lifetime(partition)]
        args: list[Any] = [
            first,
            last,
            expected,
            len(starts),
            starts[-1] + GENERATION_SECONDS + SEEN_SECONDS,
            batch.copies,
            batch.late,
            len(batch.fingerprints),
            *batch.fingerprints,
            0,
            *_flat(batch.lifetime),
        ]
        for (resolution, start), (expires, entries) in batch.buckets.items():
            hashes.append(keys.perf_bucket(partition, resolution, start))
            args += (expires, *_flat(entries))
        return await self._scripts.perf_apply(
            keys=[
                keys.perf_position(partition, self._topic),
                keys.perf_counters(partition),
                keys.perf_dirty(partition),
                *(keys.perf_ids(partition, s) for s in starts),
                *hashes,
            ],
            args=args,
        )

    async def point(self, partition: int, asset_ids: Sequence[str]) -> None:
        """Record which partition holds each asset's metrics (idempotent)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.set(self._keys.perf_partition_of(asset_id), partition)
            await pipe.execute()

    async def forget(self, asset_id: str, partition: int) -> None:
        """Remove a deleted asset's lifetime counters and dimension list, then its pointer
        (each idempotent: a crash between leaves the pointer, and the asset's next refresh
        finishes)."""
        await self._scripts.perf_forget(keys=[self._keys.perf_lifetime(partition)], args=[asset_id])
        await self._redis.delete(self._keys.perf_partition_of(asset_id))

    async def partition_of(self, asset_id: str) -> int | None:
        value = await self._redis.get(self._keys.perf_partition_of(asset_id))
        return None if value is None else int(value)

    async def totals(
        self,
        asset_id: str,
        window: Window,
        now: float,
        *,
        channel: Channel | None = None,
        campaign: str | None = None,
    ) -> Totals | None:
        """The asset's sums over a window (of one channel or one campaign when given), or
        None when no event of it was ever applied."""
        totals = await self.window_totals(asset_id, window, now)
        if totals is None:
            return None
        if campaign is not None:
            return totals.campaign(campaign)
        return totals.total if channel is None else totals.channel(channel)

    async def window_totals(self, asset_id: str, window: Window, now: float) -> WindowTotals | None:
        """The asset's sums over a window per channel and campaign, or None when no event
        of it was ever applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return None
        [totals] = await self.totals_by_window([(asset_id, partition)], [window], now)
        return totals[window]

    async def totals_by_window(
        self, placed: Sequence[tuple[str, int]], windows: Sequence[Window], now: float
    ) -> list[dict[Window, WindowTotals]]:
        """For each (asset, partition holding its metrics), its sums over each window, read
        in two round trips: the asset's dimensions in each hash of the windows, then its
        counters in the hashes where it has some."""
        plan = [
            (index, window, self._window_keys(partition, window, now))
            for index, (_, partition) in enumerate(placed)
            for window in windows
        ]
        read = await self._read([(placed[i][0], keys) for i, _, keys in plan])
        result: list[dict[Window, WindowTotals]] = [{} for _ in placed]
        for (index, window, _), entries in zip(plan, read, strict=True):
            result[index][window] = window_totals(entries)
        return result

    async def daily(self, asset_id: str, now: float) -> list[WindowTotals]:
        """The asset's sums per UTC day over the last 30 days, newest first (index 0: the
        day holding `now`); empty when no event of it was ever applied."""
        resolution, starts = window_buckets(Window.MONTH, now)
        buckets = await self.series(asset_id, resolution, starts)
        return [] if buckets is None else buckets

    async def series(
        self, asset_id: str, resolution: Resolution, starts: Sequence[int]
    ) -> list[WindowTotals] | None:
        """The asset's sums in each bucket of `resolution` starting at `starts` (in that
        order; an expired or empty bucket sums to 0), or None when no event of it was ever
        applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return None
        keys = [self._keys.perf_bucket(partition, resolution.name, s) for s in starts]
        [entries] = await self._read([(asset_id, keys)])
        return [window_totals([entry]) for entry in entries]

    async def _read(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> list[list[Counters]]:
        """For each (asset, hashes of its partition), the asset's counters in each hash.

        Assets asking for the same hashes are read together by perf_read.lua, at most
        READ_ASSETS_PER_CALL a call (so that a call holds Redis briefly), up to
        READS_IN_FLIGHT calls at once: a round trip per few groups instead of a command
        per hash and asset."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, (_, keys) in enumerate(wanted):
            if keys:
                groups.setdefault(tuple(keys), []).append(index)
        calls = [
            (keys, indexes[start : start + READ_ASSETS_PER_CALL])
            for keys, indexes in groups.items()
            for start in range(0, len(indexes), READ_ASSETS_PER_CALL)
        ]
        replies: list[Any] = []
        for start in range(0, len(calls), READS_IN_FLIGHT):
            replies += await asyncio.gather(
                *(
                    self._scripts.perf_read(keys=list(keys), args=[wanted[i][0] for i in part])
                    for keys, part in calls[start : start + READS_IN_FLIGHT]
                )
            )
        result: list[list[Counters]] = [[] for _ in wanted]
        for (keys, part), reply in zip(calls, replies, strict=True):
            values = iter(reply)
            for index in part:
                result[index] = [_counters(next(values), next(values)) for _ in keys]
        return result

    def _window_keys(self, partition: int, window: Window, now: float) -> list[str]:
        """The hashes whose entries make up the window at `now`."""
        if window is Window.LIFETIME:
            return [self._keys.perf_lifetime(partition)]
        resolution, starts = window_buckets(window, now)
        return [self._keys.perf_bucket(partition, resolution.name, s) for s in starts]

    async def counted_assets(self, partition: int, resolution: Resolution, start: int) -> set[str]:
        """The assets with counts in one bucket of the partition (none once it expired).
        Read with HSCAN, a page at a time, so that a large bucket never holds Redis: the
        fields without a `|` are the assets' dimension lists, named by the asset."""
        key = self._keys.perf_bucket(partition, resolution.name, start)
        assets: set[str] = set()
        async for name, _ in self._redis.hscan_iter(key, count=1_000):
            if "|" not in name:
                assets.add(name)
        return assets

    async def partitions_of(self, asset_ids: Sequence[str]) -> list[int | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.get(self._keys.perf_partition_of(asset_id))
            values = await pipe.execute()
        return [None if v is None else int(v) for v in values]

    async def counters(self, partitions: int) -> EventCounts:
        """Applied, duplicate and late events over every partition."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(partitions):
                pipe.hgetall(self._keys.perf_counters(partition))
            replies = await pipe.execute()
        return EventCounts(
            applied=sum(int(r.get("applied", 0)) for r in replies),
            duplicates=sum(int(r.get("duplicates", 0)) for r in replies),
            late=sum(int(r.get("late", 0)) for r in replies),
        )


def _counters(listed: str, counts: str) -> Counters:
    """One asset's counters in one hash, from perf_read.lua's two strings."""
    dimensions = decode_dimensions(listed)
    return decode_counters(dimensions, counts.split(",")) if dimensions else {}


def _flat(entries: Mapping[str, Counters]) -> tuple[str, str, str]:
    """The counters of a hash the batch adds to (counts of 0 left out), the counts, and
    each asset with its dimensions, each joined by spaces, as perf_apply.lua reads them."""
    names: list[str] = []
    counts: list[str] = []
    for asset_id, counters in entries.items():
        for dimension, sums in counters.items():
            for metric, count in enumerate(sums):
                if count:
                    names.append(counter_name(asset_id, dimension, metric))
                    counts.append(str(count))
    assets = " ".join("|".join((asset_id, *counters)) for asset_id, counters in entries.items())
    return " ".join(names), " ".join(counts), assets
