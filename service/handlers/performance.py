"""The performance handler: whole batches of one partition into rolling metrics, exactly once.

The commit protocol, per batch of one partition (records in offset order):

1. On the first batch of a partition after an assignment, read the partition's
   position from Redis (the offset of the last event applied). If the batch starts
   after position + 1 (Kafka's committed offset ran ahead of Redis), ask the
   consumer to seek back to position + 1 and stop here.
2. Decode every record. Bad ones (and events more than the tolerance in the future)
   go to the dead-letter topic; Kafka acknowledges them before anything else moves.
3. Record which partition holds each new asset's metrics (an idempotent pointer).
4. Apply the batch in the metrics store's exactly-once step (`MetricsStore.apply`:
   it validates its input, reads, adds, and writes in one atomic transaction), which:
   - answers "behind" when the position is below the one this worker last saw
     (Redis lost writes): the consumer seeks back to the stored position + 1;
   - skips the batch if the position already covers it;
   - when the batch straddles the position, the records at or below it are dropped
     and the step repeated;
   - counts the event ids applied before (24 to 30 h) as duplicates;
   - refuses a batch that would overflow a lifetime counter: that asset's records
     of the batch are dead-lettered and the step repeated;
   - otherwise writes the new sums, records the ids, and moves the position to the
     batch's last offset, all in one transaction.
5. Return; the consumer fetches the next batch and reports the position to Kafka
   as the committed offset, which only serves lag monitoring.

A batch of more than MAX_EVENTS_PER_STEP records goes through steps 2-4 in slices of
that many consecutive records, each its own atomic step, so that no transaction holds
Redis for long.

A transient failure (Redis away) raises out of the handler: the consumer pauses the
partition and hands the same batch again later. A crash anywhere leaves Redis either
before or after step 4 as a whole; the next owner of the partition resumes from the
position in Redis, so no event is lost or counted twice, even if a stale worker
still writes (the position check rejects it).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from service.domain.decoding import Record, as_raw, decode
from service.domain.enums import DeadLetterReason
from service.domain.events import AssetPerformance
from service.domain.windows import is_future
from service.errors import DecodeError
from service.handlers.emit import DeadLetters
from service.handlers.ports import MetricsWrites
from service.observability import AGE_SAMPLE_EVERY, Instruments
from service.resilience import is_transient
from service.store.metrics import Applied, ApplyStatus, PerfRow

log = logging.getLogger(__name__)

POINTER_CACHE_SIZE = 200_000
# Records per atomic step: each of its two transactions holds Redis (every read waits
# behind it) for a few us per event, and the worker's event loop (the API's too) for
# tens of us per event between them, so a step of 250 holds either for a few ms (the bench
# counts the calls over 5 ms). Smaller steps cost more commands per event (each step
# touches its hashes again).
MAX_EVENTS_PER_STEP = 250


class PerformanceHandler:
    def __init__(
        self,
        store: MetricsWrites,
        dead_letters: DeadLetters,
        *,
        max_message_bytes: int,
        future_tolerance_seconds: float,
        instruments: Instruments,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._max_bytes = max_message_bytes
        self._tolerance = future_tolerance_seconds
        self._clock = clock
        # partition -> the position in Redis as this worker last read or wrote it
        self._expected: dict[int, int] = {}
        self._pointed: OrderedDict[str, None] = OrderedDict()
        self._instruments = instruments

    def on_assignment(self) -> None:
        """Partitions moved: check each one's position again before its next batch, and
        trust nothing kept of an earlier step."""
        self._expected.clear()
        self._store.reset()

    async def __call__(self, partition: int, messages: Sequence[Record]) -> int | None:
        """Apply one batch, in steps of at most MAX_EVENTS_PER_STEP records; returns an
        offset to seek to instead, when Redis is behind."""
        for start in range(0, len(messages), MAX_EVENTS_PER_STEP):
            seek = await self._step(partition, messages[start : start + MAX_EVENTS_PER_STEP])
            if seek is not None:
                return seek
        return None

    async def _step(self, partition: int, messages: Sequence[Record]) -> int | None:
        if not messages:
            return None
        if partition not in self._expected:
            position = await self._store.position(partition)
            self._expected[partition] = position
            if messages[0].offset > position + 1:
                return position + 1
        now = self._clock()
        topic = messages[0].topic
        metrics = self._instruments
        metrics.consumed.labels(topic=topic).inc(len(messages))
        rows = await self._decode(messages, now)
        await self._point(partition, rows)
        first, last = messages[0].offset, messages[-1].offset
        try:
            result, rows = await self._apply(partition, first, last, rows, now, messages)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception(
                "a batch of %s[%d] failed; applying it record by record", topic, partition
            )
            return await self._one_by_one(partition, messages, rows, now)
        if result.status is ApplyStatus.BEHIND:
            return self._behind(topic, partition, result.position)
        if result.applied:
            metrics.applied.labels(topic=topic).inc(result.applied)
            age = metrics.event_age.labels(topic=topic)
            for _, row in rows[::AGE_SAMPLE_EVERY]:
                age.observe(max(0.0, now - row.occurred_at))
        return None

    async def _apply(
        self,
        partition: int,
        first: int,
        last: int,
        rows: list[tuple[int, PerfRow]],
        now: float,
        messages: Sequence[Record],
    ) -> tuple[Applied, list[tuple[int, PerfRow]]]:
        """Step 4, repeated until the script applies, skips or finds Redis behind."""
        metrics = self._instruments
        while True:
            started = time.perf_counter()
            result = await self._store.apply(
                partition,
                first,
                last,
                [r for _, r in rows],
                now,
                expected=self._expected[partition],
            )
            metrics.redis_seconds.observe(time.perf_counter() - started)
            if result.status is ApplyStatus.STRADDLES:
                self._expected[partition] = result.position
                first = result.position + 1
                rows = [(offset, row) for offset, row in rows if offset >= first]
            elif result.status is ApplyStatus.OVERFLOW:
                rows = await self._overflowing(result.asset_id, rows, messages)
            else:
                if result.status is ApplyStatus.APPLIED:
                    self._expected[partition] = last
                elif result.status is ApplyStatus.COVERED:
                    self._expected[partition] = max(self._expected[partition], result.position)
                return result, rows

    async def _overflowing(
        self, asset_id: str | None, rows: list[tuple[int, PerfRow]], messages: Sequence[Record]
    ) -> list[tuple[int, PerfRow]]:
        """Dead-letter the batch's records of an asset whose lifetime counter would overflow."""
        by_offset = {message.offset: message for message in messages}
        kept = []
        for offset, row in rows:
            if row.asset_id != asset_id:
                kept.append((offset, row))
                continue
            error = DecodeError(
                DeadLetterReason.COUNTER_OVERFLOW,
                f"a lifetime counter of asset {asset_id!r} would pass 2^53 - 1 with this "
                "event; its deltas are far beyond what one asset can earn: check the producer",
                row.event_id,
            )
            await self._dead_letters.decode_failure(as_raw(by_offset[offset]), error)
        return kept

    async def check(self, partition: int, topic: str) -> int | None:
        """Between batches: the offset to seek to when Redis fell behind this worker."""
        expected = self._expected.get(partition)
        if expected is None:
            return None
        position = await self._store.position(partition)
        return self._behind(topic, partition, position) if position < expected else None

    def _behind(self, topic: str, partition: int, position: int) -> int:
        # The pointers written since may be lost too: write them again as events come.
        self._pointed.clear()
        self._store.reset([partition])
        log.warning(
            "Redis holds position %d for %s[%d], below the %d this worker wrote: it lost "
            "writes; applying again from offset %d",
            position,
            topic,
            partition,
            self._expected[partition],
            position + 1,
        )
        self._expected[partition] = position
        return position + 1

    async def _one_by_one(
        self,
        partition: int,
        messages: Sequence[Record],
        rows: list[tuple[int, PerfRow]],
        now: float,
    ) -> int | None:
        """Isolate the record a batch failed on: apply each alone, dead-letter what fails."""
        by_offset = dict(rows)
        for message in messages:
            offset = message.offset
            row = by_offset.get(offset)
            single = [] if row is None else [(offset, row)]
            try:
                result, _ = await self._apply(partition, offset, offset, single, now, [message])
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._dead_letters.service_failure(as_raw(message), exc)
                result, _ = await self._apply(partition, offset, offset, [], now, [message])
            if result.status is ApplyStatus.BEHIND:
                return self._behind(message.topic, partition, result.position)
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
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._dead_letters.service_failure(as_raw(message), exc)
                continue
            rows.append(
                (
                    message.offset,
                    PerfRow(
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
        new = list(dict.fromkeys(row.asset_id for _, row in rows if row.asset_id not in pointed))
        if not new:
            return
        await self._store.point(partition, new)
        for asset_id in new:
            pointed[asset_id] = None
        while len(pointed) > POINTER_CACHE_SIZE:
            pointed.popitem(last=False)
