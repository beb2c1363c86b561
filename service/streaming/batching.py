"""A Faust consumer that hands whole fetches of the input topics to batch handlers.

Faust turns every Kafka record into an event that travels through the conductor,
a channel queue and a stream iterator, which caps a worker at roughly a fifth of
what a plain aiokafka consumer does with the same work (docs/processing.md). The
service needs neither Faust's events nor its acknowledgements: every input
partition keeps its own position in Redis, written in the same step as (or right
after) its effects.

`BatchingConsumer` overrides `Consumer._drain_messages`, Faust's fetch loop: for
the topics registered in `app.batch_handlers` it takes each fetch's records per
partition as aiokafka returned them (`ConsumerRecord`s, in offset order) and awaits
the handler once per partition before the next fetch (natural back-pressure).
Records of any other topic take Faust's usual path unchanged. A handler returns
None when done, or an offset to seek to (to resume from the position kept in
Redis); the consumer then drops the rest of that partition's fetch.

The records are not turned into Faust's messages first: Faust's `Consumer.getmany`
yields one record at a time from an async generator, looks up the partition's high
watermark and builds a `ConsumerMessage` for each, which took 7.8 % of a busy
worker's samples in the benchmark's profile (docs/benchmarks.md); the batch path
needs none of it.

When a handler fails for a reason of the infrastructure (`is_transient`), the
partition is paused: its batch is kept and handed to the handler again after a
capped, jittered back-off, while the other partitions go on and the worker stays in
its group. Any other failure of a handler is a bug; it is treated the same way and
logged as an error, so that a worker never dies of it (handlers dead-letter what a
message does to them; see service/handlers/).

Its consumer thread also fetches with a short wait (`app.fetch_wait_ms`) instead of
Faust's fixed 1.5 s, which stalls a busy topic behind idle ones.

Kafka offsets are committed from the positions the handlers report, every
`broker_commit_interval`, for lag monitoring; correctness rests on the positions in
Redis, so a failed commit (the broker restarting) is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

from service.resilience import Backoff, is_transient

log = logging.getLogger(__name__)

# Between batches, how often each partition's position in Redis is compared with what
# its handler last wrote, so that a partition without new records notices a Redis that
# lost writes too.
CHECK_EVERY_SECONDS = 5.0


class BatchHandler(Protocol):
    """What the consumer needs of a handler (service/handlers/performance.py, sequential.py)."""

    async def __call__(self, partition: int, records: list[Any], /) -> int | None:
        """Handle a batch in offset order; None when done, or the offset to seek to."""

    async def check(self, partition: int, topic: str) -> int | None:
        """The offset to seek to when Redis lost writes this handler made, else None."""

    def on_assignment(self) -> None:
        """Partitions moved: forget what is known of every partition."""


class PartitionLag(NamedTuple):
    """Records of one assigned partition behind its high watermark."""

    topic: str
    partition: int
    behind: int


@dataclass
class Paused:
    """A partition whose batch failed: the batch, when to try again, and why it failed."""

    messages: list[Any]
    backoff: Backoff
    retry_at: float
    error: str
    since: float = field(default_factory=time.monotonic)


class ShortWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short fetch wait and commits that cannot crash it.

    aiokafka keeps one fetch per broker in flight and leaves out partitions that
    still hold undelivered records. Under a backlog of the busy topic, the next
    fetch therefore asks only for the idle ones (the registry topics, Faust's
    assignor topic) and the broker holds it for the whole wait: the stream stalls
    up to 1.5 s per round. The benchmark measured +40-70 % throughput and a p99
    latency falling from 2 s to 0.3 s with 100 ms (docs/benchmarks.md).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_wait_ms", 100))
        return consumer

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit offsets; on failure log and go on (Faust would crash the worker).

        Committed offsets only measure lag here: the positions in Redis decide where
        processing resumes, so a commit lost while the broker restarts is harmless
        and the next one catches up.
        """
        try:
            return await self._commit_quietly(offsets)
        except Exception as exc:
            log.warning("offset commit failed, retried at the next interval: %r", exc)
            return False

    async def _commit_quietly(self, offsets: Mapping[TP, int]) -> bool:
        consumer = self._ensure_consumer()
        assignment = self.assignment()
        committable = {
            faust_aiokafka.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
            for tp, offset in offsets.items()
            if tp in assignment
        }
        if not committable:
            return False
        await consumer.commit(committable)
        return True


