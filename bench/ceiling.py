"""The ceiling: the service's own batch handler behind a minimal aiokafka consumer.

Same decode, same pointer writes, same metrics step per partition batch
as the worker (the handler is built by `Runtime.build`, exactly as the worker
builds it), but no Faust: a plain consumer in its own group reads up to
`max_records` records per `getmany` and awaits the handler once per partition, in
order, before the next fetch, as `BatchingConsumer` does. Whatever the worker
does slower than this is the cost of running inside the service: Faust's consumer
path, and whatever else the worker's event loop does meanwhile (its timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.progress import Progress, wait_applied
from service import collector
from service.config import Settings
from service.handlers.performance import PerformanceHandler
from service.runtime import Runtime
from service.store.client import connect
from service.store.requirements import check_redis_requirements
from service.streaming.kafka_client import client_options


class KafkaPort:
    """The handlers' producer port (dead letters) on a plain aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        await self._producer.send_and_wait(topic, value, key=key)


async def consume(
    consumer: AIOKafkaConsumer,
    handler: PerformanceHandler,
    max_records: int,
    done: asyncio.Event,
) -> None:
    """Fetch, then apply each partition's records in offset order, until `done`.

    The records go to the handler as they come, like BatchingConsumer hands over
    Faust's messages (both fit `decoding.Record`)."""
    while not done.is_set():
        fetched = await consumer.getmany(timeout_ms=200, max_records=max_records)
        for tp, records in fetched.items():
            seek_to = await handler(tp.partition, records)
            if seek_to is not None:
                consumer.seek(tp, seek_to)


async def run_ceiling(settings: Settings, *, events: int, max_records: int) -> Progress:
    """Consume the topic from the beginning until Redis reflects `events` events."""
    started = time.monotonic()
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    # As `service worker` does before it builds its runtime (service/cli.py).
    checked = connect(settings)
    try:
        report = await check_redis_requirements(checked, settings)
    finally:
        await checked.aclose()
    runtime = Runtime.build(settings, KafkaPort(producer), evicts_nothing=report.evicts_nothing)
    consumer = AIOKafkaConsumer(
        settings.topic_asset_performance,
        **client_options(settings),
        group_id=settings.app_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # positions live in Redis, as in the worker
    )
    await producer.start()
    await consumer.start()
    done = asyncio.Event()
    loop = asyncio.create_task(consume(consumer, runtime.performance, max_records, done))

    def check() -> None:
        if loop.done():
            loop.result()  # raises the consumer's exception
            raise RuntimeError("the plain consumer stopped before every event was applied")

    try:
        with collector.tuned():  # as a worker's collector is (service/collector.py)
            return await wait_applied(
                runtime.metrics_store,
                partitions=settings.topic_partitions,
                target=events,
                started=started,
                check=check,
            )
    finally:
        done.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(loop, 10)
        loop.cancel()
        await consumer.stop()
        await producer.stop()
        await runtime.close()
