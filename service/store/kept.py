"""Reads kept for a while in one process: derived values that cost a whole-board scan.

Boards change once per refresh interval at most, so a value computed from a whole board
can be kept that long. `Kept` remembers each value for `seconds`, lets callers asking for
the same key meanwhile share one computation, and holds at most `size` keys (the oldest
computed goes first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    def __init__(
        self, seconds: float, *, size: int = 1_024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._computing: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The value kept for `key`, or `compute()`'s (shared with concurrent callers);
        a failed computation is not kept."""
        kept = self._values.get(key)
        if kept is not None and self._clock() - kept[0] < self._seconds:
            return kept[1]
        computing = self._computing.get(key)
        if computing is None:
            computing = asyncio.ensure_future(self._compute(key, compute))
            self._computing[key] = computing
            computing.add_done_callback(lambda _: self._computing.pop(key, None))
        return await asyncio.shield(computing)

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        value = await compute()
        self._values.pop(key, None)
        self._values[key] = (self._clock(), value)
        if len(self._values) > self._size:
            del self._values[next(iter(self._values))]
        return value
