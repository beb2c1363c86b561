"""The performance handler: whole batches of one partition into rolling metrics, exactly once.

The commit protocol, per batch of one partition (records in offset order):

1. On the first batch of a partition after an assignment, read the partition's
   position from Redis (the offset of the last event applied). If the batch starts
   after position + 1 (Kafka's committed offset ran ahead of Redis, e.g. Redis lost
   recent writes), ask the consumer to seek back to position + 1 and stop here.
2. Decode every record. Bad ones (and events more than the tolerance in the future)
   go to the dead-letter topic; Kafka acknowledges them before anything else moves.
3. Record which partition holds each new asset's metrics (an idempotent pointer).
4. Run `perf_apply.lua`, one atomic step: skip the batch if the position already
   covers it; otherwise de-duplicate event ids (24 h), add every delta to its
   buckets and lifetime counters, and move the position to the batch's last offset.
   If the batch straddles the position, drop the records at or below it and repeat.
5. Return; the consumer fetches the next batch and reports the position to Kafka
   as the committed offset, which only serves lag monitoring.

A crash anywhere leaves Redis either before or after step 4 as a whole; the next
owner of the partition resumes from the position in Redis, so no event is lost or
counted twice, even if a stale worker still writes (the position check rejects it).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from service.agents.emit import DeadLetters
from service.domain.decoding import DecodeError, Record, as_raw, decode
from service.domain.enums import DeadLetterReason
from service.domain.events import AssetPerformance
from service.domain.windows import is_future
from service.observability import AGE_SAMPLE_EVERY, Instruments
from service.store.metrics import MetricsStore, PerfRow

log = logging.getLogger(__name__)

POINTER_CACHE_SIZE = 200_000


class PerformanceHandler:
    def __init__(
        self,
        store: MetricsStore,
        dead_letters: DeadLetters,
        *,
        max_message_bytes: int,
        future_tolerance_seconds: float,
        clock: Callable[[], float] = time.time,
        instruments: Instruments | None = None,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._max_bytes = max_message_bytes
        self._tolerance = future_tolerance_seconds
        self._clock = clock
        self._verified: set[int] = set()
        self._pointed: OrderedDict[str, None] = OrderedDict()
        self._instruments = instruments or Instruments.create()

    def on_assignment(self) -> None:
        """Partitions moved: check each one's position again before its next batch."""
        self._verified.clear()

    async def __call__(self, partition: int, messages: Sequence[Record]) -> int | None:
        """Apply one batch; returns an offset to seek to instead, when Redis is behind."""
        if not messages:
            return None
        if partition not in self._verified:
            position = await self._store.position(partition)
            self._verified.add(partition)
            if messages[0].offset > position + 1:
                return position + 1
        now = self._clock()
        topic = messages[0].topic
        metrics = self._instruments
        metrics.consumed.labels(topic=topic).inc(len(messages))
        rows = await self._decode(messages, now)
        await self._point(partition, rows)
        first, last = messages[0].offset, messages[-1].offset
        while True:
            started = time.perf_counter()
            result = await self._store.apply(partition, first, last, [r for _, r in rows], now)
            metrics.redis_seconds.observe(time.perf_counter() - started)
            if result.status != -1:
                break
            first = result.position + 1
            rows = [(offset, row) for offset, row in rows if offset >= first]
        if result.applied:
            metrics.applied.labels(topic=topic).inc(result.applied)
            age = metrics.event_age.labels(topic=topic)
            for _, row in rows[::AGE_SAMPLE_EVERY]:
                age.observe(max(0.0, now - row[4]))
        return None

    async def _decode(self, messages: Sequence[Record], now: float) -> list[tuple[int, PerfRow]]:
        rows: list[tuple[int, PerfRow]] = []
        for message in messages:
            try:
                event = decode(AssetPerformance, message, max_bytes=self._max_bytes)
                occurred = event.occurred_at.timestamp()
                if is_future(occurred, now, self._tolerance):
                    raise DecodeError(
                        DeadLetterReason.FUTURE_EVENT,
                        f"occurred_at {event.occurred_at.isoformat()} is more than "
                        f"{self._tolerance:g} s after the time it was processed "
                        f"({datetime.fromtimestamp(now, UTC).isoformat()}); fix the "
                        "producer's clock (setting MEDIA_FUTURE_TOLERANCE_SECONDS)",
                        event.event_id,
                    )
            except DecodeError as error:
                await self._dead_letters.decode_failure(as_raw(message), error)
                continue
            rows.append(
                (
                    message.offset,
                    (
                        event.event_id,
                        event.asset_id,
                        event.channel.value,
                        event.campaign_id,
                        int(occurred),
                        event.impressions,
                        event.clicks,
                        event.engagements,
                        event.conversions,
                        event.shares,
                        event.comments,
                    ),
                )
            )
        return rows

    async def _point(self, partition: int, rows: Sequence[tuple[int, PerfRow]]) -> None:
        pointed = self._pointed
        new = list(dict.fromkeys(row[1] for _, row in rows if row[1] not in pointed))
        if not new:
            return
        await self._store.point(partition, new)
        for asset_id in new:
            pointed[asset_id] = None
        while len(pointed) > POINTER_CACHE_SIZE:
            pointed.popitem(last=False)
