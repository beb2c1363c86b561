"""The metrics and library scripts touch only the keys they declare.

On Redis Cluster only declared keys are checked against a migrating slot: a key a script
builds itself can be written on the node its slot is leaving, splitting it in two. Here
each call runs as a Redis ACL user allowed exactly the call's declared keys, so any other
key the script reads or writes is refused with NOPERM and fails the test.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.config import Settings
from service.domain.enums import AssetStatus, Channel, MediaType
from service.domain.library import LibraryEntry
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import Window
from service.store.keys import Keys
from service.store.leaderboards import REGISTRY, LeaderboardStore
from service.store.leases import Lease
from service.store.metrics import MetricsStore, PerfRow
from service.store.registry import RegistryStore
from service.store.scripts import Scripts

pytestmark = pytest.mark.integration

NOW = float(int(time.time()))


def glob_escape(key: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", key)


class DeclaredOnly:
    """A script runner: each call as a fresh ACL user whose key patterns are the call's
    declared keys, and nothing else."""

    def __init__(self, redis: Any, source: str) -> None:
        self._redis = redis
        self._script = redis.register_script(source)
        self.calls = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        name, password = f"declared-{secrets.token_hex(4)}", secrets.token_hex(16)
        patterns = [f"~{glob_escape(k)}" for k in keys]
        await self._redis.execute_command(
            "ACL", "SETUSER", name, "on", f">{password}", "resetkeys", *patterns, "+@all"
        )
        pool = self._redis.connection_pool.connection_kwargs
        user = aioredis.Redis(
            host=pool.get("host", "localhost"),
            port=pool.get("port", 6379),
            username=name,
            password=password,
            decode_responses=True,
        )
        try:
            await self._redis.script_load(self._script.script)
            self.calls += 1
            return await user.evalsha(self._script.sha, len(keys), *keys, *args)
        finally:
            await user.aclose()
            await self._redis.execute_command("ACL", "DELUSER", name)


def declared_only(redis: Any, name: str) -> tuple[Scripts, DeclaredOnly]:
    """The scripts, with `name` run as DeclaredOnly."""
    scripts = Scripts.register(redis)
    checked = DeclaredOnly(redis, getattr(scripts, name).script)
    return dataclasses.replace(scripts, **{name: checked}), checked


def row(n: int, asset: str, t: float, impressions: int = 10) -> PerfRow:
    return PerfRow(f"e{n}", asset, "web", "c1", int(t), impressions, 1, 0, 0, 0, 0)


async def test_perf_forget_touches_only_its_declared_keys(redis: Any, settings: Settings) -> None:
    scripts, checked = declared_only(redis, "perf_forget")
    store = MetricsStore(
        redis,
        Keys(settings.redis_key_prefix),
        scripts,
        settings.topic_asset_performance,
    )
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    await store.forget("a1", 0)
    assert checked.calls == 1
    assert await store.totals("a1", Window.LIFETIME, NOW) is None


async def test_board_write_touches_only_its_declared_keys(redis: Any, settings: Settings) -> None:
    scripts, checked = declared_only(redis, "board_write")
    boards = LeaderboardStore(redis, Keys(settings.redis_key_prefix), scripts)
    day = WindowTotals(
        by_channel={Channel.EMAIL: Totals(100, 5)}, by_campaign={"c1": Totals(100, 5)}
    )
    await boards.place("a1", "L1", None, {Window.DAY: day})
    await boards.place("a1", "L2", "L1", {Window.LIFETIME: day})  # moved, and out of c1's 24h
    assert [e.asset_id for e in await boards.entries("L2", Window.LIFETIME, None)] == ["a1"]
    assert await boards.entries("L1", Window.DAY, None) == []
    assert await boards.campaign_entries("c1", Window.DAY) == []
    # library and campaign c1, then L2, L1 (left) and c1
    assert checked.calls == 5


async def test_board_claim_touches_only_its_declared_keys(redis: Any, settings: Settings) -> None:
    scripts, checked = declared_only(redis, "board_claim")
    keys = Keys(settings.redis_key_prefix)
    boards = LeaderboardStore(redis, keys, scripts)
    metrics = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
    await boards.mark_dirty(["a1", "a2"])
    await metrics.point(0, ["a3"])
    await metrics.apply(0, 0, 0, [row(1, "a3", NOW - 60)], NOW)  # marks a3 on partition 0
    assert sorted(await boards.claim(REGISTRY, 10)) == ["a1", "a2"]
    assert len(await boards.claim(REGISTRY, 1)) == 1, "an unfinished claim comes again"
    await boards.done(REGISTRY, ["a1", "a2"])
    assert await boards.claim(0, 10) == ["a3"]
    assert checked.calls == 3


async def test_the_lease_scripts_touch_only_their_declared_key(
    redis: Any, settings: Settings
) -> None:
    key = Keys(settings.redis_key_prefix).boards_refresh_lease
    scripts, hold = declared_only(redis, "lease_hold")
    scripts, release = declared_only(redis, "lease_release")
    scripts = dataclasses.replace(scripts, lease_hold=hold)
    lease = Lease(key, scripts)
    assert await lease.hold("a", 30) and await lease.hold("a", 30)
    await lease.release("a")
    assert (hold.calls, release.calls) == (2, 1)


def entry(words: list[str], status: AssetStatus = AssetStatus.DRAFT) -> LibraryEntry:
    return LibraryEntry(
        file_size_bytes=100,
        media_type=MediaType.IMAGE,
        status=status,
        tags=["spring", "hero"],
        categories=["banners"],
        words=words,
        content_sha256="ab" * 32,
    )


async def test_library_project_touches_only_its_declared_keys(
    redis: Any, settings: Settings
) -> None:
    scripts, checked = declared_only(redis, "library_project")
    keys = Keys(settings.redis_key_prefix)
    store = RegistryStore(
        redis,
        keys,
        scripts,
        settings.seen_event_ttl_seconds,
    )
    long_word = "x" * 40  # indexed under its first 32 characters' prefixes only
    assert await store.project_library("L", "a1", 1, entry(["été", long_word]))
    # New words and status: the stored entry's indexes are declared too, to leave them.
    assert await store.project_library("L", "a1", 2, entry(["winter"], AssetStatus.APPROVED))
    assert await store.project_library("L", "a1", 3, None)  # left the library
    assert checked.calls == 3
    assert await redis.zrange(keys.library("L").prefix("ét"), 0, -1) == []
    assert await redis.exists(keys.library("L").word("winter")) == 0


async def test_library_project_refuses_an_undeclared_index_key_before_writing(
    redis: Any, settings: Settings
) -> None:
    """What a projection racing another gets: -1, nothing written, and the store reads the
    member again."""
    scripts = Scripts.register(redis)
    library = Keys(settings.redis_key_prefix).library("L")
    fixed = [library.stats, library.members, library.assets, library.usage]
    fixed += [library.contents, library.waste]
    member = '{"rev":1,"entry":{"file_size_bytes":1,"media_type":"image","status":"draft",'
    member += '"tags":["t"],"categories":[]}}'
    declared = [library.status("draft")]  # the tag's index is missing
    reply = await scripts.library_project(
        keys=[*fixed, *declared], args=[library.index_prefix, "a1", 1, member]
    )
    assert reply == -1
    assert [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}:*")] == []
    reply = await scripts.library_project(
        keys=[*fixed, *declared, library.tag("t")], args=[library.index_prefix, "a1", 1, member]
    )
    assert reply == 1
