"""One backend per run of the contract tests: the in-memory fakes, or the Redis stores.

Every test of tests/contract/ takes `backend` and runs twice: against tests/fakes.py
(no server needed) and against the real Redis of the local stack (marked integration).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from service.domain.metrics import METRICS
from service.handlers.ports import DeadLetterCounts, Positions
from service.store.codecs import decode_sums, encode_sums
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.leaderboards import LeaderboardStore
from service.store.metrics import MetricsStore
from service.store.positions import PositionStore
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from service.store.suggestions import SuggestionStore
from tests.fakes import (
    FakeDeadLetterCounters,
    FakeLeaderboardStore,
    FakeMetricsStore,
    FakePositions,
    FakeRegistryStore,
    FakeSuggestionStore,
)

PERF_TOPIC = "perf"


@dataclass
class Backend:
    kind: str
    registry: Any  # RegistryWrites and AssetReads, and the reads library_stats and duplicates
    metrics: Any  # MetricsWrites and MetricsReads, and the reads totals and window_totals
    positions: Positions
    counters: DeadLetterCounts
    boards: Any  # BoardWrites, and the read entries
    suggestions: Any  # SuggestionRecords, and the reads for_asset, for_library and realised
    # Redis that lost writes: a position set back by hand.
    set_input_position: Callable[[str, int, int], Awaitable[None]]
    set_perf_position: Callable[[int, int], Awaitable[None]]
    # A counter near the limit: (partition, asset, "ch:<channel>:<metric>", value).
    set_lifetime: Callable[[int, str, str, int], Awaitable[None]]


def _fake() -> Backend:
    metrics, positions = FakeMetricsStore(), FakePositions()

    async def set_input_position(topic: str, partition: int, value: int) -> None:
        positions.positions[(topic, partition)] = value

    async def set_perf_position(partition: int, value: int) -> None:
        metrics.positions[partition] = value

    async def set_lifetime(partition: int, asset_id: str, name: str, value: int) -> None:
        dimension, _, metric = name.rpartition(":")
        counts = metrics.lifetime[(partition, asset_id)].setdefault(dimension, [0] * 6)
        counts[METRICS.index(metric)] = value

    return Backend(
        "fake",
        FakeRegistryStore(),
        metrics,
        positions,
        FakeDeadLetterCounters(),
        FakeLeaderboardStore(metrics),
        FakeSuggestionStore(),
        set_input_position,
        set_perf_position,
        set_lifetime,
    )


def _redis(redis: Any, prefix: str, seen_ttl: int) -> Backend:
    keys = Keys(prefix)
    scripts = Scripts.register(redis)

    async def set_input_position(topic: str, partition: int, value: int) -> None:
        await redis.set(keys.input_position(topic, partition), value)

    async def set_perf_position(partition: int, value: int) -> None:
        await redis.set(keys.perf_position(partition, PERF_TOPIC), value)

    async def set_lifetime(partition: int, asset_id: str, name: str, value: int) -> None:
        dimension, _, metric = name.rpartition(":")
        key = keys.perf_lifetime(partition)
        sums = decode_sums(await redis.hget(key, asset_id))
        sums.setdefault(dimension, [0] * 6)[METRICS.index(metric)] = value
        await redis.hset(key, asset_id, encode_sums(sums))

    return Backend(
        "redis",
        RegistryStore(redis, keys, scripts, seen_ttl),
        MetricsStore(redis, keys, scripts, PERF_TOPIC),
        PositionStore(redis, keys, scripts),
        DeadLetterCounters(redis, keys, scripts, 3600),
        LeaderboardStore(redis, keys, scripts),
        SuggestionStore(redis, keys),
        set_input_position,
        set_perf_position,
        set_lifetime,
    )


@pytest.fixture(params=["fake", pytest.param("redis", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        return _fake()
    redis = request.getfixturevalue("redis")  # the stack's Redis, keys removed after the test
    settings = request.getfixturevalue("settings")
    return _redis(redis, settings.redis_key_prefix, settings.seen_event_ttl_seconds)
