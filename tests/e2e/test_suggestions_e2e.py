"""End to end: a registration yields suggestions on their topic, feedback closes one."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, read_topic, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = pytest.mark.e2e


async def test_suggestions_and_feedback_through_a_worker(
    stack: dict[str, str], spawn: Spawn
) -> None:
    env = isolated_env(stack, web_port=free_port())
    settings = settings_from(env)
    worker = spawn(env)
    await worker.wait_ready()
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        body = registration_body(
            "banner1",
            library_id="libS",
            content_sha256=sha(77),
            format="png",
            width=1200,
            height=600,  # 2:1: no display ratio
            file_size_bytes=400_000,
            intended_channels=["display"],
        )
        await producer.send_and_wait(
            settings.topic_asset_registered, json.dumps(body).encode(), key=b"banner1"
        )
        records = await read_topic(settings, settings.topic_optimization_suggestions, 2, 30)
        events = [json.loads(r.value) for r in records]
        assert sorted(e["type"] for e in events) == ["compress", "fix_aspect_ratio"]
        assert all(r.key == b"banner1" for r in records)
        compress = next(e for e in events if e["type"] == "compress")
        assert compress["channel"] == "display" and compress["priority"] == "high"
        assert all((e["revision"], e["state"]) == (1, "open") for e in events)

        feedback = {
            "event_id": "fb1",
            "occurred_at": datetime.now(UTC).isoformat(),
            "suggestion_id": compress["suggestion_id"],
            "asset_id": "banner1",
            "outcome": "dismissed",
        }
        await producer.send_and_wait(
            settings.topic_suggestion_feedback, json.dumps(feedback).encode(), key=b"banner1"
        )
        unknown = {**feedback, "event_id": "fb2", "suggestion_id": "sug-never-sent"}
        await producer.send_and_wait(
            settings.topic_suggestion_feedback, json.dumps(unknown).encode(), key=b"banner1"
        )
        records = await read_topic(settings, settings.topic_optimization_suggestions, 3, 30)
        closing = json.loads(records[2].value)
        assert (closing["suggestion_id"], closing["revision"], closing["state"]) == (
            compress["suggestion_id"],
            2,
            "dismissed",
        )
        assert closing["event_id"] != compress["event_id"]
        [dead] = await read_topic(settings, settings.topic_dead_letter, 1, 30)
        letter = json.loads(dead.value)
        assert letter["reason_code"] == "unknown_suggestion"
        assert "sug-never-sent" in letter["reason"]
        assert json.loads(base64.b64decode(letter["value_base64"])) == unknown
    finally:
        await producer.stop()

    async def dismissed() -> Any:
        status, body = await worker.get(f"/v1/suggestions/{compress['suggestion_id']}")
        return status == 200 and body["status"] == "dismissed" and body

    await eventually(dismissed)
    _, open_ones = await worker.get("/v1/assets/banner1/suggestions?status=open")
    assert [s["type"] for s in open_ones["items"]] == ["fix_aspect_ratio"]
    _, library = await worker.get("/v1/libraries/libS/suggestions?priority=high")
    assert {s["type"] for s in library["items"]} == {"compress", "fix_aspect_ratio"}
    assert worker.stop() == 0
