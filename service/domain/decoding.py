"""Turning raw Kafka bytes into a validated event, or into a reason a person can act on."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from service.domain.enums import DeadLetterReason
from service.domain.events import SCHEMA_VERSION, Event
from service.domain.registry import SourceRef

E = TypeVar("E", bound=Event)

MAX_REPORTED_ERRORS = 5


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed Kafka record, independent of the client library that fetched it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None

    def source(self) -> SourceRef:
        return SourceRef(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            timestamp_ms=self.timestamp_ms,
            key_base64=None if self.key is None else base64.b64encode(self.key).decode(),
            value_base64=base64.b64encode(self.value or b"").decode(),
        )


class Record(Protocol):
    """What the decoder reads of a consumed record (a RawMessage, or Faust's Message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def as_raw(record: RawMessage | Any) -> RawMessage:
    """A RawMessage for any consumed record (Faust's Message carries seconds, not ms)."""
    if isinstance(record, RawMessage):
        return record
    timestamp = getattr(record, "timestamp", None)
    return RawMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp_ms=None if timestamp is None else int(timestamp * 1000),
    )


class DecodeError(Exception):
    """A message that cannot become an event; `reason` says what to fix."""

    def __init__(self, code: DeadLetterReason, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event_id = event_id


def decode(
    model: type[E],
    message: RawMessage | Record,
    *,
    max_bytes: int,
    key_field: str | None = "asset_id",
) -> E:
    """Validate a message against its topic's contract.

    Checks, in order: size, UTF-8, JSON object, schema_version, the contract, and
    that the Kafka key equals `key_field` (the partitioning the ordering relies on).
    A valid message is parsed once, by pydantic's JSON parser; only a message that
    fails is examined step by step, to say precisely why.
    """
    value = message.value
    if value and len(value) <= max_bytes:
        try:
            event = model.model_validate_json(value)
        except ValidationError:
            pass
        else:
            _check_key(event, message, key_field)
            return event
    return _decode_step_by_step(model, message, max_bytes=max_bytes, key_field=key_field)


def _decode_step_by_step(
    model: type[E], message: RawMessage | Record, *, max_bytes: int, key_field: str | None
) -> E:
    value = message.value
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    if value is None or not value:
        raise DecodeError(DeadLetterReason.INVALID_JSON, f"{where}: empty message value")
    if len(value) > max_bytes:
        raise DecodeError(
            DeadLetterReason.OVERSIZE,
            f"{where}: message value is {len(value)} bytes, above the limit of {max_bytes} "
            "bytes (setting MEDIA_MAX_MESSAGE_BYTES)",
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            DeadLetterReason.INVALID_UTF8,
            f"{where}: value is not valid UTF-8 (byte {exc.start}: {exc.reason}); "
            "events must be JSON encoded as UTF-8",
        ) from None
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
        ) from None
    if not isinstance(document, dict):
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value must be a JSON object, got {type(document).__name__}",
        )
    event_id = document.get("event_id")
    event_id = event_id if isinstance(event_id, str) else None
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise DecodeError(
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            f"{where}: schema_version {version!r} is not supported by this service "
            f"(supported: {SCHEMA_VERSION}); upgrade the service or produce version "
            f"{SCHEMA_VERSION}",
            event_id,
        )
    try:
        event = model.model_validate(document)
    except ValidationError as exc:
        raise DecodeError(
            DeadLetterReason.SCHEMA_VIOLATION,
            f"{where}: does not match the {model.__name__} contract: {describe(exc)}",
            event_id,
        ) from None
    _check_key(event, message, key_field)
    return event


def _check_key(event: Event, message: RawMessage | Record, key_field: str | None) -> None:
    if key_field is None:
        return
    expected = str(getattr(event, key_field))
    key = message.key
    if key is not None and key == expected.encode():
        return
    actual = None if key is None else key.decode("utf-8", "replace")
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    raise DecodeError(
        DeadLetterReason.KEY_MISMATCH,
        f"{where}: message key {actual!r} must equal the event's {key_field} "
        f"{expected!r}, so that all events of one asset stay in order on one partition",
        event.event_id,
    )


def describe(exc: ValidationError) -> str:
    """A compact list of `field.path: message` for the first few validation errors."""
    parts = []
    for error in exc.errors()[:MAX_REPORTED_ERRORS]:
        path = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{path}: {error['msg']}")
    more = exc.error_count() - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
