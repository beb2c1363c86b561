"""Redis store of the leaderboards: per library, window and channel, each asset's totals.

`{l:<library>}:lb:<window>:<dimension>` hashes map asset_id -> "i,c,e,v,s,m"
(dimension `all` or `ch:<channel>`); the refresh writes them, the API ranks them.
Assets to refresh are kept in sets: one per metrics partition (filled by the
metrics script) and one for registry changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.domain import leaderboard as lb
from service.domain.metrics import Totals
from service.domain.windows import Window
from service.store.keys import Keys

Placement = Mapping[Window, Mapping[str, Totals]]


class LeaderboardStore:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _board(self, library_id: str, window: Window, dimension: str) -> str:
        return f"{self._keys.prefix}:{{l:{library_id}}}:lb:{window.value}:{dimension}"

    def _placed(self, asset_id: str) -> str:
        return f"{self._keys.prefix}:{{a:{asset_id}}}:lb-library"

    @property
    def registry_dirty(self) -> str:
        return f"{self._keys.prefix}:lb-dirty"

    @property
    def libraries(self) -> str:
        return f"{self._keys.prefix}:lb-libraries"

    @property
    def swept_hour(self) -> str:
        return f"{self._keys.prefix}:lb-swept-hour"

    async def swept_hour_value(self) -> int | None:
        value = await self._redis.get(self.swept_hour)
        return None if value is None else int(value)

    async def set_swept_hour(self, hour: int) -> None:
        await self._redis.set(self.swept_hour, hour)

    def partition_dirty(self, partition: int) -> str:
        return f"{self._keys.perf_prefix(partition)}dirty"

    async def mark_dirty(self, asset_ids: Sequence[str]) -> None:
        if asset_ids:
            await self._redis.sadd(self.registry_dirty, *asset_ids)

    async def pending(self, dirty_key: str, count: int) -> list[str]:
        members: list[str] = await self._redis.srandmember(dirty_key, count)
        return members

    async def done(self, dirty_key: str, asset_ids: Sequence[str]) -> None:
        if asset_ids:
            await self._redis.srem(dirty_key, *asset_ids)

    async def placed(self, asset_ids: Sequence[str]) -> list[str | None]:
        """The library each asset's entries are in now (None: in none)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.get(self._placed(asset_id))
            result: list[str | None] = await pipe.execute()
        return result

    async def place(
        self, asset_id: str, library_id: str | None, previous: str | None, boards: Placement
    ) -> None:
        """Write the asset's entries into its library and remove them everywhere else."""
        async with self._redis.pipeline(transaction=False) as pipe:
            if previous is not None and previous != library_id:
                for window in lb.LEADERBOARD_WINDOWS:
                    for dimension in lb.DIMENSIONS:
                        pipe.hdel(self._board(previous, window, dimension), asset_id)
            if library_id is None:
                pipe.delete(self._placed(asset_id))
            else:
                for window in lb.LEADERBOARD_WINDOWS:
                    per_dimension = boards.get(window, {})
                    for dimension in lb.DIMENSIONS:
                        key = self._board(library_id, window, dimension)
                        totals = per_dimension.get(dimension)
                        if totals is None or totals == Totals():
                            pipe.hdel(key, asset_id)
                        else:
                            pipe.hset(key, asset_id, lb.encode(totals))
                pipe.set(self._placed(asset_id), library_id)
                pipe.sadd(self.libraries, library_id)
            await pipe.execute()

    async def entries(self, library_id: str, window: Window, dimension: str) -> list[lb.Entry]:
        raw = await self._redis.hgetall(self._board(library_id, window, dimension))
        return [lb.Entry(asset_id, lb.decode(value)) for asset_id, value in raw.items()]

    async def ranked_assets(self, window: Window) -> set[str]:
        """Every asset with an entry for this window (all channels), in any library."""
        libraries = await self._redis.smembers(self.libraries)
        assets: set[str] = set()
        for library_id in libraries:
            assets.update(await self._redis.hkeys(self._board(library_id, window, lb.ALL_CHANNELS)))
        return assets
