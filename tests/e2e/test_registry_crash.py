"""SIGKILL a worker mid-stream, repeatedly: every library statistic still equals the events."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

ASSETS = 1200
LIBRARIES = ["lib-0", "lib-1", "lib-2"]
KILLS = 3


def plan() -> tuple[list[tuple[str, str, bytes]], dict[str, dict[str, Any]]]:
    """The messages to produce, and the expected statistics of each library."""
    messages: list[tuple[str, str, bytes]] = []
    final: dict[str, tuple[str, int, str]] = {}
    for i in range(ASSETS):
        asset = f"asset-{i:05d}"
        library, size = LIBRARIES[i % 3], 1_000 + i
        body = registration_body(
            asset, library_id=library, file_size_bytes=size, content_sha256=sha(i % 400)
        )
        messages.append(("reg", asset, json.dumps(body).encode()))
        if i % 4 == 0:  # re-registered into another library, with another size
            library, size = LIBRARIES[(i + 1) % 3], 2_000 + i
            body = registration_body(
                asset, library_id=library, file_size_bytes=size, content_sha256=sha(i % 400)
            )
            messages.append(("reg", asset, json.dumps(body).encode()))
        status = "draft"
        if i % 5 == 0:
            messages.append(("life", asset, _life(asset, "approved", f"ap-{i}")))
            status = "approved"
        if i % 10 == 5:  # never re-registered (odd), so deletion is the last word
            messages.append(("life", asset, _life(asset, "deleted", f"del-{i}")))
            status = "deleted"
        final[asset] = (library, size, status)

    expected: dict[str, dict[str, Any]] = {}
    for library in LIBRARIES:
        live = [(s, st) for lib, s, st in final.values() if lib == library and st != "deleted"]
        statuses = Counter(st for _, st in live)
        expected[library] = {
            "asset_count": len(live),
            "total_bytes": sum(s for s, _ in live),
            "by_status": {
                st: statuses.get(st, 0) for st in ("draft", "approved", "published", "archived")
            },
        }
    return messages, expected


def _life(asset: str, action: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": "2026-03-01T13:00:00Z",
            "asset_id": asset,
            "action": action,
        }
    ).encode()


async def test_sigkill_mid_stream_never_counts_twice(stack: dict[str, str], spawn: Spawn) -> None:
    env = isolated_env(
        stack,
        web_port=free_port(),
        kafka_session_timeout_seconds=6,
        kafka_heartbeat_interval_seconds=1,
        kafka_commit_interval_seconds=0.5,
    )
    settings = settings_from(env)
    messages, expected = plan()
    rng = random.Random(11)

    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5)
    worker = spawn(env)
    await worker.wait_ready()
    await producer.start()
    try:
        topics = {"reg": settings.topic_asset_registered, "life": settings.topic_asset_lifecycle}
        for kind, key, value in messages:
            await producer.send(topics[kind], value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()

    async def progress() -> int:
        total = 0
        for library in LIBRARIES:
            status, body = await worker.get(f"/v1/libraries/{library}/stats")
            total += body["asset_count"] if status == 200 else 0
        return total

    total = sum(want["asset_count"] for want in expected.values())
    seen_at_kill = []
    for _ in range(KILLS):
        await eventually(progress, seconds=90, every=0.1)
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        seen_at_kill.append(await progress())
        worker.kill()
        worker.start()
        await worker.wait_ready()

    async def settled() -> bool:
        for library, want in expected.items():
            status, body = await worker.get(f"/v1/libraries/{library}/stats")
            if status != 200 or body["asset_count"] != want["asset_count"]:
                return False
            if body["by_status"] != want["by_status"]:
                return False
        return True

    # The kills must land while the stream is being processed, or the test proves nothing.
    assert any(0 < seen < total for seen in seen_at_kill), (seen_at_kill, total)
    try:
        await eventually(settled, seconds=180, every=1)
    finally:
        for library, want in expected.items():
            _, body = await worker.get(f"/v1/libraries/{library}/stats")
            got = {k: body.get(k) for k in want}
            assert got == want, f"{library}: {got} != {want}\n{worker.log()}"
    assert worker.log().count("Traceback") == 0, worker.log()
    worker.stop()
