"""Producing events: the port the handlers write to, and the dead-letter publisher."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import Counter

from service.domain.decoding import DecodeError, RawMessage
from service.domain.enums import DeadLetterReason
from service.domain.events import DeadLetter, Event
from service.domain.registry import Rejection, SourceRef
from service.store.dead_letters import DeadLetterCounters

log = logging.getLogger(__name__)

MAX_EVENT_ID = 128


class Producer(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send one record and return once the broker has acknowledged it."""


def encode(event: Event) -> bytes:
    return event.model_dump_json(exclude_none=True).encode("utf-8")


def dead_letter_event_id(source: SourceRef) -> str:
    """`dead-letter/<topic>/<partition>/<offset>`, hashed when a long topic name would
    take it past the 128 characters an event_id may have."""
    event_id = f"dead-letter/{source.dead_letter_id}"
    if len(event_id) <= MAX_EVENT_ID:
        return event_id
    return f"dead-letter/sha256:{hashlib.sha256(source.dead_letter_id.encode()).hexdigest()}"


class DeadLetters:
    """Sends a message that cannot be applied to the dead-letter topic, then counts it.

    The record is acknowledged by Kafka before it is counted, so a crash in
    between yields at most a second copy with the same event_id, never a loss.
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        counters: DeadLetterCounters,
        sent: Counter | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._counters = counters
        self._sent = sent

    async def decode_failure(self, message: RawMessage, error: DecodeError) -> None:
        await self.publish(
            source=message.source(),
            code=error.code,
            reason=error.reason,
            event_id=error.event_id,
            asset_id=None,
        )

    async def rejection(self, rejection: Rejection) -> None:
        await self.publish(
            source=rejection.source,
            code=rejection.reason_code,
            reason=rejection.reason,
            event_id=rejection.event_id,
            asset_id=rejection.asset_id,
        )

    async def publish(
        self,
        *,
        source: SourceRef,
        code: DeadLetterReason,
        reason: str,
        event_id: str | None,
        asset_id: str | None,
    ) -> None:
        letter = DeadLetter(
            event_id=dead_letter_event_id(source),
            occurred_at=datetime.now(UTC),
            reason_code=code,
            reason=reason,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            source_timestamp_ms=source.timestamp_ms,
            key_base64=source.key_base64,
            value_base64=source.value_base64,
            original_event_id=event_id,
            asset_id=asset_id,
        )
        key = None if asset_id is None else asset_id.encode("utf-8")
        await self._producer.send(self._topic, key, encode(letter))
        await self._counters.count(code, source.dead_letter_id)
        if self._sent is not None:
            self._sent.labels(reason=code.value).inc()
        log.warning("dead-lettered %s (%s): %s", source.dead_letter_id, code.value, reason)
