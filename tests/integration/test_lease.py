"""The refresh lease on a real Redis: one holder at a time, extended by its holder, freed
by its holder or by expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.config import Settings
from service.store.keys import Keys
from service.store.leases import Lease
from service.store.scripts import Scripts

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


async def test_one_holder_at_a_time(redis: Any, settings: Settings) -> None:
    key = Keys(settings.redis_key_prefix).boards_refresh_lease
    lease = Lease(key, Scripts.register(redis))
    assert await lease.hold("a", 30)
    assert not await lease.hold("b", 30)
    assert await lease.hold("a", 60), "extended by its holder"
    assert 30_000 < await redis.pttl(key) <= 60_000
    await lease.release("b")  # not b's: nothing happens
    assert await redis.get(key) == "a"
    await lease.release("a")
    assert await redis.get(key) is None
    assert await lease.hold("b", 30)


async def test_a_holder_that_stops_extending_loses_the_lease(
    redis: Any, settings: Settings
) -> None:
    lease = Lease(Keys(settings.redis_key_prefix).boards_refresh_lease, Scripts.register(redis))
    assert await lease.hold("a", 0.2)
    assert not await lease.hold("b", 30)
    await asyncio.sleep(0.3)
    assert await lease.hold("b", 30)
