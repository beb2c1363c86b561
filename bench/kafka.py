"""Kafka side of the benchmark: fast batch production, topic creation and deletion.

Production appends pre-encoded records straight into per-partition record
batches (`create_batch` / `send_batch`), which skips aiokafka's per-record
`send()` path: producing a million events then takes seconds, not a minute, and
the time to fill the topic is reported apart from every measurement.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bench.events import Encoded
from service.config import Settings
from service.streaming.kafka_client import client_options

BATCH_BYTES = 512 * 1024  # well below the broker's default 1 MiB message.max.bytes


@dataclass(frozen=True, slots=True)
class Produced:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """acks=all as the service's producer; large batches, sent as soon as they are closed."""
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=5,
        max_batch_size=BATCH_BYTES,
        max_request_size=2 * BATCH_BYTES,
    )


class BatchSender:
    """Appends encoded records to one open batch per partition and sends full ones."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._open: dict[int, Any] = {}
        self._pending: list[asyncio.Future[Any]] = []

    async def add(self, record: Encoded) -> None:
        partition, key, value = record
        batch = self._open.get(partition)
        if batch is None:
            batch = self._open[partition] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: now closed
            await self._send(partition, batch)
            batch = self._open[partition] = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)

    async def flush(self) -> None:
        """Send every open batch at once (closed, so the producer does not linger)."""
        open_batches, self._open = self._open, {}
        for partition, batch in open_batches.items():
            batch.close()
            await self._send(partition, batch)

    async def acknowledged(self) -> None:
        """Wait until Kafka acknowledged everything sent so far."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def _send(self, partition: int, batch: Any) -> None:
        future = await self._producer.send_batch(batch, self._topic, partition=partition)
        self._pending.append(future)
        if len(self._pending) > 256:  # keep the list short; the futures are done long ago
            self._pending = [f for f in self._pending if not f.done()]


async def produce(settings: Settings, topic: str, records: Iterable[Encoded]) -> Produced:
    """Produce every record and wait for Kafka's acknowledgements."""
    producer = new_producer(settings)
    await producer.start()
    try:
        started = time.monotonic()
        sender = BatchSender(producer, topic)
        count = 0
        for record in records:
            await sender.add(record)
            count += 1
        await sender.flush()
        await sender.acknowledged()
        return Produced(count, time.monotonic() - started)
    finally:
        await producer.stop()


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=30_000)


async def reachable(settings: Settings, seconds: float = 10.0) -> None:
    """Raise when Kafka does not answer a metadata request in time."""
    admin = _admin(settings)
    try:
        await asyncio.wait_for(admin.start(), seconds)
        await asyncio.wait_for(admin.list_topics(), seconds)
    finally:
        await admin.close()


async def delete_topics(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix`: the run's own and Faust's
    internal ones (named after the worker's app id); returns the names deleted."""
    admin = _admin(settings)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return sorted(names)
    finally:
        await admin.close()
