"""Every registry Lua script refuses bad arguments before its first write (real Redis).

A script that fails halfway leaves its earlier writes in place (Redis does not roll a
script back), so each one checks all of its input first and answers
`ERR bad input: <what>`. Each case below seeds some state, calls a script with one
bad argument, and checks that the error names the problem and that no key changed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.config import Settings
from service.domain.enums import AssetStatus, MediaType
from service.domain.library import LibraryEntry
from service.store.keys import Keys
from service.store.registry import RegistryStore
from service.store.scripts import Scripts

pytestmark = pytest.mark.integration

MAX_EXACT = 2**53 - 1


async def snapshot(redis: Any, prefix: str) -> dict[str, Any]:
    """Every key of the test's prefix with its type, value and TTL."""
    state: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=10_000):
        kind = await redis.type(key)
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = await redis.get(key)
        state[key] = (kind, value, await redis.ttl(key) > 0)
    return state


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.redis_key_prefix)


@pytest.fixture
def scripts(redis: Any) -> Scripts:
    return Scripts.register(redis)


@pytest.fixture
async def seeded(redis: Any, keys: Keys, scripts: Scripts, settings: Settings) -> dict[str, Any]:
    """Some state of every kind the scripts write, to show that none of it moves."""
    store = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)
    entry = LibraryEntry(
        file_size_bytes=100,
        media_type=MediaType.IMAGE,
        status=AssetStatus.DRAFT,
        tags=["summer"],
        categories=["campaign"],
    )
    assert await store.project_library("L", "a1", 1, entry)
    await store.project_hash("0" * 64, "a1", 1, "L")
    await redis.hset(keys.asset_state("a1"), mapping={"rev": 1, "doc": "{}"})
    await redis.zadd(keys.held_schedule, {"a1": 1000})
    await redis.hset(keys.dead_letter_counts, "oversize", 1)
    return await snapshot(redis, settings.redis_key_prefix)


def _commit(keys: Keys, *args: Any) -> tuple[list[str], list[Any]]:
    """Revs, state and ttl, then the outcome pairs; keeping 50 history entries, adding none."""
    return _commit_history(keys, *args[:4], 50, 0, *args[4:])


def _commit_history(keys: Keys, *args: Any) -> tuple[list[str], list[Any]]:
    return [keys.asset_state("a1"), keys.asset_seen("a1"), keys.asset_history("a1")], list(args)


def _library(keys: Keys, *args: Any) -> tuple[list[str], list[Any]]:
    lib = keys.library("L")
    keys = [lib.stats, lib.members, lib.assets, lib.usage, lib.contents, lib.waste]
    return keys, [lib.index_prefix, *args]


def member(size: Any = 10, **entry: Any) -> str:
    body = {
        "file_size_bytes": size,
        "media_type": "image",
        "status": "draft",
        "tags": ["t"],
        "categories": [],
    }
    body.update(entry)
    return json.dumps({"rev": 2, "entry": body})


STATE = json.dumps({"asset_id": "a1"})
OUTCOME = json.dumps({"kind": "applied"})
ENTRY = json.dumps({"seq": 2})

