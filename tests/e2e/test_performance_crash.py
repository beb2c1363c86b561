"""Performance events under fire: SIGKILL and a lost group member never change a counter."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.config import Settings
from service.domain.metrics import METRICS
from service.domain.windows import Window
from service.store.client import connect
from service.store.keys import Keys
from service.store.metrics import MetricsStore
from service.store.scripts import Scripts
from service.streaming.kafka_client import client_options
from tests.conftest import admin_settings, isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.secure, pytest.mark.cluster]

CHANNELS = ["email", "web", "social", "display", "search", "video", "other"]


def events(count: int, assets: int, seed: int) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """`count` events (with some re-sent copies) and the lifetime sums they must produce."""
    rng = random.Random(seed)
    now = time.time()
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    out: list[tuple[str, bytes]] = []
    for n in range(count):
        asset = f"p{n % assets}"
        body = {
            "event_id": f"ev-{seed}-{n}",
            "occurred_at": datetime.fromtimestamp(now - rng.uniform(0, 3 * 86400), UTC).isoformat(),
            "asset_id": asset,
            "campaign_id": f"c{rng.randint(1, 5)}",
            "channel": rng.choice(CHANNELS),
            "impressions": rng.randint(1, 50),
            "clicks": rng.randint(0, 3),
            "engagements": rng.randint(0, 2),
        }
        value = json.dumps(body).encode()
        out.append((asset, value))
        for metric in METRICS:
            sums[asset][metric] += int(body.get(metric, 0))  # type: ignore[call-overload]
        if n % 997 == 0:
            out.append((asset, value))  # the producer retried: the same event again
    return out, sums


async def produce(
    settings: Settings, records: list[tuple[str, bytes]], per_second: float | None = None
) -> None:
    """Produce the records, at most `per_second` of them a second when given."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=20)
    await producer.start()
    started = time.monotonic()
    try:
        for n, (key, value) in enumerate(records):
            await producer.send(settings.topic_asset_performance, value, key=key.encode())
            if per_second and n % 1000 == 999:
                await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()


async def applied(store: MetricsStore, settings: Settings) -> int:
    return (await store.counters(settings.topic_partitions)).applied


async def assert_every_bucket_expires(settings: Settings) -> None:
    """No bucket hash was left without its expiry (a worker leaves out the EXPIREAT of a
    bucket it set it on while no other writer came between)."""
    keys = Keys(settings.redis_key_prefix)
    admin = connect(admin_settings(settings))  # the service's user may not SCAN
    try:
        buckets, lasting = 0, []
        for partition in range(settings.topic_partitions):
            pattern = f"{keys.perf_prefix(partition)}b:*"
            async for key in admin.scan_iter(match=pattern, count=1_000):
                buckets += 1
                if await admin.ttl(key) < 0:
                    lasting.append(key)
        assert buckets and not lasting, f"{len(lasting)} of {buckets} buckets never expire"
    finally:
        await admin.aclose()


async def assert_lifetime_sums(store: MetricsStore, sums: dict[str, Any]) -> None:
    now = time.time()
    wrong = {}
    for asset, want in sums.items():
        got = await store.totals(asset, Window.LIFETIME, now)
        if got is None or {m: getattr(got, m) for m in METRICS} != want:
            wrong[asset] = (got, want)
    assert not wrong, f"{len(wrong)} assets differ, e.g. {list(wrong.items())[:3]}"


def metrics_store(redis: Any, settings: Settings) -> MetricsStore:
    keys = Keys(settings.redis_key_prefix)
    return MetricsStore(redis, keys, Scripts.register(redis), settings.topic_asset_performance)


def crash_env(stack: dict[str, str]) -> dict[str, str]:
    return isolated_env(
        stack,
        web_port=free_port(),
        kafka_session_timeout_seconds=6,
        kafka_heartbeat_interval_seconds=1,
        kafka_commit_interval_seconds=0.5,
    )


async def test_sigkill_three_times_keeps_every_counter_exact(
    stack: dict[str, str], spawn: Spawn
) -> None:
    env = crash_env(stack)
    settings = settings_from(env)
    records, sums = events(120_000, 2_000, seed=1)
    unique = 120_000
    redis = connect(settings)
    store = metrics_store(redis, settings)
    worker = spawn(env)
    await worker.wait_ready()
    # A steady stream for a while, so that every kill lands in the middle of it.
    producing = asyncio.create_task(produce(settings, records, per_second=8_000))
    rng = random.Random(5)
    at_kill = []
    try:
        for _ in range(3):
            await eventually(lambda: applied(store, settings), seconds=120, every=0.05)
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            at_kill.append(await applied(store, settings))
            worker.kill()
            worker.start()
            await worker.wait_ready()
        await producing

        async def complete() -> bool:
            return await applied(store, settings) >= unique

        await eventually(complete, seconds=240, every=0.5)
        await asyncio.sleep(2)  # anything extra would show now
        counters = await store.counters(settings.topic_partitions)
        assert counters.applied == unique, counters
        assert counters.duplicates == len(records) - unique
        assert any(0 < n < unique for n in at_kill), at_kill
        await assert_lifetime_sums(store, sums)
        await assert_every_bucket_expires(settings)
        assert "Traceback" not in worker.log(), worker.log()
    finally:
        await redis.aclose()
        worker.stop()


async def test_group_member_killed_mid_stream(stack: dict[str, str], spawn: Spawn) -> None:
    env = crash_env(stack)
    settings = settings_from(env)
    records, sums = events(100_000, 1_000, seed=2)
    unique = 100_000
    redis = connect(settings)
    store = metrics_store(redis, settings)
    first = spawn(env, "first")
    second = spawn({**env, "MEDIA_WEB_PORT": str(free_port())}, "second")
    await first.wait_ready()
    await second.wait_ready()
    try:
        await produce(settings, records)
        await eventually(lambda: applied(store, settings), seconds=120, every=0.05)
        before = await applied(store, settings)
        second.kill()  # its partitions move to the first worker after the session timeout

        async def complete() -> bool:
            return await applied(store, settings) >= unique

        await eventually(complete, seconds=240, every=0.5)
        await asyncio.sleep(2)
        counters = await store.counters(settings.topic_partitions)
        assert 0 < before < unique, before
        assert counters.applied == unique, counters
        await assert_lifetime_sums(store, sums)
        await assert_every_bucket_expires(settings)
    finally:
        await redis.aclose()
        first.stop()
