"""A Redis restart under a running worker: the worker waits, retries, and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess

import pytest
from aiokafka import AIOKafkaProducer
from redis.exceptions import ConnectionError as RedisConnectionError

from service.store.client import connect
from service.streaming.kafka_client import client_options
from tests.conftest import ROOT, isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = pytest.mark.e2e

ASSETS = 600


async def test_worker_survives_a_redis_restart(stack: dict[str, str], spawn: Spawn) -> None:
    if not (ROOT / ".stack" / "redis.pid").exists():
        pytest.fail("this test restarts the local stack's Redis: run it under `make test`")
    env = isolated_env(stack, web_port=free_port(), redis_retry_max_seconds=0.5)
    settings = settings_from(env)
    worker = spawn(env)
    await worker.wait_ready()

    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for i in range(ASSETS):
            body = registration_body(
                f"a{i}", library_id="lib", file_size_bytes=10 + i, content_sha256=sha(i)
            )
            await producer.send(
                settings.topic_asset_registered, json.dumps(body).encode(), key=f"a{i}".encode()
            )
        await producer.flush()
    finally:
        await producer.stop()

    async def count() -> int:
        status, body = await worker.get("/v1/libraries/lib/stats")
        return int(body["asset_count"]) if status == 200 else 0

    await eventually(count, every=0.05)
    redis = connect(settings)
    before = await count()
    with contextlib.suppress(RedisConnectionError):
        await redis.shutdown()  # a clean restart: Redis writes its append-only file first
    await redis.aclose()
    assert before < ASSETS, "Redis must go away while the worker is mid-stream"
    status, body = await worker.get("/v1/libraries/lib/stats")
    assert status == 503 and body["type"] == "/problems/unavailable"
    await asyncio.sleep(2)
    await asyncio.to_thread(
        subprocess.run, [str(ROOT / "deploy" / "stack.sh"), "up"], check=True, capture_output=True
    )

    async def complete() -> bool:
        return await count() == ASSETS

    await eventually(complete, seconds=120)
    _, stats = await worker.get("/v1/libraries/lib/stats")
    assert stats["total_bytes"] == sum(10 + i for i in range(ASSETS))
    assert worker.process is not None and worker.process.poll() is None, worker.log()
    assert "paused, retrying" in worker.log()
    assert worker.stop() == 0, worker.log()
