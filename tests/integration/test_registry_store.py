"""The Lua scripts against a real Redis: atomicity, idempotence and ordering guards."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import Settings
from service.domain.enums import AssetStatus, DeadLetterReason, MediaType
from service.domain.library import LibraryEntry
from service.domain.registry import AssetState
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.registry import RegistryStore
from service.store.scripts import Scripts

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis: Any, settings: Settings) -> RegistryStore:
    keys = Keys(settings.redis_key_prefix)
    return RegistryStore(redis, keys, Scripts.register(redis), settings.seen_event_ttl_seconds)


def entry(
    size: int = 100,
    status: AssetStatus = AssetStatus.DRAFT,
    tags: list[str] | None = None,
    categories: list[str] | None = None,
    media_type: MediaType = MediaType.IMAGE,
) -> LibraryEntry:
    return LibraryEntry(
        file_size_bytes=size,
        media_type=media_type,
        status=status,
        tags=tags if tags is not None else ["summer"],
        categories=categories if categories is not None else ["campaign"],
    )


async def test_library_projection_counts_once_and_ignores_stale_revs(store: RegistryStore) -> None:
    big = 5 * 10**12  # bytes beyond 32 bits and beyond Lua's default number formatting
    assert await store.project_library("L", "a1", 1, entry(size=big))
    assert not await store.project_library("L", "a1", 1, entry(size=big))  # replay
    assert await store.project_library("L", "a2", 1, entry(size=7, media_type=MediaType.VIDEO))
    stats = await store.library_stats("L")
    assert stats is not None
    assert (stats.asset_count, stats.total_bytes) == (2, big + 7)

    assert await store.project_library("L", "a1", 3, entry(size=10, status=AssetStatus.APPROVED))
    assert not await store.project_library("L", "a1", 2, entry(size=99))  # older rev arrives late
    stats = await store.library_stats("L")
    assert stats is not None
    assert stats.total_bytes == 17
    assert stats.by_status[AssetStatus.APPROVED] == 1
    assert stats.by_status[AssetStatus.DRAFT] == 1
    assert stats.by_media_type[MediaType.VIDEO] == 1

    assert await store.project_library("L", "a1", 4, None)  # deleted or moved away
    assert not await store.project_library("L", "a1", 3, entry())
    stats = await store.library_stats("L")
    assert stats is not None
    assert (stats.asset_count, stats.total_bytes) == (1, 7)
    assert stats.by_status[AssetStatus.APPROVED] == 0


async def test_library_pages_follow_filters_and_cursor(store: RegistryStore) -> None:
    for n in range(25):
        tags = ["even"] if n % 2 == 0 else ["odd"]
        if n % 5 == 0:
            tags.append("five")
        status = AssetStatus.PUBLISHED if n < 10 else AssetStatus.DRAFT
        await store.project_library("L", f"a{n:02d}", 1, entry(tags=tags, status=status))

    async def collect(**filters: Any) -> list[str]:
        pages, cursor = [], None
        while True:
            page = await store.library_page(
                "L",
                tags=filters.get("tags", []),
                categories=filters.get("categories", []),
                status=filters.get("status"),
                cursor=cursor,
                limit=4,
            )
            pages += page
            if len(page) < 4:
                return pages
            cursor = page[-1]

    assert await collect() == [f"a{n:02d}" for n in range(25)]
    assert await collect(tags=["even", "five"]) == ["a00", "a10", "a20"]
    assert await collect(tags=["odd"], status="published") == ["a01", "a03", "a05", "a07", "a09"]
    assert await collect(categories=["campaign"], tags=["nope"]) == []
    # moving an asset out of a tag updates the index
    await store.project_library("L", "a00", 2, entry(tags=["odd"]))
    assert await collect(tags=["even", "five"]) == ["a10", "a20"]


async def test_hash_index_orders_announces_and_forgets(store: RegistryStore) -> None:
    sha = "ab" * 32
    first = await store.project_hash(sha, "a1", 1, "L1")
    assert first.earlier == [] and not first.announced
    second = await store.project_hash(sha, "a2", 1, "L2")
    assert second.earlier == [("a1", "L1")]
    again = await store.project_hash(sha, "a2", 1, "L2")  # replay: same answer
    assert again.earlier == [("a1", "L1")]
    await store.mark_announced(sha, "a2")
    assert (await store.project_hash(sha, "a2", 2, "L2")).announced
    third = await store.project_hash(sha, "a3", 5, "L1")
    assert third.earlier == [("a1", "L1"), ("a2", "L2")]

    assert (await store.project_hash(sha, "a1", 2, None)).applied  # a1 deleted
    assert not (await store.project_hash(sha, "a1", 1, "L1")).applied  # stale replay ignored
    assert [(d.asset_id, d.library_id) for d in await store.duplicates(sha)] == [
        ("a2", "L2"),
        ("a3", "L1"),
    ]
    assert await store.duplicates("cd" * 32) == []


async def test_commit_is_a_compare_and_set(store: RegistryStore) -> None:
    state = AssetState(asset_id="a1", rev=1)
    assert await store.commit("a1", 0, state, {})
    assert not await store.commit("a1", 0, state.model_copy(update={"rev": 1}), {})
    loaded = await store.load("a1", "e1")
    assert loaded.state == state and loaded.seen is None


async def test_dead_letters_are_counted_once_per_message(redis: Any, settings: Settings) -> None:
    keys = Keys(settings.redis_key_prefix)
    counters = DeadLetterCounters(redis, keys, Scripts.register(redis), 3600)
    assert await counters.count(DeadLetterReason.INVALID_JSON, "t/0/1")
    assert not await counters.count(DeadLetterReason.INVALID_JSON, "t/0/1")
    assert await counters.count(DeadLetterReason.INVALID_JSON, "t/0/2")
    assert await counters.count(DeadLetterReason.OVERSIZE, "t/1/2")
    totals = await counters.totals()
    assert totals["invalid_json"] == 2 and totals["oversize"] == 1 and totals["internal_error"] == 0


async def test_scripts_survive_a_script_cache_flush(redis: Any, store: RegistryStore) -> None:
    """After a Redis restart the script cache is empty: EVALSHA falls back to EVAL."""
    await redis.script_flush()
    assert await store.project_library("L", "a1", 1, entry())


async def test_a_suggestions_variant_joins_the_originals_variants(
    redis: Any, settings: Settings, store: RegistryStore
) -> None:
    from service.store.suggestions import SuggestionStore

    suggestions = SuggestionStore(redis, Keys(settings.redis_key_prefix))
    await store.project_variant("a1", "a3", True)
    await suggestions.link_variant("a2", "sug-1", original_id="a1")
    await suggestions.link_variant("a2", "sug-1", original_id="a1")  # a repeated message
    assert await store.variants("a1") == ["a2", "a3"] and await store.variant_count("a1") == 2
    await store.project_variant("a1", "a3", False)
    await store.project_variant("a1", "a3", False)
    assert await store.variants("a1") == ["a2"]


async def test_text_search_follows_the_projected_words(store: RegistryStore) -> None:
    from service.domain.library import TextQuery, search_words

    def worded(*texts: str) -> LibraryEntry:
        return entry().model_copy(update={"words": search_words(*texts)})

    long = "super" + "x" * 40  # longer than the 32 characters of the prefix index
    assert await store.project_library("L", "a1", 1, worded("Crème brûlée hero", long))
    assert await store.project_library("L", "a2", 1, worded("Hero banner"))
    assert await store.project_library("L", "a3", 1, worded("Brûlée banner"))

    async def search(whole: tuple[str, ...], prefix: str | None) -> list[str]:
        return await store.library_page(
            "L",
            tags=[],
            categories=[],
            status=None,
            cursor=None,
            limit=10,
            text=TextQuery(whole, prefix),
        )

    assert await search((), "brû") == ["a1", "a3"]
    assert await search(("hero",), "ban") == ["a2"]
    assert await search(("brûlée",), None) == ["a1", "a3"]
    assert await search((), "super" + "x" * 27) == ["a1"]  # 32 characters
    assert await search((long,), None) == ["a1"]
    assert await search((), "super" + "x" * 28) == []  # 33: only whole words that long
    assert await store.project_library("L", "a1", 2, worded("Plain"))  # renamed
    assert await search((), "brû") == ["a3"] and await search((), "pla") == ["a1"]
    assert await store.project_library("L", "a3", 2, None)  # deleted
    assert await search((), "b") == ["a2"]
