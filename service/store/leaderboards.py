"""Redis store of the leaderboards: per library, window and channel, each asset's totals.

`{l:<library>}:lb:<window>:<all or ch:channel>` hashes map asset_id -> its totals
(`store/codecs.py` writes and reads them); the refresh writes them, the API ranks them.
Assets to refresh are kept in dirty sets: one per metrics partition (filled by the
metrics script), one for registry changes and one for the assets whose windows moved.
A refresh claims assets by moving them into the dirty set's claimed set
(board_claim.lua) and removes them from there once their entries are written: a mark
set meanwhile stays in the dirty set, and a refresh cut off midway is finished by the
next one.

Reads that add up or rank a whole board (`pool`, `top`, `rollup`) scan it with HSCAN and
are kept per process for `kept_seconds`, the refresh interval (`store/kept.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from service.domain import leaderboard as lb
from service.domain.enums import Channel
from service.domain.labels import Pool
from service.domain.metrics import ZERO, Totals, WindowTotals, sum_totals
from service.domain.windows import Window
from service.store.codecs import decode_board_entry, encode_board_entry
from service.store.kept import Kept
from service.store.keys import Keys
from service.store.scripts import Scripts

Placement = Mapping[Window, WindowTotals]

# The dirty sets a refresh works through: the registry's changes, then each metrics
# partition's (by its number), then the assets whose windows moved (the hourly sweep's).
REGISTRY: Final = "registry"
WINDOWS: Final = "windows"
DirtySet = int | Literal["registry", "windows"]


# The longest top list the API serves: the length of a kept top list.
TOP_KEPT = 100


@dataclass(frozen=True, slots=True)
class Rollup:
    """A board added up: its entries' sums, and how many entries it has."""

    totals: Totals
    assets: int


