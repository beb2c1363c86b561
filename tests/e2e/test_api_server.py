"""End to end: `service api` serves the worker's routes from a process of its own.

It reads the same Redis (its answers equal the worker's), takes manual suggestions
through its own producer, joins no consumer group (it stays ready and keeps answering
with no worker running), and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.test_refresher_e2e import perf, register, send
from tests.e2e.worker import Worker, eventually, free_port
from tests.unit.factories import manual_suggestion_body

pytestmark = pytest.mark.e2e

TOKEN = "e2e-api-server-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = (
    "/v1/assets/a1",
    "/v1/assets/a1/metrics?window=24h",
    "/v1/assets/a2/metrics?window=lifetime&channel=email",
    "/v1/libraries/L1/stats",
    "/v1/campaigns/c1/metrics?window=24h",
)


def post_suggestion(server: Worker, asset_id: str) -> tuple[int, Any]:
    body = manual_suggestion_body("manual-api-server-1")
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/v1/assets/{asset_id}/suggestions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


async def group_members(env: dict[str, str]) -> int:
    settings = settings_from(env)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        (group,) = await admin.describe_consumer_groups([settings.app_id])
        return len(group.groups[0][5]) if group.groups else 0  # (error, id, state, ..., members)
    finally:
        await admin.close()


async def test_the_api_server_answers_like_the_worker_without_consuming(
    stack: dict[str, str], spawn: Spawn
) -> None:
    env = isolated_env(
        stack, web_port=free_port(), api_token=TOKEN, leaderboard_refresh_seconds=0.5
    )
    settings = settings_from(env)
    worker = spawn(env)
    server = spawn({**env, "MEDIA_WEB_PORT": str(free_port())}, name="api", command="api")
    await worker.wait_ready()
    await server.wait_ready()

    await register(settings, "a1", "a2")
    await send(
        settings,
        settings.topic_asset_performance,
        [perf("e1", "a1", 1000, 40), perf("e2", "a2", 700, 7), perf("e3", "a1", 10, 1)],
    )

    async def counted_and_on_boards() -> Any:
        status, body = await server.get("/v1/assets/a1", AUTH)
        boards = await server.get("/v1/campaigns/c1/metrics?window=24h", AUTH)
        return status == 200 and body["lifetime"]["impressions"] == 1010 and boards[0] == 200

    await eventually(counted_and_on_boards)
    for route in ROUTES:
        answers = [await process.get(route, AUTH) for process in (worker, server)]
        assert answers[0] == answers[1], route
        assert answers[1][0] == 200, (route, answers[1])

    # Only the worker is a member of the consumer group.
    assert await group_members(env) == 1

    status, created = post_suggestion(server, "a1")
    assert status == 201 and created["origin"] == "manual"
    listed = await worker.get("/v1/assets/a1/suggestions", AUTH)
    assert [s["suggestion_id"] for s in listed[1]["items"]] == [created["suggestion_id"]]

    # With no worker at all, the server is still ready and still answers from Redis.
    assert worker.stop() == 0
    status, ready = await server.get("/readyz")
    assert (status, ready) == (200, {"status": "ready"})
    assert (await server.get("/healthz"))[0] == 200
    assert (await server.get("/v1/assets/a1", AUTH))[1]["lifetime"]["impressions"] == 1010

    assert server.stop(signal.SIGTERM) == 0
