"""Redis store of the libraries: their descriptive facts and the list of every library.

`P:{l:L}:info` holds the latest version of a library's facts, replaced only by a later
one (`library_info.lua`); `P:libraries` lists every library known from an asset (the
registry's library projection adds it) or from a library-updated event, for paging
by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.domain.libraries import LibraryInfo, epoch_micros
from service.domain.library import LibraryStats
from service.store.codecs import library_stats
from service.store.keys import Keys
from service.store.scripts import Scripts


class LibraryStore:
    def __init__(self, redis: Any, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def update(self, info: LibraryInfo) -> bool:
        """Store `info` if it is later than the stored version; True when it was."""
        written = await self._scripts.library_info(
            keys=[self._keys.library_info(info.library_id)],
            args=[epoch_micros(info.updated_at), info.event_id, info.model_dump_json()],
        )
        return bool(written)

    async def remember(self, library_id: str) -> None:
        """List the library (idempotent)."""
        await self._redis.zadd(self._keys.libraries, {library_id: 0})

    async def page(self, cursor: str | None, limit: int) -> list[str]:
        """Library ids after `cursor`, in id order."""
        low = "-" if cursor is None else f"({cursor}"
        ids: list[str] = await self._redis.zrangebylex(
            self._keys.libraries, low, "+", start=0, num=limit
        )
        return ids

    async def details(
        self, library_ids: Sequence[str]
    ) -> list[tuple[LibraryInfo | None, LibraryStats | None]]:
        """Each library's facts and statistics (None where there are none), in one round
        trip."""
        if not library_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for library_id in library_ids:
                pipe.hget(self._keys.library_info(library_id), "doc")
                pipe.hgetall(self._keys.library(library_id).stats)
            replies = await pipe.execute()
        result: list[tuple[LibraryInfo | None, LibraryStats | None]] = []
        for n, library_id in enumerate(library_ids):
            doc, counters = replies[2 * n], replies[2 * n + 1]
            info = None if doc is None else LibraryInfo.model_validate_json(doc)
            stats = library_stats(library_id, counters) if counters else None
            result.append((info, stats))
        return result