class LeaderboardStore:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        scripts: Scripts,
        *,
        kept_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._pools: Kept[tuple[str, Window, Channel | None, int], Pool] = Kept(
            kept_seconds, clock=clock
        )
        self._tops: Kept[tuple[str, Window, Channel | None, lb.RankMetric, int], list[lb.Entry]]
        self._tops = Kept(kept_seconds, clock=clock)
        self._rollups: Kept[tuple[str, Window, Channel | None], Rollup] = Kept(
            kept_seconds, clock=clock
        )

    def _board(self, library_id: str, window: Window, channel: Channel | None) -> str:
        name = None if channel is None else channel.value
        return self._keys.board(library_id, window.value, name)

    def _dirty(self, which: DirtySet) -> str:
        if which == REGISTRY:
            return self._keys.boards_dirty
        if which == WINDOWS:
            return self._keys.boards_moved
        return self._keys.perf_dirty(which)

    def _claimed(self, which: DirtySet) -> str:
        if which == REGISTRY:
            return self._keys.boards_claimed
        if which == WINDOWS:
            return self._keys.boards_moved_claimed
        return self._keys.perf_claimed(which)

    async def swept_hour(self) -> int | None:
        """The last hour (epoch hours) at which every ranked asset was queued."""
        value = await self._redis.get(self._keys.boards_swept_hour)
        return None if value is None else int(value)

    async def set_swept_hour(self, hour: int) -> None:
        await self._redis.set(self._keys.boards_swept_hour, hour)

    async def mark_dirty(self, asset_ids: Sequence[str]) -> None:
        """Queue assets the registry changed."""
        if asset_ids:
            await self._redis.sadd(self._keys.boards_dirty, *asset_ids)

    async def mark_moved(self, asset_ids: Sequence[str]) -> None:
        """Queue assets whose windows moved on without an event."""
        if asset_ids:
            await self._redis.sadd(self._keys.boards_moved, *asset_ids)

    async def claim(self, which: DirtySet, count: int) -> list[str]:
        """Up to `count` assets of one dirty set to refresh; an unfinished claim first."""
        keys = [self._dirty(which), self._claimed(which)]
        members: list[str] = await self._scripts.board_claim(keys=keys, args=[count])
        return members

    async def done(self, which: DirtySet, asset_ids: Sequence[str]) -> None:
        """Release refreshed assets from their claim."""
        if asset_ids:
            await self._redis.srem(self._claimed(which), *asset_ids)

    async def placed(self, asset_ids: Sequence[str]) -> list[str | None]:
        """The library each asset's entries are in now (None: in none)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.get(self._keys.board_library(asset_id))
            result: list[str | None] = await pipe.execute()
        return result

    async def place(
        self, asset_id: str, library_id: str | None, previous: str | None, boards: Placement
    ) -> None:
        """Write the asset's entries into its library and its campaigns' boards, and
        remove them everywhere else (from every board when `library_id` is None).

        The boards of one library (or one campaign) share a hash tag and are written by
        one board_write.lua call. The asset's campaign set names every board holding it at
        any moment: grown before the boards are written, shrunk after (a crash between
        leaves a name that the asset's next refresh cleans)."""
        keys = self._keys
        campaigns = {} if library_id is None else lb.campaign_entries(boards)
        before: set[str] = await self._redis.smembers(keys.board_campaigns(asset_id))
        departed = before - set(campaigns)
        if campaigns:
            await self._redis.sadd(keys.board_campaigns(asset_id), *campaigns)
        writes = []
        for campaign in sorted(before | set(campaigns)):
            in_campaign = campaigns.get(campaign, {})
            writes.append(
                self._write(
                    asset_id,
                    {
                        keys.campaign_board(campaign, window.value): in_campaign.get(window)
                        for window in lb.LEADERBOARD_WINDOWS
                    },
                )
            )
        if previous is not None and previous != library_id:
            writes.append(self._write(asset_id, dict.fromkeys(self._boards_of(previous))))
        if library_id is not None:
            library: dict[str, Totals | None] = {}
            for window in lb.LEADERBOARD_WINDOWS:
                window_totals = boards.get(window, WindowTotals())
                for channel in lb.BOARD_CHANNELS:
                    totals = lb.board_totals(window_totals, channel)
                    library[self._board(library_id, window, channel)] = (
                        None if totals == ZERO else totals
                    )
            writes.append(self._write(asset_id, library))
        await asyncio.gather(*writes, self._where(asset_id, library_id))
        if departed:
            await self._redis.srem(keys.board_campaigns(asset_id), *departed)

    def _boards_of(self, library_id: str) -> list[str]:
        return [
            self._board(library_id, window, channel)
            for window in lb.LEADERBOARD_WINDOWS
            for channel in lb.BOARD_CHANNELS
        ]

    async def _write(self, asset_id: str, entries: Mapping[str, Totals | None]) -> None:
        """The asset's entry in each board (None: none), in one step."""
        await self._scripts.board_write(
            keys=list(entries),
            args=[
                asset_id,
                *("" if t is None else encode_board_entry(t) for t in entries.values()),
            ],
        )

    async def _where(self, asset_id: str, library_id: str | None) -> None:
        """Record the library whose boards hold the asset (None: none)."""
        keys = self._keys
        if library_id is None:
            await self._redis.delete(keys.board_library(asset_id))
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.board_library(asset_id), library_id)
            pipe.sadd(keys.board_libraries, library_id)
            await pipe.execute()

    async def entries(
        self, library_id: str, window: Window, channel: Channel | None
    ) -> list[lb.Entry]:
        """The board of one channel (None: all channels), read with HSCAN a page at a
        time, so that a large board never holds Redis (HSCAN may give a field twice while
        the hash grows: each asset is taken once)."""
        board = self._board(library_id, window, channel)
        raw = {field: value async for field, value in self._redis.hscan_iter(board, count=1_000)}
        return [lb.Entry(asset_id, decode_board_entry(value)) for asset_id, value in raw.items()]

    async def entry(
        self, library_id: str, window: Window, channel: Channel | None, asset_id: str
    ) -> Totals | None:
        """One asset's entry on a board of its library (None: it has none there)."""
        value = await self._redis.hget(self._board(library_id, window, channel), asset_id)
        return None if value is None else decode_board_entry(value)

    async def pool(
        self, library_id: str, window: Window, channel: Channel | None, min_impressions: int
    ) -> Pool:
        """The entries of a board that count for labels, added up.

        This and `top` and `rollup` read the whole board (`entries`), so a process keeps
        each result for `kept_seconds` (the refresh interval: boards change no faster),
        and callers asking for the same one meanwhile share one read (`store/kept.py`)."""
        key = (library_id, window, channel, min_impressions)

        async def sum_board() -> Pool:
            entries = await self.entries(library_id, window, channel)
            return Pool.of((e.totals for e in entries), min_impressions)

        return await self._pools.get(key, sum_board)

    async def top(
        self,
        library_id: str,
        window: Window,
        channel: Channel | None,
        metric: lb.RankMetric,
        min_impressions: int,
    ) -> list[lb.Entry]:
        """The board's first TOP_KEPT entries by `metric` (`leaderboard.rank`)."""
        key = (library_id, window, channel, metric, min_impressions)

        async def rank_board() -> list[lb.Entry]:
            entries = await self.entries(library_id, window, channel)
            return lb.rank(entries, metric, min_impressions=min_impressions, limit=TOP_KEPT)

        return await self._tops.get(key, rank_board)

    async def rollup(self, library_id: str, window: Window, channel: Channel | None) -> Rollup:
        """Every entry of the board added up."""

        async def add_board() -> Rollup:
            entries = await self.entries(library_id, window, channel)
            return Rollup(sum_totals(e.totals for e in entries), len(entries))

        return await self._rollups.get((library_id, window, channel), add_board)

    async def entries_of(
        self, library_id: str, window: Window, channel: Channel | None, asset_ids: Sequence[str]
    ) -> dict[str, Totals]:
        """The entries of some assets on a board (those with none are left out)."""
        if not asset_ids:
            return {}
        values = await self._redis.hmget(self._board(library_id, window, channel), asset_ids)
        return {a: decode_board_entry(v) for a, v in zip(asset_ids, values, strict=True) if v}

    async def campaign_entries(self, campaign_id: str, window: Window) -> list[lb.Entry]:
        """A campaign's board: each asset's totals in that campaign over the window."""
        raw = await self._redis.hgetall(self._keys.campaign_board(campaign_id, window.value))
        return [lb.Entry(asset_id, decode_board_entry(value)) for asset_id, value in raw.items()]

    async def ranked_assets(self, window: Window) -> set[str]:
        """Every asset with an entry for this window (all channels), in any library."""
        libraries = await self._redis.smembers(self._keys.board_libraries)
        assets: set[str] = set()
        for library_id in libraries:
            assets.update(await self._redis.hkeys(self._board(library_id, window, None)))
        return assets
