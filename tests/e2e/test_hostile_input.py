"""A generated corpus of malformed messages on every input topic, among good events.

Every bad message must end in the dead-letter topic with a reason code and a reason,
every good one must take effect exactly, and the worker must stay alive and healthy.
The corpus comes from hypothesis strategies (derandomized, so CI is repeatable); each
case is invalid by construction, whatever the limits the service chooses.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from service.domain.enums import DeadLetterReason
from service.domain.events import DeadLetter
from service.store.client import connect
from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, read_topic, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port
from tests.e2e.workload import Truth, Workload
from tests.unit.factories import registration_body

pytestmark = pytest.mark.e2e

MAX_BYTES = 8192
BAD_PER_TOPIC = 30

Case = tuple[bytes | None, bytes | None]  # (key, value)

# Values no count, size or identifier may take.
NOT_A_COUNT = [True, False, "5", 5.5, -1, 10**25, 2**64, None, [], {}, "NaN"]
NOT_AN_ID = ["", " ", "a b", "x" * 200, 5, None, [], "\ud800", "ä/../x"]
NOT_A_TIME = ["yesterday", "2026-13-01T00:00:00Z", 5, "2026-03-01T12:00:00", None, ""]


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8", "surrogatepass")


def hostile(
    valid: dict[str, Any], counts: list[str], key_field: str = "asset_id"
) -> st.SearchStrategy[Case]:
    """Malformed variants of one valid event (whose key is its `key_field`)."""
    key = str(valid[key_field]).encode()
    text = json.dumps(valid)

    def mutate(field: str, pool: list[Any]) -> st.SearchStrategy[Case]:
        return st.sampled_from(pool).map(lambda v: (key, _dumps({**valid, field: v})))

    def literal(field: str) -> st.SearchStrategy[Case]:
        """A number JSON or Python cannot take: thousands of digits, NaN, Infinity, 1e999."""
        forms = st.one_of(
            st.integers(4_400, 6_000).map(lambda n: "9" * n),
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0.0e-999999"]),
        )
        return forms.map(
            lambda v: (
                key,
                text.replace(f'"{field}": {json.dumps(valid[field])}', f'"{field}": {v}').encode(),
            )
        )

    count_cases = [mutate(c, NOT_A_COUNT) for c in counts] + [literal(c) for c in counts]
    return st.one_of(
        st.binary(max_size=200).filter(lambda b: b.strip()[:1] != b"{").map(lambda b: (key, b)),
        st.integers(200, 5_000).map(lambda n: (key, b"[" * n + b"]" * n)),
        st.integers(200, 5_000).map(lambda n: (key, b'{"a":' * n + b"1" + b"}" * n)),
        st.just((key, b"\xff" + text.encode())),
        st.just((key, text.replace(f'"{key_field}": "', f'"{key_field}": "\\ud800').encode())),
        st.just((key, text.encode() + b" " * MAX_BYTES)),
        st.just((key, None)),
        st.just((key, b"")),
        st.just((key, b"null")),
        st.just((key, _dumps({**valid, "schema_version": 2}))),
        st.just((key, _dumps({**valid, "surprise": 1}))),
        st.just((None, text.encode())),
        st.just((b"k" * 100_000, text.encode())),
        st.just((b"\xff\xfe", text.encode())),
        mutate("event_id", ["", "x" * 200, 5, None, []]),
        mutate("occurred_at", NOT_A_TIME),
        mutate(key_field, NOT_AN_ID),
        *count_cases,
    )


def corpus(strategy: st.SearchStrategy[Case], size: int) -> list[Case]:
    """`size` distinct cases, drawn the same way on every run."""
    drawn: dict[Case, None] = {}

    @settings(
        max_examples=size * 4,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def draw(case: Case) -> None:
        drawn.setdefault(case, None)

    draw()
    return list(drawn)[:size]


def lifecycle(asset: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"life-{n}",
        "occurred_at": "2026-03-01T13:00:00+00:00",
        "asset_id": asset,
        "action": "approved",
        "actor": "reviewer@example.com",
    }


def library(n: int) -> dict[str, Any]:
    return {
        "event_id": f"lib-{n}",
        "occurred_at": "2026-03-01T13:00:00+00:00",
        "library_id": f"lib-{n}",
        "name": "Brand",
        "owner": "brand@example.com",
    }


def feedback(asset: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"fb-{n}",
        "occurred_at": "2026-03-01T13:00:00+00:00",
        "suggestion_id": f"nobody-sent-{n}",
        "asset_id": asset,
        "outcome": "dismissed",
    }


async def test_every_malformed_message_is_dead_lettered_and_the_good_ones_count(
    stack: dict[str, str], spawn: Spawn
) -> None:
    env = isolated_env(stack, web_port=free_port(), max_message_bytes=MAX_BYTES)
    config = settings_from(env)
    good = Workload(registrations=60, events=600, seed=21)
    assets = list(good.sizes)
    perf_sample = json.loads(next(v for role, _, v in good.records if role == "perf"))
    reg_sample = registration_body(assets[0], library_id=good.library)
    shapes: dict[str, tuple[dict[str, Any], list[str], str]] = {
        config.topic_asset_registered: (
            reg_sample,
            ["file_size_bytes", "width", "height"],
            "asset_id",
        ),
        config.topic_asset_performance: (
            perf_sample,
            ["impressions", "clicks", "conversions"],
            "asset_id",
        ),
        config.topic_asset_lifecycle: (lifecycle(assets[0], 0), [], "asset_id"),
        config.topic_suggestion_feedback: (feedback(assets[0], 0), [], "asset_id"),
        config.topic_library_updated: (library(0), [], "library_id"),
    }
    bad = {
        topic: corpus(hostile(valid, counts, key_field), BAD_PER_TOPIC)
        for topic, (valid, counts, key_field) in shapes.items()
    }

    # Good records of every topic, in the order a real producer would send them, and the
    # bad ones scattered among them: (topic, key, value, bad).
    topics = {"reg": config.topic_asset_registered, "perf": config.topic_asset_performance}
    records: list[tuple[str, bytes | None, bytes | None, bool]] = [
        (topics[role], key.encode(), value, False) for role, key, value in good.records
    ]
    approved = assets[::3]
    for n, asset in enumerate(approved):
        records.append(
            (config.topic_asset_lifecycle, asset.encode(), _dumps(lifecycle(asset, n)), False)
        )
    for n in range(5):  # valid library facts: applied, no dead letter
        records.append(
            (config.topic_library_updated, f"lib-{n}".encode(), _dumps(library(n)), False)
        )
    for n, asset in enumerate(assets[:10]):  # valid, but naming no suggestion: dead letters
        records.append(
            (config.topic_suggestion_feedback, asset.encode(), _dumps(feedback(asset, n)), True)
        )
    rng = random.Random(3)
    for topic, cases in bad.items():
        for key, value in cases:
            records.insert(rng.randint(0, len(records)), (topic, key, value, True))

    worker = spawn(env)
    redis = connect(config)
    try:
        await worker.wait_ready()
        sent_bad: dict[tuple[str, int, int], Case] = {}
        stamps: dict[tuple[str, int, int], int] = {}  # the Kafka timestamp of each, ms
        producer = AIOKafkaProducer(**client_options(config), acks="all", max_request_size=2**20)
        await producer.start()
        try:
            for topic, key, value, is_bad in records:
                if is_bad:
                    # A Kafka timestamp of its own, which its dead letter must name.
                    stamp = 1_764_000_000_001 + 1_000_003 * len(stamps)
                    meta = await producer.send_and_wait(topic, value, key=key, timestamp_ms=stamp)
                    sent_bad[(topic, meta.partition, meta.offset)] = (key, value)
                    stamps[(topic, meta.partition, meta.offset)] = stamp
                else:
                    await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

        letters = await read_topic(config, config.topic_dead_letter, len(sent_bad), 90)
        parsed = [DeadLetter.model_validate_json(r.value) for r in letters]
        got = {(d.source_topic, d.source_partition, d.source_offset) for d in parsed}
        wrongly = [
            d.reason
            for d in parsed
            if (d.source_topic, d.source_partition, d.source_offset) not in sent_bad
        ]
        missed = [(k, (v or b"")[:200]) for c, (k, v) in sent_bad.items() if c not in got]
        assert got == set(sent_bad), (
            f"{len(missed)} bad messages without a dead letter, e.g. {missed[:3]}; "
            f"{len(got - set(sent_bad))} good ones dead-lettered, e.g. {wrongly[:3]}"
        )
        assert {
            (d.source_topic, d.source_partition, d.source_offset): d.source_timestamp_ms
            for d in parsed
        } == stamps
        for letter in parsed:
            assert letter.reason_code in set(DeadLetterReason)
            assert letter.reason.strip()
        assert max(len(d.model_dump_json()) for d in parsed) < 4 * MAX_BYTES + 16_384

        truth = Truth(redis, config)
        await eventually(lambda: truth.complete(good), seconds=60)
        assert await truth.differences(good) == []
        stats = await truth.registry.library_stats(good.library)
        assert stats is not None and stats.by_status.get("approved") == len(approved)  # type: ignore[call-overload]
        assert worker.process is not None and worker.process.poll() is None, worker.log()
        assert (await worker.get("/healthz"))[0] == 200
        status, facts = await worker.get("/v1/libraries/lib-4")
        assert status == 200 and facts["name"] == "Brand", facts
        assert "fetch loop died" not in worker.log()
    finally:
        await redis.aclose()
        assert worker.stop() == 0, worker.log()
