"""The table of ids a partition applied, through the exactly-once step on a real Redis."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from service.config import Settings
from service.store.keys import Keys
from service.store.metrics import MetricsStore, PerfRow
from service.store.scripts import Scripts
from service.store.seen_ids import (
    ENTRY_CHARS,
    LOAD,
    SEEN_SECONDS,
    address,
    legacy_fingerprint,
    legacy_generation_starts,
)

pytestmark = pytest.mark.integration

NOW = float(int(time.time()))


def row(event_id: str) -> PerfRow:
    return PerfRow(event_id, "a1", "web", "c1", int(NOW) - 60, 1, 0, 0, 0, 0, 0)


@pytest.fixture
def store(redis: Any, settings: Settings) -> MetricsStore:
    keys = Keys(settings.redis_key_prefix)
    return MetricsStore(redis, keys, Scripts.register(redis), settings.topic_asset_performance)


async def test_copies_across_batches_count_once_as_the_table_grows(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    rng = random.Random(11)
    await store.point(0, ["a1"])
    applied: list[str] = []
    copies = position = 0
    fresh = (f"event-{n}" for n in range(4_000))
    while len(applied) < 4_000:
        new = [next(fresh) for _ in range(min(4_000 - len(applied), rng.randrange(1, 300)))]
        old = rng.sample(applied, min(len(applied), rng.randrange(0, 30)))
        batch = [row(e) for e in new + old]
        rng.shuffle(batch)
        last = position + len(batch) - 1
        done = await store.apply(0, position, last, batch, NOW, expected=position - 1)
        assert (done.applied, done.duplicates) == (len(new), len(old))
        applied += new
        copies += len(old)
        position = last + 1
    counts = await store.counters(1)
    assert (counts.applied, counts.duplicates) == (4_000, copies)

    table = await redis.hgetall(Keys(settings.redis_key_prefix).perf_seen(0))
    buckets, entries = int(table.pop("n")), int(table.pop("c"))
    assert entries == 4_000
    assert 4_000 / LOAD <= buckets <= 2 * 4_000 / LOAD
    assert set(table) <= {str(b) for b in range(buckets)}
    stored = 0
    for bucket, value in table.items():
        assert len(value) % ENTRY_CHARS == 0
        for at in range(0, len(value), ENTRY_CHARS):
            number = sum(ord(ch) << (7 * i) for i, ch in enumerate(value[at : at + 4]))
            assert address(number, buckets) == int(bucket)
            stored += 1
    assert stored == 4_000
    ttl = await redis.ttl(Keys(settings.redis_key_prefix).perf_seen(0))
    assert SEEN_SECONDS - 60 < ttl <= SEEN_SECONDS + 6 * 3600


async def test_ids_in_the_sets_of_an_earlier_version_count_as_copies_while_they_live(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    older = keys.perf_ids(0, legacy_generation_starts(int(NOW))[1])
    await redis.sadd(older, legacy_fingerprint("e1"), legacy_fingerprint("e2"))
    await redis.expire(older, 3600)
    await store.point(0, ["a1"])
    done = await store.apply(0, 0, 2, [row("e1"), row("e3"), row("e2")], NOW)
    assert (done.applied, done.duplicates) == (1, 2)
    # Gone: nothing writes them any more, so the store stops asking once none lives.
    await redis.delete(older)
    done = await store.apply(0, 3, 3, [row("e4")], NOW, expected=2)
    assert (done.applied, done.duplicates) == (1, 0)
    await redis.sadd(older, legacy_fingerprint("e5"))
    done = await store.apply(0, 4, 4, [row("e5")], NOW, expected=3)
    assert (done.applied, done.duplicates) == (1, 0), "not asked again"
    assert (await store.counters(1)).applied == 3