class BatchingConsumer(faust_aiokafka.Consumer):
    """The aiokafka driver's consumer, with batch delivery for registered topics."""

    def _new_consumer_thread(self) -> ShortWaitConsumerThread:
        return ShortWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._batch_positions: dict[TP, int] = {}
        self._batch_committed_at = time.monotonic()
        self.paused: dict[TP, Paused] = {}
        # Set when the fetch loop ended for a reason other than a shutdown or a rebalance.
        self.failure: BaseException | None = None
        self.drained_at = time.monotonic()
        self._checked_at = time.monotonic()

    def lag(self) -> list[PartitionLag]:
        """(topic, partition, records behind the high watermark) of each assigned partition."""
        result = []
        for tp in self.assignment():
            highwater = self.highwater(tp)
            read = self._read_offset.get(tp)
            if highwater is None or highwater < 0:
                continue
            behind = highwater - (0 if read is None else read + 1)
            result.append(PartitionLag(tp.topic, tp.partition, max(0, behind)))
        return result

    def forget_paused(self) -> None:
        """After a rebalance: drop kept batches and resume their partitions.

        Faust seeks every assigned partition to its committed offset, and the handlers
        read their positions again, so the records come back in order from Kafka.
        """
        if self.paused:
            self.resume_partitions([_faust_tp(tp) for tp in self.paused])
            self.paused.clear()

    @property
    def _batch_handlers(self) -> Mapping[str, BatchHandler]:
        return cast(Mapping[str, BatchHandler], getattr(self.app, "batch_handlers", {}))

    @property
    def _max_backoff(self) -> float:
        return float(getattr(self.app, "retry_max_seconds", 5.0))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - via e2e
        try:
            await self._drain(fetcher)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except BaseException as exc:
            if not self.transport.app.should_stop:
                self.failure = exc
                log.critical("the consumer's fetch loop died: %r", exc, exc_info=exc)
            raise

    async def _drain(self, fetcher: Any) -> None:  # pragma: no cover - via e2e
        handlers = self._batch_handlers
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.drained_at = time.monotonic()
            await self.sleep(0)
            if self.should_stop:
                break
            await self._retry_paused(handlers)
            batches = await self._fetch(handlers)
            for tp, records in batches.items():
                await self._deliver(handlers[tp.topic], tp, records)
            await self._maybe_check_positions(handlers)
            await self._maybe_commit_batch_positions()

    async def _fetch(self, handlers: Mapping[str, BatchHandler]) -> dict[TP, list[Any]]:
        """One fetch: the batch topics' records per partition (aiokafka's own records, in
        offset order, those below a seek or of a paused partition left out); records of
        any other topic go through Faust's usual path, one by one, before this returns."""
        records, active = await self._wait_next_records(1.0)
        if not records or self.should_stop:
            return {}
        if not self.flow_active:
            # A rebalance began after the fetch: Faust seeks back to the committed offsets.
            await self.perform_seek()
            return {}
        read_offset = self._read_offset
        buffered = self._buffered_partitions
        batches: dict[TP, list[Any]] = {}
        for tp, fetched in records.items():
            if not fetched or (active is not None and tp not in active and tp not in buffered):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp in self.paused:
                continue  # fetched before the pause took effect: the resume seeks back
            below = read_offset.get(tp)
            if tp.topic in handlers:
                if below is not None and fetched[0].offset < below:
                    fetched = [r for r in fetched if r.offset >= below]  # below a seek
                    if not fetched:
                        continue
                batches[tp] = fetched
                read_offset[tp] = fetched[-1].offset
            else:
                await self._per_message(tp, fetched, below)
        return batches

    async def _per_message(self, tp: TP, records: list[Any], below: int | None) -> None:
        """Faust's usual path for a topic with no batch handler, as in
        Consumer._drain_messages."""
        acks = self.app.topics.acks_enabled_for(tp.topic)
        for record in records:
            offset = record.offset
            if below is not None and offset < below:
                continue
            r_offset = self._read_offset.get(tp)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks:
                await self._add_gap(tp, r_offset + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = offset

    async def _deliver(
        self, handler: BatchHandler, tp: TP, messages: list[Any], paused: Paused | None = None
    ) -> None:
        try:
            seek_to = await handler(tp.partition, messages)
        except Exception as exc:
            self._pause(tp, messages, exc, paused)
            return
        if paused is not None:
            del self.paused[tp]
            self.resume_partitions([_faust_tp(tp)])
            log.info(
                "%s[%d] resumed after %.1f s",
                tp.topic,
                tp.partition,
                time.monotonic() - paused.since,
            )
            if seek_to is None:
                # Fetch again right after the batch: records fetched while paused were dropped.
                seek_to = messages[-1].offset + 1
                self._batch_positions[tp] = seek_to
                await self.seek(tp, seek_to)
                return
        if seek_to is not None:
            self.log.info("resuming %r from the position kept in Redis: %d", tp, seek_to)
            await self.seek(tp, seek_to)
            return
        self._batch_positions[tp] = messages[-1].offset + 1

    def _pause(self, tp: TP, messages: list[Any], exc: Exception, paused: Paused | None) -> None:
        """Keep the batch and stop fetching the partition until a retry succeeds."""
        if paused is None:
            backoff = Backoff(cap=self._max_backoff)
            paused = Paused(messages, backoff, 0.0, "")
            self.paused[tp] = paused
            self.pause_partitions([_faust_tp(tp)])
        delay = paused.backoff.next_delay()
        paused.retry_at = time.monotonic() + delay
        paused.error = f"{type(exc).__name__}: {exc}"
        if is_transient(exc):
            log.warning(
                "%s[%d] paused, retrying in %.2f s: %s", tp.topic, tp.partition, delay, paused.error
            )
        else:
            log.error(
                "%s[%d] paused by a failure of the service, retrying in %.2f s",
                tp.topic,
                tp.partition,
                delay,
                exc_info=exc,
            )

    async def _retry_paused(self, handlers: Mapping[str, BatchHandler]) -> None:
        if not self.paused:
            return
        now = time.monotonic()
        assignment = self.assignment()
        for tp, paused in list(self.paused.items()):
            if tp not in assignment:
                del self.paused[tp]
            elif paused.retry_at <= now:
                await self._deliver(handlers[tp.topic], tp, paused.messages, paused)
        if self.paused and not any(p.retry_at <= now for p in self.paused.values()):
            # Nothing else to do may make getmany return at once: don't spin.
            soonest = min(p.retry_at for p in self.paused.values())
            await asyncio.sleep(min(0.05, max(0.0, soonest - time.monotonic())))

    async def _maybe_check_positions(self, handlers: Mapping[str, BatchHandler]) -> None:
        now = time.monotonic()
        if now - self._checked_at < CHECK_EVERY_SECONDS:
            return
        self._checked_at = now
        for tp in self.assignment():
            handler = handlers.get(tp.topic)
            if handler is None or tp in self.paused:
                continue
            try:
                seek_to = await handler.check(tp.partition, tp.topic)
            except Exception as exc:  # Redis away: the next batch pauses the partition
                log.debug("position check of %r postponed: %r", tp, exc)
                return
            if seek_to is not None:
                await self.seek(tp, seek_to)

    async def _maybe_commit_batch_positions(self) -> None:
        now = time.monotonic()
        if now - self._batch_committed_at < self.app.conf.broker_commit_interval:
            return
        self._batch_committed_at = now
        positions, self._batch_positions = self._batch_positions, {}
        if positions and not await self._commit(positions):
            # Not committed (the broker restarting, a rebalance): keep them for the next try.
            assignment = self.assignment()
            for tp, offset in positions.items():
                if tp in assignment:
                    self._batch_positions.setdefault(tp, offset)


def _faust_tp(tp: Any) -> TP:
    """Faust's own TP: its pause/resume reject aiokafka's equal TopicPartition."""
    return TP(tp.topic, tp.partition)


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer
