"""Keeps the library leaderboards in step with the metrics and the registry.

The metrics script and the registry mark assets whose counters or library changed.
Every `MEDIA_LEADERBOARD_REFRESH_SECONDS` the holder of the refresh lease recomputes
those assets' totals over 24h, 7d and lifetime, per channel and for all channels, and
writes them into their library's boards, removing them from a library they left.
Windows also move without new events: once an hour, the assets counted in the hour (or
day) that just left the 24h (or 7d) window are recomputed too. Boards therefore trail
the counters by about one refresh interval (longer while more assets change per
interval than one run takes); the counters themselves are always exact.

Its cost grows with the number of distinct assets changed per interval, not with the
event rate or the size of a library (docs/benchmarks.md measured it). Where it runs is
decided by the lease (`RefreshTurns`): a `service refresher` process holds it for as
long as it runs, so that the refresh is off the consumers' event loop; without one, the
worker group's leader takes it for each of its runs (at most `max_assets_per_run`
assets a run).

A refresh claims the assets it recomputes (they leave their dirty set) and releases
them only after their entries are written: a crash repeats a refresh, it never skips
one, and an asset marked again while it is being recomputed is recomputed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from service.domain import leaderboard as lb
from service.domain.windows import HOUR, Window, departed_buckets
from service.handlers.ports import (
    AssetReads,
    BoardWrites,
    MetricsReads,
    PerformanceRules,
    RefreshLease,
)
from service.store.leaderboards import REGISTRY, WINDOWS, DirtySet

log = logging.getLogger(__name__)

# Small chunks: each is a burst of CPU on the event loop the stream shares.
CHUNK = 50
# The board windows that move on their own at hour (24h) and day (7d) boundaries.
SWEPT_WINDOWS = (Window.DAY, Window.WEEK)
SWEEP_CHUNK = 1_000  # assets per SADD of the hourly sweep
ASSETS_IN_FLIGHT = 8  # assets of a chunk written at once


class LeaderboardRefresher:
    def __init__(
        self,
        boards: BoardWrites,
        metrics: MetricsReads,
        registry: AssetReads,
        *,
        partitions: int,
        suggestions: PerformanceRules,
        max_assets_per_run: int = 2_000,
        max_seconds_per_run: float | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._boards = boards
        self._metrics = metrics
        self._registry = registry
        self._partitions = partitions
        self._max_assets = max_assets_per_run
        self._max_seconds = max_seconds_per_run
        self._suggestions = suggestions
        self._clock = clock
        self._timer = timer

    def budgeted(
        self, *, max_assets_per_run: int, max_seconds_per_run: float | None
    ) -> LeaderboardRefresher:
        """The same refresher, with another budget per run."""
        return LeaderboardRefresher(
            self._boards,
            self._metrics,
            self._registry,
            partitions=self._partitions,
            suggestions=self._suggestions,
            max_assets_per_run=max_assets_per_run,
            max_seconds_per_run=max_seconds_per_run,
            clock=self._clock,
            timer=self._timer,
        )

    async def refresh(self, now: float | None = None) -> int:
        """One pass; returns how many assets were recomputed. A pass takes no new chunk
        once it recomputed `max_assets_per_run` assets or ran `max_seconds_per_run`."""
        now = self._clock() if now is None else now
        started = self._timer()
        await self.sweep(now)
        # New changes (the registry's, each metrics partition's) before moved windows, so
        # that a large sweep never holds them back.
        sources: list[DirtySet] = [REGISTRY, *range(self._partitions), WINDOWS]
        done = 0

        def more() -> bool:
            if done >= self._max_assets:
                return False
            return self._max_seconds is None or self._timer() - started < self._max_seconds

        for source in sources:
            while more():
                assets = await self._boards.claim(source, CHUNK)
                if not assets:
                    break
                await self.recompute(assets, now, source)
                await self._boards.done(source, assets)
                done += len(assets)
                await asyncio.sleep(0)  # let the stream's next batch in
        return done

    async def recompute(
        self, asset_ids: Sequence[str], now: float, source: DirtySet = REGISTRY
    ) -> None:
        """Write the assets' board entries from their sums at `now`, and tell the
        performance rules; `source` is the dirty set they were claimed from."""
        states = {s.asset_id: s for s in await self._registry.assets(list(asset_ids))}
        partitions = await self._metrics.partitions_of(asset_ids)
        previous = await self._boards.placed(asset_ids)
        # Sums only for the assets that rank: one unregistered or deleted leaves every
        # board (and its rules need no totals), whatever its metrics.
        ranked = {a for a, s in states.items() if s.asset is not None and not s.asset.is_deleted}
        placed = [
            (a, p)
            for a, p in zip(asset_ids, partitions, strict=True)
            if p is not None and a in ranked
        ]
        totals = await self._metrics.totals_by_window(placed, lb.LEADERBOARD_WINDOWS, now)
        by_asset = {a: t for (a, _), t in zip(placed, totals, strict=True)}

        async def settle(asset_id: str, before: str | None, partition: int | None) -> None:
            state = states.get(asset_id)
            asset = None if state is None else state.asset
            library = None if asset is None or asset.is_deleted else asset.library_id
            windows = by_asset.get(asset_id, {})
            await self._boards.place(asset_id, library, before, windows)
            if asset is not None and asset.is_deleted:
                # Off the boards above; its counters that never expire go too. An event
                # counted after an earlier forget left counters without a pointer: the
                # partition whose dirty set named the asset holds them.
                where = partition if partition is not None else source
                if isinstance(where, int):
                    await self._metrics.forget(asset_id, where)
            if asset is not None:  # performance rules; a deleted asset's suggestions expire
                by_channel = (
                    {} if library is None else {w: t.by_channel for w, t in windows.items()}
                )
                await self._suggestions.on_totals(asset, by_channel)

        # Assets are independent of each other: a few at once, so that their round trips
        # to Redis overlap.
        settling = list(zip(asset_ids, previous, partitions, strict=True))
        for start in range(0, len(settling), ASSETS_IN_FLIGHT):
            await asyncio.gather(
                *(settle(*entry) for entry in settling[start : start + ASSETS_IN_FLIGHT])
            )

    async def sweep(self, now: float) -> None:
        """At each new hour, queue the assets whose 24h or 7d sums moved without an event:
        those with counts in a bucket that left one of these windows since the last sweep.
        The cost follows the assets counted in that hour (or day), not the library's size.
        When those buckets are gone (no sweep for over a month, or never), every ranked
        asset is queued instead."""
        hour = int(now) // HOUR
        swept = await self._boards.swept_hour()
        if swept is not None and swept >= hour:
            return
        departed = None if swept is None else departed_buckets(SWEPT_WINDOWS, swept * HOUR, now)
        assets: set[str] = set()
        if departed is None:
            for window in SWEPT_WINDOWS:
                assets |= await self._boards.ranked_assets(window)
        else:
            for resolution, start in sorted(departed, key=lambda b: (b[0].seconds, b[1])):
                for partition in range(self._partitions):
                    assets |= await self._metrics.counted_assets(partition, resolution, start)
        queued = sorted(assets)
        for chunk in range(0, len(queued), SWEEP_CHUNK):
            await self._boards.mark_moved(queued[chunk : chunk + SWEEP_CHUNK])
        await self._boards.set_swept_hour(hour)
        if assets:
            how = "every ranked asset" if departed is None else "assets of the departed buckets"
            log.info("new hour: %d assets queued for their moved windows (%s)", len(assets), how)


def lease_seconds(interval_seconds: float) -> float:
    """How long the refresh lease lasts: several intervals, at least a minute, so that a
    slow run keeps it and a dead holder frees it within about a minute."""
    return max(60.0, 3 * interval_seconds)


class RefreshTurns:
    """Runs the refresh only while holding the refresh lease, so that one process at a
    time refreshes.

    A `service refresher` process keeps the lease (`keep=True`): each run extends it, and
    `stop` gives it up. A worker's leader takes it for one run and gives it up after
    (`keep=False`), so that a refresher process that starts takes over at the next run,
    and a worker takes over at most `lease_seconds` after that process died.
    """

    def __init__(
        self,
        refresher: LeaderboardRefresher,
        lease: RefreshLease,
        token: str,
        *,
        lease_seconds: float,
        keep: bool,
    ) -> None:
        self._refresher = refresher
        self._lease = lease
        self._token = token
        self._seconds = lease_seconds
        self._keep = keep
        self._elsewhere = False

    async def run(self) -> int | None:
        """One run when the lease is ours: how many assets it recomputed; None when
        another process holds the lease."""
        held = await self._lease.hold(self._token, self._seconds)
        if held == self._elsewhere:  # it changed hands
            log.info(
                "board refresh lease %s",
                "taken over" if held else "held by another process: its runs are skipped here",
            )
        self._elsewhere = not held
        if not held:
            return None
        try:
            return await self._refresher.refresh()
        finally:
            if not self._keep:
                await self._lease.release(self._token)

    async def stop(self) -> None:
        """Give the lease up (a kept one included), so that another takes over at once."""
        await self._lease.release(self._token)
