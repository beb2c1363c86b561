"""A steady mixed stream (registrations and performance events) and its ground truth.

The truth comes from the events themselves: which assets were registered in which
library with which size, and what each asset's performance events add up to.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from service.config import Settings
from service.domain.metrics import METRICS
from service.domain.windows import Window
from service.store.keys import Keys
from service.store.metrics import MetricsStore
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from service.streaming.kafka_client import client_options
from tests.unit.factories import registration_body, sha

CHANNELS = ["email", "web", "social", "display", "search", "video"]


@dataclass
class Workload:
    """`registrations` assets in one library, and `events` performance events over them."""

    registrations: int
    events: int
    seed: int
    library: str = "lib"
    records: list[tuple[str, str, bytes]] = field(default_factory=list)  # (topic role, key, value)
    sums: dict[str, dict[str, int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        now = time.time()
        sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
        per_registration = max(1, self.events // max(1, self.registrations))
        n = 0
        for i in range(self.registrations):
            asset = f"w{self.seed}-{i}"
            size = 1_000 + rng.randint(0, 10**6)
            self.sizes[asset] = size
            body = registration_body(
                asset, library_id=self.library, file_size_bytes=size, content_sha256=sha(i)
            )
            self.records.append(("reg", asset, json.dumps(body).encode()))
            for _ in range(per_registration):
                if n >= self.events:
                    break
                target = f"w{self.seed}-{rng.randint(0, i)}"
                event = {
                    "event_id": f"pe-{self.seed}-{n}",
                    "occurred_at": datetime.fromtimestamp(
                        now - rng.uniform(0, 2 * 86400), UTC
                    ).isoformat(),
                    "asset_id": target,
                    "campaign_id": f"c{rng.randint(1, 4)}",
                    "channel": rng.choice(CHANNELS),
                    "impressions": rng.randint(1, 50),
                    "clicks": rng.randint(0, 3),
                    "conversions": rng.randint(0, 1),
                }
                for metric in METRICS:
                    sums[target][metric] += int(event.get(metric, 0))  # type: ignore[call-overload]
                self.records.append(("perf", target, json.dumps(event).encode()))
                n += 1
        self.sums = dict(sums)

    async def produce(self, settings: Settings, per_second: float) -> None:
        """Produce every record at about `per_second` records a second."""
        topics = {"reg": settings.topic_asset_registered, "perf": settings.topic_asset_performance}
        producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=10)
        await producer.start()
        started = time.monotonic()
        try:
            for n, (role, key, value) in enumerate(self.records):
                await producer.send(topics[role], value, key=key.encode())
                if n % 200 == 199:
                    await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
            await producer.flush()
        finally:
            await producer.stop()


class Truth:
    """Reads what the service holds in Redis and compares it with a workload."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        keys = Keys(settings.redis_key_prefix)
        scripts = Scripts.register(redis)
        self.settings = settings
        self.metrics = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
        self.registry = RegistryStore(redis, keys, scripts, settings.seen_event_ttl_seconds)

    async def applied(self) -> int:
        return (await self.metrics.counters(self.settings.topic_partitions)).applied

    async def registered(self, workload: Workload) -> int:
        stats = await self.registry.library_stats(workload.library)
        return 0 if stats is None else stats.asset_count

    async def complete(self, workload: Workload) -> bool:
        return (
            await self.applied() >= workload.events
            and await self.registered(workload) >= workload.registrations
        )

    async def differences(self, workload: Workload) -> list[str]:
        """Every way in which Redis differs from the workload (empty when exact)."""
        problems = []
        counters = await self.metrics.counters(self.settings.topic_partitions)
        if counters.applied != workload.events:
            problems.append(f"applied {counters.applied} events, expected {workload.events}")
        now = time.time()
        wrong = []
        for asset, want in workload.sums.items():
            got = await self.metrics.totals(asset, Window.LIFETIME, now)
            if got is None or {m: getattr(got, m) for m in METRICS} != want:
                wrong.append((asset, got, want))
        if wrong:
            problems.append(f"{len(wrong)} assets' lifetime sums differ, e.g. {wrong[:2]}")
        stats = await self.registry.library_stats(workload.library)
        count = 0 if stats is None else stats.asset_count
        total = 0 if stats is None else stats.total_bytes
        if count != workload.registrations or total != sum(workload.sizes.values()):
            problems.append(
                f"library holds {count} assets of {total} bytes, expected "
                f"{workload.registrations} of {sum(workload.sizes.values())}"
            )
        states = await self.registry.assets(list(workload.sizes))
        missing = set(workload.sizes) - {s.asset_id for s in states if s.asset is not None}
        if missing:
            problems.append(f"{len(missing)} registrations missing, e.g. {sorted(missing)[:3]}")
        return problems
