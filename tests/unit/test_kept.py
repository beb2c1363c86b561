"""Kept: a value kept for its seconds, computed once for callers asking together, a
failure not kept, and at most `size` keys."""

from __future__ import annotations

import asyncio

import pytest

from service.store.kept import Kept


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Source:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        return self.calls


async def test_a_value_is_kept_for_its_seconds() -> None:
    clock, source = Clock(), Source()
    kept: Kept[str, int] = Kept(30, clock=clock)
    assert await kept.get("a", source) == 1
    clock.now = 29.9
    assert await kept.get("a", source) == 1
    assert await kept.get("b", source) == 2, "another key"
    clock.now = 30
    assert await kept.get("a", source) == 3


async def test_callers_asking_together_share_one_computation() -> None:
    source = Source()
    source.release.clear()
    kept: Kept[str, int] = Kept(30)
    waiting = [asyncio.ensure_future(kept.get("a", source)) for _ in range(5)]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert source.calls == 1


async def test_a_failure_is_not_kept() -> None:
    kept: Kept[str, int] = Kept(30)

    async def fail() -> int:
        raise ConnectionError("Redis went away")

    with pytest.raises(ConnectionError):
        await kept.get("a", fail)
    assert await kept.get("a", Source()) == 1


async def test_the_oldest_key_goes_first() -> None:
    source = Source()
    kept: Kept[str, int] = Kept(30, size=2)
    await kept.get("a", source)
    await kept.get("b", source)
    await kept.get("c", source)  # "a" goes
    assert await kept.get("b", source) == 2
    assert await kept.get("a", source) == 4