CASES: list[tuple[str, str, Any, str]] = [
    # script, case id, (keys, args) builder, what the error names
    ("asset_commit", "rev not a number", lambda k: _commit(k, "x", 2, STATE, 60), "ARGV[1]"),
    ("asset_commit", "rev a float", lambda k: _commit(k, "1.5", 2, STATE, 60), "ARGV[1]"),
    ("asset_commit", "rev beyond 2^53", lambda k: _commit(k, 1, 2**60, STATE, 60), "ARGV[2]"),
    ("asset_commit", "new rev below read rev", lambda k: _commit(k, 1, 0, STATE, 60), "ARGV[2]"),
    ("asset_commit", "state not JSON", lambda k: _commit(k, 1, 2, "{oops", 60), "ARGV[3]"),
    ("asset_commit", "state not an object", lambda k: _commit(k, 1, 2, "7", 60), "ARGV[3]"),
    ("asset_commit", "ttl zero", lambda k: _commit(k, 1, 2, STATE, 0), "ARGV[4]"),
    ("asset_commit", "ttl negative", lambda k: _commit(k, 1, 2, STATE, -5), "ARGV[4]"),
    (
        "asset_commit",
        "odd pairs",
        lambda k: _commit(k, 1, 2, STATE, 60, "e1", OUTCOME, "e2"),
        "pairs",
    ),
    (
        "asset_commit",
        "empty event id",
        lambda k: _commit(k, 1, 2, STATE, 60, "", OUTCOME),
        "ARGV[7]",
    ),
    (
        "asset_commit",
        "outcome not JSON",
        lambda k: _commit(k, 1, 2, STATE, 60, "e1", OUTCOME, "e2", "nope"),
        "ARGV[10]",
    ),
    (
        "asset_commit",
        "history size zero",
        lambda k: _commit_history(k, 1, 2, STATE, 60, 0, 0),
        "ARGV[5]",
    ),
    (
        "asset_commit",
        "more history entries than arguments",
        lambda k: _commit_history(k, 1, 2, STATE, 60, 50, 2, 1, ENTRY),
        "ARGV[6]",
    ),
    (
        "asset_commit",
        "history without a new state",
        lambda k: _commit_history(k, 1, 1, "", 60, 50, 1, 2, ENTRY),
        "ARGV[6]",
    ),
    (
        "asset_commit",
        "history seq not a number",
        lambda k: _commit_history(k, 1, 2, STATE, 60, 50, 1, "x", ENTRY),
        "ARGV[7]",
    ),
    (
        "asset_commit",
        "history entry not an object",
        lambda k: _commit_history(k, 1, 2, STATE, 60, 50, 1, 2, "[]"),
        "ARGV[8]",
    ),
    (
        "count_once",
        "empty field",
        lambda k: ([k.dead_letter_counts, k.dead_letter_marker("t/0/1")], ["", 60]),
        "ARGV[1]",
    ),
    (
        "count_once",
        "ttl not a number",
        lambda k: ([k.dead_letter_counts, k.dead_letter_marker("t/0/1")], ["oversize", "soon"]),
        "ARGV[2]",
    ),
    (
        "count_once",
        "ttl zero",
        lambda k: ([k.dead_letter_counts, k.dead_letter_marker("t/0/1")], ["oversize", 0]),
        "ARGV[2]",
    ),
    (
        "hash_project",
        "empty asset",
        lambda k: ([k.hash_assets("0" * 64), k.hash_meta("0" * 64)], ["", 2, "L"]),
        "ARGV[1]",
    ),
    (
        "hash_project",
        "rev not an integer",
        lambda k: ([k.hash_assets("0" * 64), k.hash_meta("0" * 64)], ["a2", "2.5", "L"]),
        "ARGV[2]",
    ),
    (
        "hash_project",
        "rev negative",
        lambda k: ([k.hash_assets("0" * 64), k.hash_meta("0" * 64)], ["a2", -1, "L"]),
        "ARGV[2]",
    ),
    (
        "unschedule_if_due",
        "empty asset",
        lambda k: ([k.held_schedule], ["", 5000]),
        "ARGV[1]",
    ),
    (
        "unschedule_if_due",
        "now not a number",
        lambda k: ([k.held_schedule], ["a1", "later"]),
        "ARGV[2]",
    ),
    (
        "index_page",
        "page size zero",
        lambda k: ([k.library("L").assets], ["", 0]),
        "ARGV[2]",
    ),
    (
        "index_page",
        "page size not a number",
        lambda k: ([k.library("L").assets], ["", "ten"]),
        "ARGV[2]",
    ),
    ("library_project", "empty asset", lambda k: _library(k, "", 2, member()), "ARGV[2]"),
    ("library_project", "rev a float", lambda k: _library(k, "a1", "2.0", member()), "ARGV[3]"),
    ("library_project", "member not JSON", lambda k: _library(k, "a1", 2, "{"), "ARGV[4]"),
    ("library_project", "member a list", lambda k: _library(k, "a1", 2, "[]"), "ARGV[4]"),
    (
        "library_project",
        "member without rev",
        lambda k: _library(k, "a1", 2, json.dumps({"entry": None})),
        "rev",
    ),
    (
        "library_project",
        "size a string",
        lambda k: _library(k, "a1", 2, member("10")),
        "file_size_bytes",
    ),
    (
        "library_project",
        "size a fraction",
        lambda k: _library(k, "a1", 2, member(10.5)),
        "file_size_bytes",
    ),
    (
        "library_project",
        "size negative",
        lambda k: _library(k, "a1", 2, member(-10)),
        "file_size_bytes",
    ),
    (
        "library_project",
        "size not exact in a double",
        lambda k: _library(k, "a1", 2, member(2**53 + 2)),
        "file_size_bytes",
    ),
    (
        "library_project",
        "size overflowing a double",
        lambda k: _library(
            k, "a1", 2, member().replace('"file_size_bytes": 10', '"file_size_bytes": 1e400')
        ),
        "file_size_bytes",
    ),
    (
        "library_project",
        "empty media type",
        lambda k: _library(k, "a1", 2, member(media_type="")),
        "media_type",
    ),
    (
        "library_project",
        "an empty content hash",
        lambda k: _library(k, "a1", 2, member(content_sha256="")),
        "entry.content_sha256",
    ),
    (
        "library_project",
        "an empty word",
        lambda k: _library(k, "a1", 2, member(words=["hero", ""])),
        "entry.words",
    ),
    (
        "library_project",
        "usage count negative",
        lambda k: _library(k, "a1", 2, member(usage_count=-1)),
        "usage_count",
    ),
    (
        "library_project",
        "status missing",
        lambda k: _library(k, "a1", 2, member(status=None)),
        "status",
    ),
    (
        "library_project",
        "a tag not a string",
        lambda k: _library(k, "a1", 2, member(tags=["ok", 5])),
        "tags",
    ),
    (
        "library_project",
        "an empty category",
        lambda k: _library(k, "a1", 2, member(categories=[""])),
        "categories",
    ),
]


