"""The libraries' store on a real Redis: newest facts win in any order, and the list of
libraries holds those known from facts and from the registry's projection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.config import Settings
from service.domain.enums import AssetStatus, MediaType
from service.domain.libraries import LibraryInfo
from service.domain.library import LibraryEntry
from service.store.keys import Keys
from service.store.libraries import LibraryStore
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from tests.unit.factories import T0

pytestmark = pytest.mark.integration


def info(library_id: str, minutes: int, event_id: str = "e", name: str = "n") -> LibraryInfo:
    return LibraryInfo(
        library_id=library_id,
        name=name,
        owner="ana",
        updated_at=T0 + timedelta(minutes=minutes, microseconds=minutes),
        event_id=event_id,
    )


async def test_the_later_version_wins_in_any_order(redis: Any, settings: Settings) -> None:
    store = LibraryStore(redis, Keys(settings.redis_key_prefix), Scripts.register(redis))
    assert await store.update(info("L1", 5, name="five"))
    assert not await store.update(info("L1", 1, name="one"))
    assert not await store.update(info("L1", 5, name="five"))  # the same version again
    assert await store.update(info("L1", 5, event_id="f", name="tie, greater id"))
    assert not await store.update(info("L1", 5, event_id="a", name="tie, smaller id"))
    [(stored, stats)] = await store.details(["L1"])
    assert stored is not None and stored.name == "tie, greater id" and stats is None


async def test_the_list_holds_libraries_from_facts_and_assets(
    redis: Any, settings: Settings
) -> None:
    keys, scripts = Keys(settings.redis_key_prefix), Scripts.register(redis)
    store = LibraryStore(redis, keys, scripts)
    registry = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)
    entry = LibraryEntry(
        file_size_bytes=10,
        media_type=MediaType.IMAGE,
        status=AssetStatus.DRAFT,
        tags=[],
        categories=[],
    )
    await registry.project_library("L2", "a1", 1, entry)
    await store.update(info("L1", 0))
    await store.remember("L1")
    await store.remember("L1")
    assert await store.page(None, 10) == ["L1", "L2"]
    assert await store.page("L1", 10) == ["L2"]
    assert await store.page(None, 1) == ["L1"]
    [(facts, none), (no_facts, stats)] = await store.details(["L1", "L2"])
    assert facts is not None and none is None
    assert no_facts is None and stats is not None and stats.total_bytes == 10


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["-1", "e", "{}"], "ARGV[1]"),
        ([str(2**60), "e", "{}"], "ARGV[1]"),
        (["1", "", "{}"], "ARGV[2]"),
        (["1", "e", "[]"], "ARGV[3]"),
    ],
)
async def test_bad_input_is_refused_before_any_write(
    redis: Any, settings: Settings, args: list[str], names: str
) -> None:
    keys = Keys(settings.redis_key_prefix)
    with pytest.raises(
        ResponseError, match=f"bad input: {names.replace('[', '.').replace(']', '.')}"
    ):
        await Scripts.register(redis).library_info(keys=[keys.library_info("L1")], args=args)
    assert await redis.hgetall(keys.library_info("L1")) == {}
