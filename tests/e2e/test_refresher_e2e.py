"""End to end: `service refresher` takes the board refresh off the workers, gives it back
when it stops, and only one of them refreshes at a time."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.config import Settings
from service.store.client import connect
from service.store.keys import Keys
from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import Worker, eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


async def send(settings: Settings, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for key, body in records:
            await producer.send(topic, json.dumps(body).encode(), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def perf(event_id: str, asset: str, impressions: int, clicks: int) -> tuple[str, dict[str, Any]]:
    occurred = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    body = {
        "event_id": event_id,
        "occurred_at": occurred,
        "asset_id": asset,
        "campaign_id": "c1",
        "channel": "email",
        "impressions": impressions,
        "clicks": clicks,
    }
    return asset, body


async def register(settings: Settings, *asset_ids: str) -> None:
    """Register the assets in library L1, each with content of its own."""
    await send(
        settings,
        settings.topic_asset_registered,
        [
            (a, registration_body(a, library_id="L1", content_sha256=sha(n)))
            for n, a in enumerate(asset_ids, 1)
        ],
    )


async def ctr_top(worker: Worker) -> tuple[int, list[tuple[str, float]]]:
    """L1's top assets by CTR over 24 h, as (asset_id, value), and the answer's status."""
    status, body = await worker.get("/v1/libraries/L1/top?metric=ctr&window=24h")
    return status, [(i["asset_id"], i["value"]) for i in body.get("items", [])]


async def test_the_refresher_process_takes_the_refresh_and_gives_it_back(
    stack: dict[str, str], spawn: Spawn
) -> None:
    env = isolated_env(stack, web_port=free_port(), leaderboard_refresh_seconds=0.5)
    settings = settings_from(env)
    redis = connect(settings)
    lease_key = Keys(settings.redis_key_prefix).boards_refresh_lease
    try:
        worker = spawn(env)
        refresher = spawn(env, name="refresher", command="refresher")
        await worker.wait_ready()

        async def refresher_holds() -> Any:
            holder = await redis.get(lease_key)
            return holder is not None and holder.startswith("refresher:") and holder

        holder = await eventually(refresher_holds)
        assert holder == f"refresher:{holder.split(':')[1]}:{refresher.pid}"

        await register(settings, "a1", "a2")
        await send(
            settings,
            settings.topic_asset_performance,
            [perf("p1", "a1", 1000, 50), perf("p2", "a2", 1000, 20)],
        )

        async def top(expected: list[tuple[str, float]]) -> Any:
            status, items = await ctr_top(worker)
            return status == 200 and items == expected and items

        await eventually(lambda: top([("a1", 0.05), ("a2", 0.02)]))

        async def refresher_ran() -> bool:
            # A run logs what it recomputed once it returns, a moment after its board writes.
            return "assets recomputed" in refresher.tail(20_000)

        await eventually(refresher_ran, seconds=10)

        async def worker_skips() -> bool:
            return "held by another process" in worker.log_path.read_text()

        await eventually(worker_skips)

        assert refresher.stop(signal.SIGTERM) == 0
        assert await redis.get(lease_key) is None, "given up on the way out"
        assert "refresher stopped" in refresher.tail(2_000)

        await send(settings, settings.topic_asset_performance, [perf("p3", "a2", 1000, 130)])
        await eventually(lambda: top([("a2", 0.075), ("a1", 0.05)]))
        assert "board refresh lease taken over" in worker.log_path.read_text()
    finally:
        await redis.aclose()
