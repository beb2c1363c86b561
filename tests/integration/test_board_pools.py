"""A board's pool on Redis: kept for `kept_seconds` per process, read again after, and
summed once for callers that ask together."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.config import Settings
from service.domain.enums import Channel
from service.domain.labels import Pool
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import Window
from service.store.keys import Keys
from service.store.leaderboards import LeaderboardStore
from service.store.scripts import Scripts

pytestmark = pytest.mark.integration


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def day(impressions: int, clicks: int) -> dict[Window, WindowTotals]:
    return {Window.DAY: WindowTotals(by_channel={Channel.EMAIL: Totals(impressions, clicks)})}


async def test_a_pool_is_kept_for_its_seconds_then_read_again(
    redis: Any, settings: Settings
) -> None:
    clock = Clock()
    boards = LeaderboardStore(
        redis,
        Keys(settings.redis_key_prefix),
        Scripts.register(redis),
        kept_seconds=30,
        clock=clock,
    )
    await boards.place("a1", "L1", None, day(1000, 10))
    assert await boards.pool("L1", Window.DAY, None, 100) == Pool(10, 1000, 1)
    await boards.place("a2", "L1", None, day(500, 5))
    clock.now += 29
    assert await boards.pool("L1", Window.DAY, None, 100) == Pool(10, 1000, 1), "kept"
    assert await boards.pool("L1", Window.DAY, None, 1) == Pool(15, 1500, 2), "per threshold"
    clock.now += 1
    assert await boards.pool("L1", Window.DAY, None, 100) == Pool(15, 1500, 2), "read again"


async def test_callers_asking_together_share_one_sum(redis: Any, settings: Settings) -> None:
    keys = Keys(settings.redis_key_prefix)
    for n in range(3_000):  # a board of several HSCAN pages
        await redis.hset(keys.board("L1", Window.DAY.value, None), f"a{n}", "100,1,0,0,0,0")
    scans = 0
    scan = redis.hscan

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return await scan(*args, **kwargs)

    def store() -> LeaderboardStore:  # a process of its own: nothing kept yet
        return LeaderboardStore(redis, keys, Scripts.register(redis))

    redis.hscan = counted
    try:
        assert await store().pool("L1", Window.DAY, None, 100) == Pool(3_000, 300_000, 3_000)
        one_sum, scans = scans, 0
        boards = store()
        pools = await asyncio.gather(*(boards.pool("L1", Window.DAY, None, 100) for _ in range(5)))
        assert pools == [Pool(3_000, 300_000, 3_000)] * 5
        assert one_sum >= 2 and scans == one_sum, "five callers, one sum of several pages"
        await boards.pool("L1", Window.DAY, None, 100)
        assert scans == one_sum, "kept, not read again"
    finally:
        del redis.hscan
