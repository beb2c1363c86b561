"""Turning raw Kafka bytes into a validated event, or into a reason a person can act on."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

from pydantic import ValidationError

from service.domain.enums import DeadLetterReason
from service.domain.events import SCHEMA_VERSION, Event
from service.domain.registry import SourceRef
from service.errors import DecodeError

E = TypeVar("E", bound=Event)

MAX_REPORTED_ERRORS = 5

# Limits of the step-by-step path, far above anything a valid event holds, so that
# they only ever name what is wrong with a broken one.
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects (the input contracts nest two levels)."""
MAX_NUMBER_CHARS = 64
"""Longest number literal (the largest contract integer, 2**53 - 1, has 16 digits)."""
MAX_QUOTED_CHARS = 64
"""Longest piece of the message (a key, a field name, a value) quoted in a reason."""


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
    """What the decoder reads of a consumed record (a RawMessage, or aiokafka's
    ConsumerRecord as the worker's consumer hands it over); read only, so that a frozen
    RawMessage is one too."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def as_raw(record: RawMessage | Any) -> RawMessage:
    """A RawMessage for any consumed record (aiokafka's ConsumerRecord: its timestamp in
    ms since 1970, -1 when the record has none)."""
    if isinstance(record, RawMessage):
        return record
    timestamp = getattr(record, "timestamp", None)
    return RawMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp_ms=None if timestamp is None or timestamp < 0 else int(timestamp),
    )


def decode(
    model: type[E],
    message: RawMessage | Record,
    *,
    max_bytes: int,
    key_field: str | None = "asset_id",
) -> E:
    """Validate a message against its topic's contract.

    Checks, in order: size, UTF-8, JSON (an object, numbers a double can hold, at
    most MAX_JSON_DEPTH levels, no key twice, no unpaired surrogate), schema_version,
    the contract, and that the Kafka key equals `key_field` (the partitioning the
    ordering relies on). A valid message is parsed once, by pydantic's JSON parser;
    only a message that fails is examined step by step, to say precisely why.

    Raises DecodeError and nothing else, whatever the bytes: an unexpected failure
    of the decoder itself becomes a DecodeError with reason `internal_error`.
    A key repeated in a message that is otherwise valid is not noticed (the fast
    parser keeps the last value); in a message that fails, it is reported.
    """
    try:
        failure: ValidationError | None = None
        value = message.value
        if value and len(value) <= max_bytes:
            try:
                event = model.model_validate_json(value)
            except ValidationError as exc:
                failure = exc
            except Exception:  # examined below, where it is named or becomes internal_error
                failure = None
            else:
                _check_key(event, message, key_field)
                return event
        return _decode_step_by_step(
            model, message, max_bytes=max_bytes, key_field=key_field, failure=failure
        )
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(
            DeadLetterReason.INTERNAL_ERROR,
            f"{_where(message)}: the decoder failed on this message ({type(exc).__name__}: "
            f"{quote(str(exc), 200)}); report it with this dead letter",
        ) from exc


class _Malformed(Exception):
    """Raised from inside json.loads hooks; carries the reason out."""

    def __init__(self, code: DeadLetterReason, what: str, literal: str | None = None) -> None:
        super().__init__(what)
        self.code = code
        self.what = what
        self.literal = literal


def _decode_step_by_step(
    model: type[E],
    message: RawMessage | Record,
    *,
    max_bytes: int,
    key_field: str | None,
    failure: ValidationError | None,
) -> E:
    value = message.value
    where = _where(message)
    if value is None or not value:
        raise DecodeError(DeadLetterReason.INVALID_JSON, f"{where}: empty message value")
    if len(value) > max_bytes:
        raise DecodeError(
            DeadLetterReason.OVERSIZE,
            f"{where}: message value is {len(value)} bytes, above the limit of {max_bytes} "
            "bytes (setting MEDIA_MAX_MESSAGE_BYTES)",
        )
    text = _utf8(value, where)
    if text.startswith("\ufeff"):
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value starts with a byte order mark (EF BB BF); "
            "send the JSON as UTF-8 without a BOM",
        )
    if failure is not None and _too_deep_for_parser(failure):
        raise DecodeError(
            DeadLetterReason.TOO_DEEP,
            f"{where}: arrays and objects nest deeper than the parser allows "
            f"({_json_error(failure)}); events nest at most {MAX_JSON_DEPTH} levels",
        )
    document = _parse(text, where)
    if not isinstance(document, dict):
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value must be a JSON object, got {type(document).__name__}",
        )
    _check_structure(document, where)
    event_id = _event_id(document)
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise DecodeError(
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            f"{where}: schema_version {_show(version)} is not supported by this service "
            f"(supported: {SCHEMA_VERSION}); upgrade the service or produce version "
            f"{SCHEMA_VERSION}",
            event_id,
        )
    if failure is None:
        # The fast path did not say why (it was skipped or failed unexpectedly):
        # validate the same way it does, pydantic's JSON mode.
        try:
            event = model.model_validate_json(value)
        except ValidationError as exc:
            failure = exc
        else:
            _check_key(event, message, key_field)
            return event
    if any(error["type"] == "json_invalid" for error in failure.errors(include_url=False)):
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value is not valid JSON ({_json_error(failure)})",
            event_id,
        )
    raise DecodeError(
        DeadLetterReason.SCHEMA_VIOLATION,
        f"{where}: does not match the {model.__name__} contract: {describe(failure)}",
        event_id,
    )


def _where(message: RawMessage | Record) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"


def _utf8(value: bytes, where: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = ""
        if value.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = " (it starts with a UTF-16 byte order mark)"
        raise DecodeError(
            DeadLetterReason.INVALID_UTF8,
            f"{where}: value is not valid UTF-8 (byte {exc.start}: {exc.reason}){hint}; "
            "events must be JSON encoded as UTF-8",
        ) from None


def _parse(text: str, where: str) -> Any:
    """json.loads with every hook that turns a hostile document into a reason."""
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_object,
        )
    except _Malformed as exc:
        at = "" if exc.literal is None else _position(text, exc.literal)
        raise DecodeError(exc.code, f"{where}: {exc.what.replace(_AT, at)}") from None
    except RecursionError:
        raise DecodeError(
            DeadLetterReason.TOO_DEEP,
            f"{where}: arrays and objects nest deeper than the parser allows; "
            f"events nest at most {MAX_JSON_DEPTH} levels",
        ) from None
    except json.JSONDecodeError as exc:
        hint = ""
        if "\x00" in text:
            hint = "; it holds NUL characters: is it UTF-16 or UTF-32 rather than UTF-8?"
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: value is not valid JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}){hint}",
        ) from None


_AT = "<at>"  # where the position of the literal goes in a _Malformed reason


def _number_limit(literal: str) -> NoReturn:
    raise _Malformed(
        DeadLetterReason.INVALID_NUMBER,
        f"the number {quote(literal, 24, as_repr=False)}{_AT} is longer than "
        f"{MAX_NUMBER_CHARS} characters; no field of an event holds such a number "
        "(the largest integer is 2**53 - 1)",
        literal,
    )


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        _number_limit(literal)
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        _number_limit(literal)
    number = float(literal)
    if not math.isfinite(number):
        raise _Malformed(
            DeadLetterReason.INVALID_NUMBER,
            f"the number {literal}{_AT} is too large for a 64-bit float",
            literal,
        )
    return number


def _parse_constant(literal: str) -> NoReturn:
    raise _Malformed(
        DeadLetterReason.INVALID_NUMBER,
        f"{literal}{_AT} is not a JSON number (JSON has no NaN or Infinity); send a finite number",
        literal,
    )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Malformed(
                    DeadLetterReason.INVALID_JSON,
                    f"the key {quote(name)} appears more than once in one object; "
                    "send each field once",
                )
            seen.add(name)
    return document


def _position(text: str, literal: str) -> str:
    """Where a literal first stands as a JSON value (delimited as one), for a reason."""
    found = re.search(r"(?:^|(?<=[\[:,\s]))" + re.escape(literal) + r"(?=[\]},\s]|$)", text)
    if found is None:
        return ""
    index = found.start()
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return f" at line {line} column {column}"


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _check_structure(document: dict[str, Any], where: str) -> None:
    """Depth and unpaired surrogates, walked without recursion; names the top-level field."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "")]
    while stack:
        node, depth, field = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise DecodeError(
                DeadLetterReason.TOO_DEEP,
                f"{where}: field {quote(field)} nests arrays and objects deeper than "
                f"{MAX_JSON_DEPTH} levels, the most an event may",
            )
        if isinstance(node, dict):
            for name, child in node.items():
                top = name if depth == 1 else field
                _check_text(name, top, where)
                stack.append((child, depth + 1, top))
        elif isinstance(node, list):
            stack.extend((child, depth + 1, field) for child in node)
        elif isinstance(node, str):
            _check_text(node, field, where)


