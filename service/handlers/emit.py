"""Producing events: the port the handlers write to, and the dead-letter publisher."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import Counter
from pydantic import ValidationError

from service.domain.decoding import RawMessage
from service.domain.enums import DeadLetterReason
from service.domain.events import (
    DEAD_LETTER_CUT,
    MAX_DEAD_LETTER_KEY_BYTES,
    MAX_DEAD_LETTER_REASON_CHARS,
    DeadLetter,
    Event,
)
from service.domain.registry import Rejection, SourceRef
from service.errors import DeadLetterUnavailable, DecodeError
from service.handlers.ports import Clock, DeadLetterCounts, utc_now
from service.observability import redact

log = logging.getLogger(__name__)

MAX_EVENT_ID = 128
DEFAULT_MAX_ORIGINAL_BYTES = 262_144
DEAD_LETTER_OVERHEAD_BYTES = 16 * 1024
"""What a dead letter weighs besides its value's base64: the key's base64 (1368 bytes
at most), the reason (2000 characters, 12000 bytes once JSON-escaped at worst), the
coordinates, hashes and ids."""

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


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


@dataclass(frozen=True, slots=True)
class Original:
    """Some original bytes as a dead letter carries them: the start, and facts of the whole."""

    base64: str
    sha256: str
    size_bytes: int
    truncated: bool

    @classmethod
    def of(cls, data: bytes, limit: int) -> Original:
        kept = data[:limit]
        return cls(
            base64=base64.b64encode(kept).decode("ascii"),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            truncated=len(kept) < len(data),
        )


def fit_reason(reason: str) -> str:
    """A reason within the contract: non-empty, encodable, at most 2000 characters,
    credentials masked."""
    text = redact(reason).strip()[: MAX_DEAD_LETTER_REASON_CHARS + 1] or "no reason given"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: shown as escapes
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_DEAD_LETTER_REASON_CHARS:
        text = text[: MAX_DEAD_LETTER_REASON_CHARS - len(DEAD_LETTER_CUT)] + DEAD_LETTER_CUT
    return text


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "backslashreplace")


def dead_letter(
    *,
    source: SourceRef,
    code: DeadLetterReason,
    reason: str,
    event_id: str | None,
    asset_id: str | None,
    key: bytes | None,
    value: bytes,
    max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES,
    occurred_at: datetime | None = None,
) -> DeadLetter:
    """The dead letter of one message, bounded whatever the message was.

    `source` gives the coordinates; `key` and `value` are the original bytes (the
    value cut to `max_original_bytes`, the key to MAX_DEAD_LETTER_KEY_BYTES). Ids that
    do not fit the contract are left out rather than failing the dead letter.
    """
    original = Original.of(value, max_original_bytes)
    fields: dict[str, object] = {
        "event_id": dead_letter_event_id(source),
        "occurred_at": occurred_at or datetime.now(UTC),
        "reason_code": code,
        "reason": fit_reason(reason),
        "source_topic": source.topic,
        "source_partition": max(source.partition, 0),
        "source_offset": max(source.offset, 0),
        "source_timestamp_ms": source.timestamp_ms,
        "value_base64": original.base64,
        "value_sha256": original.sha256,
        "value_size_bytes": original.size_bytes,
        "value_truncated": original.truncated,
    }
    if key is not None:
        kept = Original.of(key, MAX_DEAD_LETTER_KEY_BYTES)
        fields |= {
            "key_base64": kept.base64,
            "key_sha256": kept.sha256,
            "key_size_bytes": kept.size_bytes,
            "key_truncated": kept.truncated,
        }
    if event_id is not None and 0 < len(event_id.strip()) <= MAX_EVENT_ID:
        fields["original_event_id"] = event_id
    if asset_id is not None and _IDENTIFIER.match(asset_id):
        fields["asset_id"] = asset_id
    try:
        return DeadLetter.model_validate(fields)
    except ValidationError as exc:  # a bug here must not cost the message: keep the essentials
        log.error("dead letter of %s left out fields: %s", source.dead_letter_id, exc)
        fields.pop("original_event_id", None)
        fields.pop("asset_id", None)
        fields["source_timestamp_ms"] = None
        return DeadLetter.model_validate(fields)


class DeadLetters:
    """Sends a message that cannot be applied to the dead-letter topic, then counts it.

    The record is acknowledged by Kafka before it is counted, so a crash in
    between yields at most a second copy with the same event_id, never a loss.
    A send that fails raises DeadLetterUnavailable: the message is not done.
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        counters: DeadLetterCounts,
        sent: Counter,
        *,
        max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES,
        now: Clock = utc_now,
    ) -> None:
        self._now = now
        self._producer = producer
        self._topic = topic
        self._counters = counters
        self._sent = sent
        self._max_original_bytes = max_original_bytes

    async def decode_failure(self, message: RawMessage, error: DecodeError) -> None:
        # The coordinates only: the original bytes go in from the record, cut to size,
        # rather than base64 of a value that may be far above the limits.
        source = SourceRef(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp_ms,
            value_base64="",
        )
        await self.publish(
            source=source,
            code=error.code,
            reason=error.reason,
            event_id=error.event_id,
            asset_id=None,
            key=message.key,
            value=message.value or b"",
        )

    async def service_failure(self, message: RawMessage, exc: BaseException) -> None:
        """A bug or an input nobody foresaw made the service fail on this message: log it
        and dead-letter the message (`internal_error`), so that its partition moves on."""
        log.error(
            "failed to process %s[%d]@%d",
            message.topic,
            message.partition,
            message.offset,
            exc_info=exc,
        )
        error = DecodeError(
            DeadLetterReason.INTERNAL_ERROR,
            f"the service failed on this message ({type(exc).__name__}: {exc}); "
            "report it with this dead letter, then replay the message",
        )
        await self.decode_failure(message, error)

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
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> None:
        """Send and count one dead letter. The original bytes are `key` and `value` when
        given, otherwise those the source carries in base64."""
        if value is None:
            value = _from_base64(source.value_base64)
            key = None if source.key_base64 is None else _from_base64(source.key_base64)
        letter = dead_letter(
            source=source,
            code=code,
            reason=reason,
            event_id=event_id,
            asset_id=asset_id,
            key=key,
            value=value,
            max_original_bytes=self._max_original_bytes,
            occurred_at=self._now(),
        )
        record_key = None if letter.asset_id is None else letter.asset_id.encode("utf-8")
        payload = encode(letter)
        try:
            await self._producer.send(self._topic, record_key, payload)
        except Exception as exc:
            raise DeadLetterUnavailable(
                f"could not send the dead letter of {source.dead_letter_id} "
                f"({len(payload)} bytes) to topic {self._topic!r}: {type(exc).__name__}: "
                f"{exc}; check that Kafka is reachable, that the topic exists and that this "
                "worker may write to it; the message is tried again"
            ) from exc
        await self._counters.count(code, source.dead_letter_id)
        self._sent.labels(reason=code.value).inc()
        log.warning("dead-lettered %s (%s): %s", source.dead_letter_id, code.value, letter.reason)