@pytest.mark.parametrize("script", sorted({case[0] for case in CASES}))
async def test_bad_input_is_refused_and_writes_nothing(
    redis: Any,
    keys: Keys,
    scripts: Scripts,
    settings: Settings,
    seeded: dict[str, Any],
    script: str,
) -> None:
    for name, case, builder, names in CASES:
        if name != script:
            continue
        script_keys, args = builder(keys)
        with pytest.raises(ResponseError) as refused:
            await getattr(scripts, script)(keys=script_keys, args=args)
        assert "bad input" in str(refused.value) and names in str(refused.value), case
        assert await snapshot(redis, settings.redis_key_prefix) == seeded, case


async def test_a_corrupt_stored_member_is_refused_before_any_write(
    redis: Any, keys: Keys, scripts: Scripts, settings: Settings
) -> None:
    lib = keys.library("L")
    await redis.hset(lib.members, "a1", '{"rev": 1, "entry": {"file_size_bytes": "big"}}')
    before = await snapshot(redis, settings.redis_key_prefix)
    with pytest.raises(ResponseError, match="stored member of a1"):
        await scripts.library_project(
            keys=[lib.stats, lib.members, lib.assets, lib.usage, lib.contents, lib.waste],
            args=[lib.index_prefix, "a1", 2, member()],
        )
    assert await snapshot(redis, settings.redis_key_prefix) == before


async def test_library_bytes_stay_exact_up_to_the_largest_exact_size(
    redis: Any, keys: Keys, scripts: Scripts, settings: Settings
) -> None:
    store = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)

    def sized(size: int) -> LibraryEntry:
        return LibraryEntry(
            file_size_bytes=size,
            media_type=MediaType.VIDEO,
            status=AssetStatus.DRAFT,
            tags=[],
            categories=[],
        )

    # Sums above 2^53 are kept exactly by Redis: a double would round them.
    for n in range(3):
        assert await store.project_library("L", f"a{n}", 1, sized(MAX_EXACT - n))
    stats = await store.library_stats("L")
    assert stats is not None
    assert stats.total_bytes == 3 * MAX_EXACT - 3
    assert await store.project_library("L", "a1", 2, sized(1))
    stats = await store.library_stats("L")
    assert stats is not None and stats.total_bytes == 2 * MAX_EXACT - 1


async def test_library_bytes_refuse_to_overflow_before_any_write(
    redis: Any, keys: Keys, scripts: Scripts, settings: Settings
) -> None:
    store = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)
    lib = keys.library("L")
    # The guard compares in doubles (spaced 1024 apart near 2^62): far from 2^63 either way.
    await redis.hset(lib.stats, "bytes", 2**62 - 2**20)
    before = await snapshot(redis, settings.redis_key_prefix)
    entry = LibraryEntry(
        file_size_bytes=2**21,
        media_type=MediaType.IMAGE,
        status=AssetStatus.DRAFT,
        tags=["t"],
        categories=[],
    )
    with pytest.raises(ResponseError, match="bad input: library total_bytes would pass 2\\^62"):
        await store.project_library("L", "a1", 1, entry)
    assert await snapshot(redis, settings.redis_key_prefix) == before
    # Within the bound it is applied exactly.
    smaller = entry.model_copy(update={"file_size_bytes": 2**19 + 3})
    assert await store.project_library("L", "a1", 1, smaller)
    assert int(await redis.hget(lib.stats, "bytes")) == 2**62 - 2**20 + 2**19 + 3
