"""The floor: plain aiokafka reading and parsing the same events, and nothing else.

The consumer of the ceiling and the worker's decoding of every record (`decode` into
`AssetPerformance`, as `PerformanceHandler` does), but no handler and no Redis: how fast
a Python consumer on this machine can read and validate these events at all. The
worker's share of this rate says how much of its time goes to anything else (Redis, the
exactly-once step, Faust, the leader's timers).
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer

from bench.progress import Progress
from service.config import Settings
from service.domain.decoding import decode
from service.domain.events import AssetPerformance
from service.streaming.kafka_client import client_options


async def run_floor(settings: Settings, *, events: int, max_records: int) -> Progress:
    """Read the topic from the beginning in a group of its own until `events` were parsed."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        settings.topic_asset_performance,
        **client_options(settings),
        group_id=f"{settings.app_id}-floor",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    parsed, first_at, first_parsed = 0, None, 0
    try:
        while parsed < events:
            fetched = await consumer.getmany(timeout_ms=200, max_records=max_records)
            for records in fetched.values():
                for record in records:
                    decode(AssetPerformance, record, max_bytes=settings.max_message_bytes)
                parsed += len(records)
            if first_at is None and parsed:
                first_at, first_parsed = time.monotonic(), parsed
    finally:
        await consumer.stop()
    done = time.monotonic()
    return Progress(
        started=started,
        first_at=first_at if first_at is not None else done,
        first_applied=first_parsed,
        done_at=done,
        applied=parsed,
        duplicates=0,
        late=0,
    )
