"""Per-message input topics (registrations, lifecycle, feedback), a partition batch at a time.

The commit protocol, per batch of one partition (records in offset order):

1. On the first batch of a partition after an assignment, read the partition's
   position from Redis (`P:{in:<topic>:<N>}:position`, the offset of its last
   message fully processed). If the batch starts after position + 1 (Kafka's
   committed offset ran ahead of Redis), ask the consumer to seek back to
   position + 1 and stop here.
2. Handle each record after the last one this worker finished, in order, to the
   end: decode it, let the domain handler write its effects (each one idempotent,
   see service/handlers/registry.py) and emit its events. A record that is not a
   valid event, or that makes the handler fail for a reason other than the
   infrastructure, goes to the dead-letter topic, and the next record follows.
3. A transient failure (Redis or Kafka away, the dead-letter topic unavailable)
   stops the batch where it is: the consumer pauses the partition and hands the
   same batch again after a back-off; the records already finished are skipped.
4. Advance the position to the batch's last offset (`position_advance.lua`), in one
   atomic step that also checks the position still holds what this worker last saw.
   If it does not, Redis lost writes: the consumer seeks back to the stored
   position + 1 and the lost messages are processed again, with the same effect.
5. Return; the consumer reports the position to Kafka as the committed offset,
   which only serves lag monitoring.

A crash anywhere repeats at most the messages after the stored position, whose
effects are idempotent: nothing is lost, nothing counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from service.domain.decoding import RawMessage, Record, as_raw
from service.errors import DecodeError
from service.handlers.emit import DeadLetters
from service.handlers.ports import Positions
from service.resilience import is_transient
from service.store.positions import Advance

log = logging.getLogger(__name__)

MessageHandler = Callable[[RawMessage], Awaitable[object]]


@dataclass
class _Progress:
    expected: int  # the position in Redis as this worker last read or wrote it
    finished: int  # the offset of the last record this worker handled to the end


class SequentialHandler:
    """Adapts a per-message domain handler to the consumer's batch protocol."""

    def __init__(
        self,
        topic: str,
        handle: MessageHandler,
        positions: Positions,
        dead_letters: DeadLetters,
    ) -> None:
        self._topic = topic
        self._handle = handle
        self._positions = positions
        self._dead_letters = dead_letters
        self._progress: dict[int, _Progress] = {}

    def on_assignment(self) -> None:
        """Partitions moved: read each one's position again before its next batch."""
        self._progress.clear()

    async def __call__(self, partition: int, records: Sequence[Record]) -> int | None:
        """Handle one batch; returns an offset to seek to instead, when Redis is behind."""
        if not records:
            return None
        progress = self._progress.get(partition)
        if progress is None:
            position = await self._positions.get(self._topic, partition)
            progress = self._progress[partition] = _Progress(position, position)
            if records[0].offset > position + 1:
                return position + 1
        for record in records:
            if record.offset <= progress.finished:
                continue  # finished before a transient failure stopped this batch
            await self._one(as_raw(record))
            progress.finished = record.offset
        last = records[-1].offset
        advanced = await self._positions.advance(self._topic, partition, progress.expected, last)
        if advanced.result is Advance.BEHIND:
            self._behind(partition, advanced.position, progress.expected)
            return advanced.position + 1
        progress.expected = max(last, advanced.position)
        return None

    async def check(self, partition: int, topic: str) -> int | None:
        """Between batches: the offset to seek to when Redis fell behind this worker."""
        progress = self._progress.get(partition)
        if progress is None:
            return None
        position = await self._positions.get(self._topic, partition)
        if position >= progress.expected:
            return None
        self._behind(partition, position, progress.expected)
        return position + 1

    def _behind(self, partition: int, position: int, expected: int) -> None:
        log.warning(
            "Redis holds position %d for %s[%d], below the %d this worker wrote: it lost "
            "writes; processing again from offset %d",
            position,
            self._topic,
            partition,
            expected,
            position + 1,
        )
        self._progress[partition] = _Progress(position, position)

    async def _one(self, message: RawMessage) -> None:
        try:
            await self._handle(message)
        except DecodeError as error:
            await self._dead_letters.decode_failure(message, error)
        except Exception as exc:
            if is_transient(exc):
                raise
            await self._dead_letters.service_failure(message, exc)
