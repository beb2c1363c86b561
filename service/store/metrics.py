"""Redis store of the rolling performance metrics.

Writes: one `perf_apply.lua` call per batch of one partition, which checks and
moves the partition's position in the same atomic step as the increments (see
the script's header). Reads: an asset's pointer gives the partition whose keys
hold its buckets; a window is the sum of its buckets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from service.domain.enums import Channel
from service.domain.events import MAX_METRIC_DELTA
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import (
    LONGEST_WINDOW_SECONDS,
    RESOLUTIONS,
    Resolution,
    Window,
    window_buckets,
)
from service.store.codecs import window_totals
from service.store.keys import Keys
from service.store.scripts import Scripts


class PerfRow(NamedTuple):
    """One performance event as `perf_apply.lua` takes it.

    A tuple, so `json.dumps` writes it as the script's positional array
    `[event_id, asset_id, channel, campaign, epoch seconds, six deltas]`.
    """

    event_id: str
    asset_id: str
    channel: str
    campaign_id: str
    occurred_at: int  # epoch seconds
    impressions: int
    clicks: int
    engagements: int
    conversions: int
    shares: int
    comments: int


SEEN_SECONDS = 24 * 3600
_RESOLUTIONS_JSON = json.dumps([[r.name, r.seconds, r.retention] for r in RESOLUTIONS])


class ApplyStatus(Enum):
    """What `perf_apply.lua` did with a batch (its header explains each)."""

    APPLIED = 1
    COVERED = 0  # applied before, as a whole
    STRADDLES = -1  # the position lies inside the batch
    BEHIND = -2  # Redis holds a position below the one this worker expects: it lost writes
    OVERFLOW = -3  # a lifetime counter of `asset_id` would pass 2^63 - 1


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
        reply = await self._scripts.perf_apply(
            keys=[
                self._keys.perf_position(partition, self._topic),
                self._keys.perf_counters(partition),
            ],
            args=[
                self._keys.perf_prefix(partition),
                first,
                last,
                int(now),
                SEEN_SECONDS,
                int(now) - LONGEST_WINDOW_SECONDS,
                _RESOLUTIONS_JSON,
                json.dumps(rows, separators=(",", ":")),
                expected,
                MAX_METRIC_DELTA,
            ],
        )
        status = ApplyStatus(int(reply[0]))
        if status is ApplyStatus.APPLIED:
            return Applied(status, last, int(reply[1]), int(reply[2]), int(reply[3]))
        if status is ApplyStatus.OVERFLOW:
            return Applied(status, asset_id=str(reply[1]))
        return Applied(status, int(reply[1]))

    async def point(self, partition: int, asset_ids: Sequence[str]) -> None:
        """Record which partition holds each asset's metrics (idempotent)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.set(self._keys.perf_partition_of(asset_id), partition)
            await pipe.execute()

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
        in one round trip."""
        plan: list[tuple[int, Window, int]] = []  # (asset index, window, number of keys)
        async with self._redis.pipeline(transaction=False) as pipe:
            for index, (asset_id, partition) in enumerate(placed):
                for window in windows:
                    keys = self._window_keys(partition, asset_id, window, now)
                    for key in keys:
                        pipe.hgetall(key)
                    plan.append((index, window, len(keys)))
            replies = iter(await pipe.execute())
        result: list[dict[Window, WindowTotals]] = [{} for _ in placed]
        for index, window, count in plan:
            result[index][window] = window_totals([next(replies) for _ in range(count)])
        return result

    async def daily(self, asset_id: str, now: float) -> list[WindowTotals]:
        """The asset's sums per UTC day over the last 30 days, newest first (index 0: the
        day holding `now`); empty when no event of it was ever applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return []
        resolution, starts = window_buckets(Window.MONTH, now)
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in starts:
                pipe.hgetall(self._keys.perf_bucket(partition, asset_id, resolution.name, start))
            replies = await pipe.execute()
        return [window_totals([reply]) for reply in replies]

    async def series(
        self, asset_id: str, resolution: Resolution, starts: Sequence[int]
    ) -> list[WindowTotals] | None:
        """The asset's sums in each bucket of `resolution` starting at `starts` (in that
        order; an expired or empty bucket sums to 0), or None when no event of it was ever
        applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in starts:
                pipe.hgetall(self._keys.perf_bucket(partition, asset_id, resolution.name, start))
            replies = await pipe.execute()
        return [window_totals([reply]) for reply in replies]

    def _window_keys(self, partition: int, asset_id: str, window: Window, now: float) -> list[str]:
        """The keys whose counters make up the window at `now`."""
        if window is Window.LIFETIME:
            return [self._keys.perf_lifetime(partition, asset_id)]
        resolution, starts = window_buckets(window, now)
        return [self._keys.perf_bucket(partition, asset_id, resolution.name, s) for s in starts]

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
