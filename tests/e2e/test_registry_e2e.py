"""End to end: a plain Kafka client produces, a real worker processes, the test reads back."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, read_topic, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import Worker, eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = [pytest.mark.e2e, pytest.mark.secure, pytest.mark.cluster]

H1, H2, H3 = sha(101), sha(102), sha(103)


@pytest.fixture
def env(stack: dict[str, str]) -> dict[str, str]:
    return isolated_env(
        stack,
        web_port=free_port(),
        lifecycle_hold_seconds=3,
        held_sweep_interval_seconds=1,
        max_message_bytes=2048,
    )


@pytest.fixture
def worker(env: dict[str, str], spawn: Spawn) -> Worker:
    return spawn(env)


@pytest.fixture
async def kafka(env: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**client_options(settings_from(env)), acks="all", linger_ms=5)
    await producer.start()
    yield producer
    await producer.stop()


def registered(asset_id: str, library_id: str, content: str, size: int, **extra: Any) -> bytes:
    body = registration_body(
        asset_id, library_id=library_id, content_sha256=content, file_size_bytes=size, **extra
    )
    return json.dumps(body).encode()


def life(
    asset_id: str,
    action: str,
    event_id: str,
    campaign: str | None = None,
    actor: str | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": "2026-03-01T13:00:00Z",
        "schema_version": 1,
        "asset_id": asset_id,
        "action": action,
    }
    if campaign:
        body["campaign_id"] = campaign
    if actor:
        body["actor"] = actor
    return json.dumps(body).encode()


def library(library_id: str, event_id: str, hour: str, name: str) -> bytes:
    body = {
        "event_id": event_id,
        "occurred_at": f"2026-03-01T{hour}:00Z",
        "library_id": library_id,
        "name": name,
        "owner": "brand-team",
    }
    return json.dumps(body).encode()


async def test_registry_end_to_end(
    env: dict[str, str], worker: Worker, kafka: AIOKafkaProducer
) -> None:
    settings = settings_from(env)
    await worker.wait_ready()
    reg, lc = settings.topic_asset_registered, settings.topic_asset_lifecycle

    a2 = registered("a2", "libB", H1, 2_000, tags=["Summer"])
    sent: dict[str, Any] = {}

    async def send(name: str, topic: str, key: bytes | None, value: bytes) -> None:
        sent[name] = await (await kafka.send(topic, value, key=key))

    await send("a1", reg, b"a1", registered("a1", "libA", H1, 1_000, tags=["Summer", "Sale"]))

    async def a1_known() -> bool:
        return (await worker.get("/v1/assets/a1"))[0] == 200

    # Partitions are processed concurrently: wait, so that a2 is the one repeating a1's content.
    await eventually(a1_known)
    await send("a2", reg, b"a2", a2)
    await send("a3", reg, b"a3", registered("a3", "libA", H2, 3_000, tags=["summer"]))
    await send("a2-again", reg, b"a2", a2)  # the producer retried: same event_id
    await send("a4-early", lc, b"a4", life("a4", "approved", "e-a4-approve"))
    await send(
        "a4", reg, b"a4", registered("a4", "libB", H3, 4_000, media_type="video", format="mp4")
    )
    await send("a1-approve", lc, b"a1", life("a1", "approved", "e-a1-approve", actor="ana"))
    await send("a1-publish", lc, b"a1", life("a1", "published", "e-a1-publish", "c1"))
    await send("a1-use", lc, b"a1", life("a1", "used", "e-a1-use", "c2"))
    await send("a3-archive", lc, b"a3", life("a3", "archived", "e-a3-archive"))
    await send("ghost", lc, b"ghost", life("ghost", "approved", "e-ghost"))
    # broken input
    await send("bad-json", reg, b"x", b'{"event_id": ')
    await send("bad-utf8", lc, b"x", b"\xc3\x28")
    bad_schema_bytes = registered("a9", "libA", "XYZ", 10)
    await send("bad-schema", reg, b"a9", bad_schema_bytes)
    await send(
        "bad-version", lc, b"a1", json.dumps({"schema_version": 2, "event_id": "v2"}).encode()
    )
    await send("oversize", reg, b"a1", b'{"pad": "' + b"x" * 3000 + b'"}')
    await send("bad-key", reg, b"not-a5", registered("a5", "libA", H2, 10))
    await send("self-variant", reg, b"a7", registered("a7", "libA", H2, 10, variant_of="a7"))
    # libraries: the newer facts arrive first; a library with facts and no asset; bad input
    libs = settings.topic_library_updated
    await send("libA-new", libs, b"libA", library("libA", "lib-2", "12:00", "Brand"))
    await send("libA-old", libs, b"libA", library("libA", "lib-1", "11:00", "Old name"))
    await send("libC", libs, b"libC", library("libC", "lib-3", "11:00", "Empty"))
    await send("bad-library", libs, b"libC", b'{"event_id": "lib-4", "library_id": "libC"}')
    await kafka.flush()

    # --- the API reflects every applied event --------------------------------------
    async def a1_published() -> Any:
        status, body = await worker.get("/v1/assets/a1")
        return status == 200 and body["status"] == "published" and body["usage_count"] == 2 and body

    a1 = await eventually(a1_published)
    assert a1["campaigns_used_in"] == ["c1", "c2"]
    assert a1["tags"] == ["summer", "sale"]

    async def stats(library: str) -> dict[str, Any]:
        status, body = await worker.get(f"/v1/libraries/{library}/stats")
        return body if status == 200 else {}

    async def libraries_settled() -> bool:
        b = await stats("libB")
        return bool(b) and b["by_status"]["approved"] == 1

    await eventually(libraries_settled)
    # --- history: every applied change, newest first; re-sent and rejected ones absent --
    status, history = await worker.get("/v1/assets/a1/history?limit=3")
    assert status == 200
    assert [
        (i["action"], i["from_status"], i["to_status"], i["campaign_id"], i["actor"])
        for i in history["items"]
    ] == [
        ("used", "published", "published", "c2", None),
        ("published", "approved", "published", "c1", None),
        ("approved", "draft", "approved", None, "ana"),
    ]
    assert history["items"][2]["event_id"] == "e-a1-approve"
    status, rest = await worker.get(f"/v1/assets/a1/history?cursor={history['next_cursor']}")
    assert [(i["action"], i["library_id"]) for i in rest["items"]] == [("registered", "libA")]
    assert rest["next_cursor"] is None

    # --- libraries: newest facts win; libraries known only from assets listed too -----
    async def libraries() -> Any:
        status, body = await worker.get("/v1/libraries")
        names = {i["library_id"]: i["name"] for i in body.get("items", [])}
        return status == 200 and names.get("libC") == "Empty" and names.get("libA") and body

    listed = await eventually(libraries)
    assert [(i["library_id"], i["name"], i["asset_count"]) for i in listed["items"]] == [
        ("libA", "Brand", 2),
        ("libB", None, 2),
        ("libC", "Empty", 0),
    ]
    status, lib_c = await worker.get("/v1/libraries/libC")
    assert status == 200 and lib_c["owner"] == "brand-team" and lib_c["total_bytes"] == 0
    status, page = await worker.get("/v1/libraries?limit=1&cursor=libA")
    assert [i["library_id"] for i in page["items"]] == ["libB"] and page["next_cursor"] == "libB"

    # --- most used: a1 was published and used, the others never -----------------------
    # (the projection follows the state the asset route shows: wait for it)
    async def most_used() -> Any:
        status, top = await worker.get("/v1/libraries/libA/top?metric=usage")
        ranked = [(i["rank"], i["asset_id"], i["usage_count"]) for i in top.get("items", [])]
        return status == 200 and ranked == [(1, "a1", 2)] and top

    top = await eventually(most_used)
    assert top["metric"] == "usage" and top["min_impressions"] == 0
    for asset_id, actions in [
        ("a4", ["approved", "registered"]),  # held, then applied after its registration
        ("a3", ["registered"]),  # its archive was an invalid transition
        ("a2", ["registered"]),  # sent twice, applied once
    ]:
        status, body = await worker.get(f"/v1/assets/{asset_id}/history")
        assert [i["action"] for i in body["items"]] == actions, (asset_id, body)
    lib_a, lib_b = await stats("libA"), await stats("libB")
    assert (lib_a["asset_count"], lib_a["total_bytes"]) == (2, 4_000)
    assert lib_a["by_status"] == {"draft": 1, "approved": 0, "published": 1, "archived": 0}
    assert (lib_b["asset_count"], lib_b["total_bytes"]) == (2, 6_000)
    assert lib_b["by_media_type"]["video"] == 1 and lib_b["by_media_type"]["image"] == 1

    status, body = await worker.get("/v1/libraries/libA/assets?tag=Summer")
    assert status == 200 and [a["asset_id"] for a in body["items"]] == ["a1", "a3"]
    status, body = await worker.get("/v1/libraries/libA/assets?tag=summer&status=published")
    assert [a["asset_id"] for a in body["items"]] == ["a1"]
    status, page1 = await worker.get("/v1/libraries/libA/assets?limit=1")
    assert [a["asset_id"] for a in page1["items"]] == ["a1"] and page1["next_cursor"] == "a1"
    status, page2 = await worker.get("/v1/libraries/libA/assets?limit=1&cursor=a1")
    assert [a["asset_id"] for a in page2["items"]] == ["a3"]
    table = await worker.get_text("/v1/libraries/libA/assets", headers={"Accept": "text/csv"})
    header, *rows = [line.split(",") for line in table.strip().splitlines()]
    assert header[0] == "asset_id" and [r[0] for r in rows] == ["a1", "a3"]
    status, body = await worker.get("/v1/libraries/libA/assets?q=HERO%20sa")
    assert status == 200 and [a["asset_id"] for a in body["items"]] == ["a1"]
    status, body = await worker.get("/v1/libraries/libA/assets?q=summ&status=draft")
    assert [a["asset_id"] for a in body["items"]] == ["a3"]

    status, dup = await worker.get(f"/v1/duplicates/{H1}")
    assert status == 200
    assert dup["assets"] == [
        {"asset_id": "a1", "library_id": "libA"},
        {"asset_id": "a2", "library_id": "libB"},
    ]

    for path, expected in [
        ("/v1/assets/nope", 404),
        ("/v1/assets/ghost", 404),
        ("/v1/assets/nope/history", 404),
        ("/v1/assets/a1/history?cursor=x", 400),
        ("/v1/libraries/nope/stats", 404),
        ("/v1/libraries/nope", 404),
        ("/v1/libraries/nope/assets", 404),
        (f"/v1/duplicates/{sha(999)}", 404),
        ("/v1/duplicates/XYZ", 400),
        ("/v1/libraries/libA/assets?status=lost", 400),
        ("/v1/libraries/libA/assets?limit=0", 400),
        ("/v1/libraries/libA/assets?limit=ten", 400),
    ]:
        status, body = await worker.get(path)
        assert status == expected, (path, status, body)
        assert body["type"].startswith("/problems/") and body["detail"], (path, body)

    # --- one duplicates-detected event, exactly --------------------------------------
    detected = await read_topic(settings, settings.topic_duplicates_detected, 1, 5)
    assert [json.loads(r.value) | {"event_id": None, "occurred_at": None} for r in detected] == [
        {
            "event_id": None,
            "occurred_at": None,
            "schema_version": 1,
            "content_sha256": H1,
            "asset_id": "a2",
            "library_id": "libB",
            "registration_event_id": json.loads(a2)["event_id"],
            "duplicates": [{"asset_id": "a1", "library_id": "libA", "same_library": False}],
            "kind": "reuse",
        }
    ]

    # --- dead letters: each bad message once, with its bytes and an actionable reason --
    expected_letters = {
        "bad-json": "invalid_json",
        "bad-utf8": "invalid_utf8",
        "bad-schema": "schema_violation",
        "bad-version": "unsupported_schema_version",
        "oversize": "oversize",
        "bad-key": "key_mismatch",
        "bad-library": "schema_violation",
        "self-variant": "schema_violation",
        "a3-archive": "invalid_transition",
        "ghost": "registration_timeout",
    }
    records = await read_topic(settings, settings.topic_dead_letter, len(expected_letters), 30)
    letters = {
        (
            json.loads(r.value)["source_topic"],
            json.loads(r.value)["source_partition"],
            json.loads(r.value)["source_offset"],
        ): json.loads(r.value)
        for r in records
    }
    assert len(records) == len(expected_letters)
    for name, code in expected_letters.items():
        meta = sent[name]
        letter = letters[(meta.topic, meta.partition, meta.offset)]
        assert letter["reason_code"] == code, (name, letter)
        assert letter["reason"], name
    bad_schema = letters[
        (sent["bad-schema"].topic, sent["bad-schema"].partition, sent["bad-schema"].offset)
    ]
    assert "content_sha256" in bad_schema["reason"]
    assert base64.b64decode(bad_schema["value_base64"]) == bad_schema_bytes
    assert base64.b64decode(bad_schema["key_base64"]) == b"a9"

    status, counts = await worker.get("/v1/dead-letters/stats")
    assert counts["total"] == len(expected_letters)

    # --- Ctrl-C stops the worker cleanly ---------------------------------------------
    assert worker.stop(signal.SIGINT) == 0, worker.log()
    assert "Traceback" not in worker.log()
