"""End-to-end latency: from handing an event to the producer until the API could read it.

Background events are produced at a steady rate (half the worker's measured
throughput, so the worker keeps up and queues stay short); one event in
`probe_every` is a probe for an asset no other event names. A poller asks Redis
every 5 ms, in one pipeline, whether each outstanding probe's lifetime key
exists: that key appears in the same atomic step that applies the event, so its
first sighting is when a reader could see the event. Sending happens in 10 ms
ticks of closed batches (like a producer with linger.ms=10 that never waits
longer), and the send time is taken as the tick hands its batches over.

A plain consumer of the same topic (aiokafka, no group, nothing done with the records)
notes when each probe reaches it: Kafka's share of the latency (sending, the broker,
fetching), the rest being the worker's.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.events import EventFactory
from bench.kafka import BatchSender
from service.store.keys import Keys

TICK_SECONDS = 0.01
POLL_SECONDS = 0.005
DRAIN_SECONDS = 60.0


@dataclass
class Probes:
    """Outstanding probes ((lifetime hash, asset) -> send time) and the latencies seen so
    far."""

    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    sent_at: dict[bytes, float] = field(default_factory=dict)  # probe's Kafka key -> send time
    delivered: list[float] = field(default_factory=list)  # send to a plain consumer, seconds


@dataclass(frozen=True, slots=True)
class Latency:
    rate: float
    seconds: float
    events: int
    probes: int
    seen: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    # send to a plain consumer of the topic (Kafka's share), when it was observed
    delivery_p50_ms: float | None = None
    delivery_p99_ms: float | None = None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 was really observed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def send_paced(
    sender: BatchSender,
    factory: EventFactory,
    keys: Keys,
    probes: Probes,
    *,
    rate: float,
    seconds: float,
    probe_every: int,
) -> int:
    """Produce `rate` events per second for `seconds`; returns the number of events."""
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - sent
        tick_probes: list[tuple[str, str]] = []
        tick_keys: list[bytes] = []  # their Kafka keys, for the plain consumer
        for record in factory.events(max(due, 0), time.time()):
            sent += 1
            if sent % probe_every == 0:
                asset = f"probe-{probes.sent + len(tick_probes)}"
                record = factory.probe(asset, time.time())
                tick_probes.append((keys.perf_lifetime(record[0]), asset))
                tick_keys.append(record[1])
            await sender.add(record)
        handed_over = time.monotonic()
        probes.sent_at.update(dict.fromkeys(tick_keys, handed_over))
        await sender.flush()
        for key in tick_probes:
            probes.pending[key] = handed_over
        probes.sent += len(tick_probes)
        await asyncio.sleep(TICK_SECONDS)
    await sender.acknowledged()
    return sent


async def poll_probes(redis: Any, probes: Probes, sending: asyncio.Task[int]) -> None:
    """Record each probe's latency when its lifetime entry first exists; ends when all are
    seen."""
    deadline: float | None = None
    while not sending.done() or probes.pending:
        if sending.done() and deadline is None:
            deadline = time.monotonic() + DRAIN_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            return  # the missing probes are reported, not waited for forever
        keys = list(probes.pending)
        if keys:
            async with redis.pipeline(transaction=False) as pipe:
                for hash_key, asset in keys:
                    pipe.hexists(hash_key, asset)
                found = await pipe.execute()
            seen_at = time.monotonic()
            for probe, exists in zip(keys, found, strict=True):
                if exists:
                    probes.latencies.append(seen_at - probes.pending.pop(probe))
        await asyncio.sleep(POLL_SECONDS)


async def observe_delivery(
    consumer: AIOKafkaConsumer, topic: str, partitions: int, probes: Probes, stop: asyncio.Event
) -> None:
    """Note when each probe reaches a plain consumer of the topic (from its end now)."""
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    await consumer.seek_to_end()
    seen: set[bytes] = set()
    while not stop.is_set():
        fetched = await consumer.getmany(timeout_ms=50)
        now = time.monotonic()
        for records in fetched.values():
            for record in records:
                sent = probes.sent_at.get(record.key)
                if sent is not None and record.key not in seen:
                    seen.add(record.key)
                    probes.delivered.append(now - sent)


async def measure_latency(
    producer: AIOKafkaProducer,
    topic: str,
    factory: EventFactory,
    redis: Any,
    keys: Keys,
    *,
    rate: float,
    seconds: float,
    probe_every: int,
    observer: AIOKafkaConsumer | None = None,
    partitions: int = 0,
) -> Latency:
    """Produce at `rate` with probes and report how long probes took to become visible
    (and, given a started `observer` consumer and the topic's `partitions`, to reach it)."""
    probes = Probes()
    stop_observing = asyncio.Event()
    observing = (
        None
        if observer is None
        else asyncio.create_task(
            observe_delivery(observer, topic, partitions, probes, stop_observing)
        )
    )
    if observing is not None:
        await asyncio.sleep(1.0)  # assigned and at the end before the first probe
    sending = asyncio.create_task(
        send_paced(
            BatchSender(producer, topic),
            factory,
            keys,
            probes,
            rate=rate,
            seconds=seconds,
            probe_every=probe_every,
        )
    )
    try:
        await poll_probes(redis, probes, sending)
        events = await sending
    finally:
        sending.cancel()
        stop_observing.set()
        if observing is not None:
            await asyncio.wait_for(observing, timeout=10)
    millis = [latency * 1000 for latency in probes.latencies]
    delivered = [latency * 1000 for latency in probes.delivered]
    return Latency(
        rate=rate,
        seconds=seconds,
        events=events,
        probes=probes.sent,
        seen=len(millis),
        p50_ms=percentile(millis, 0.50),
        p90_ms=percentile(millis, 0.90),
        p99_ms=percentile(millis, 0.99),
        max_ms=max(millis, default=float("nan")),
        delivery_p50_ms=percentile(delivered, 0.50) if delivered else None,
        delivery_p99_ms=percentile(delivered, 0.99) if delivered else None,
    )