def _check_text(text: str, field: str, where: str) -> None:
    if _SURROGATE.search(text):
        raise DecodeError(
            DeadLetterReason.INVALID_JSON,
            f"{where}: field {quote(field)} holds an unpaired UTF-16 surrogate escape "
            "(\\ud800-\\udfff without its pair), which is not a character; "
            "fix the producer's string encoding",
        )


def _event_id(document: dict[str, Any]) -> str | None:
    """The event_id to carry into a dead letter, when it could be one."""
    event_id = document.get("event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 128:
        return event_id
    return None


# pydantic's JSON parser says "recursion limit exceeded" when nesting passes its limit.
_PARSER_DEPTH = re.compile(r"recursion limit", re.IGNORECASE)


def _too_deep_for_parser(failure: ValidationError) -> bool:
    return any(
        error["type"] == "json_invalid" and _PARSER_DEPTH.search(error["msg"])
        for error in failure.errors(include_url=False)
    )


def _json_error(failure: ValidationError) -> str:
    for error in failure.errors(include_url=False):
        if error["type"] == "json_invalid":
            return quote(error["msg"].removeprefix("Invalid JSON: "), 200, as_repr=False)
    return "unknown"


def _check_key(event: Event, message: RawMessage | Record, key_field: str | None) -> None:
    if key_field is None:
        return
    expected = str(getattr(event, key_field))
    key = message.key
    if key is not None and key == expected.encode():
        return
    if key is None:
        actual = "(none)"
    elif len(key) > MAX_QUOTED_CHARS:
        start = key[:MAX_QUOTED_CHARS].decode("utf-8", "replace")
        actual = f"{start!r}... ({len(key)} bytes)"
    else:
        actual = repr(key.decode("utf-8", "replace"))
    raise DecodeError(
        DeadLetterReason.KEY_MISMATCH,
        f"{_where(message)}: message key {actual} must equal the event's {key_field} "
        f"{expected!r}, so that all events of one asset stay in order on one partition",
        event.event_id,
    )


def quote(text: str, limit: int = MAX_QUOTED_CHARS, *, as_repr: bool = True) -> str:
    """`text` for a reason: at most `limit` characters, escaped, the cut said.

    A message may carry keys, field names and values of any length; a reason
    quotes their start only, so that it stays readable and small.
    """
    shown = text[:limit]
    if as_repr:
        shown = repr(shown)
    else:
        shown = shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown
    if len(text) > limit:
        shown += f"... ({len(text)} characters)"
    return shown


def _show(value: Any) -> str:
    """Any JSON value for a reason, cut like `quote`."""
    if isinstance(value, str):
        return quote(value)
    return quote(repr(value), as_repr=False)


def describe(exc: ValidationError) -> str:
    """A compact list of `field.path: message` for the first few validation errors."""
    parts = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False)[
        :MAX_REPORTED_ERRORS
    ]:
        path = ".".join(_loc(p) for p in error["loc"]) or "(event)"
        parts.append(f"{path}: {quote(error['msg'], 300, as_repr=False)}")
    more = exc.error_count() - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _loc(part: str | int) -> str:
    if isinstance(part, int):
        return str(part)
    if len(part) <= MAX_QUOTED_CHARS and part.isprintable() and "." not in part:
        return part
    return quote(part)
