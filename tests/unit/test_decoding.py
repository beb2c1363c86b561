from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import model_validator

from service.domain.decoding import RawMessage, as_raw, decode
from service.domain.enums import DeadLetterReason
from service.domain.events import AssetLifecycle, AssetRegistered
from service.errors import DecodeError
from tests.unit.factories import raw, registration_body


def reason_of(
    value: bytes | dict[str, object], key: bytes | None = b"a1", max_bytes: int = 4096
) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(AssetRegistered, raw(value, key), max_bytes=max_bytes)
    return caught.value


def test_valid_message_decodes() -> None:
    event = decode(AssetRegistered, raw(registration_body()), max_bytes=4096)
    assert event.asset_id == "a1"


def test_oversize() -> None:
    error = reason_of(b"x" * 5000)
    assert error.code is DeadLetterReason.OVERSIZE
    assert "5000 bytes" in error.reason and "MEDIA_MAX_MESSAGE_BYTES" in error.reason


def test_invalid_utf8() -> None:
    assert reason_of(b'{"a": "\xff"}').code is DeadLetterReason.INVALID_UTF8


@pytest.mark.parametrize("value", [b"{", b"", b"nul"])
def test_invalid_json(value: bytes) -> None:
    assert reason_of(value).code is DeadLetterReason.INVALID_JSON


def test_not_an_object() -> None:
    error = reason_of(b"[1]")
    assert error.code is DeadLetterReason.INVALID_JSON
    assert "JSON object" in error.reason


def test_unknown_schema_version_is_named() -> None:
    error = reason_of(registration_body(schema_version=2))
    assert error.code is DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION
    assert "schema_version 2" in error.reason
    assert error.event_id is not None


def test_schema_violation_names_the_field_path() -> None:
    error = reason_of(registration_body(width=-1, tags=["ok", "y" * 80]))
    assert error.code is DeadLetterReason.SCHEMA_VIOLATION
    assert "width:" in error.reason
    assert "tags.1:" in error.reason
    assert "t[2]@41" in error.reason


def test_key_must_be_the_asset_id() -> None:
    assert reason_of(registration_body(), key=b"other").code is DeadLetterReason.KEY_MISMATCH
    assert reason_of(registration_body(), key=None).code is DeadLetterReason.KEY_MISMATCH


def test_lifecycle_missing_campaign() -> None:
    body = {
        "event_id": "e1",
        "occurred_at": "2026-03-01T12:00:00Z",
        "asset_id": "a1",
        "action": "used",
    }
    with pytest.raises(DecodeError) as caught:
        decode(AssetLifecycle, raw(body), max_bytes=4096)
    assert caught.value.code is DeadLetterReason.SCHEMA_VIOLATION
    assert "campaign_id is required" in caught.value.reason


def test_source_keeps_original_bytes() -> None:
    message = raw(b"\x00\x01binary", key=b"k")
    source = message.source()
    assert source.value_base64 == "AAFiaW5hcnk="
    assert source.key_base64 == "aw=="
    assert source.dead_letter_id == "t/2/41"


def test_dead_letter_ids_fit_the_contract_for_any_topic_name() -> None:
    from service.domain.registry import SourceRef
    from service.handlers.emit import dead_letter_event_id

    short = SourceRef(topic="t", partition=1, offset=2, value_base64="")
    assert dead_letter_event_id(short) == "dead-letter/t/1/2"
    long = SourceRef(topic="x" * 249, partition=1, offset=2, value_base64="")
    assert len(dead_letter_event_id(long)) <= 128
    assert dead_letter_event_id(long) != dead_letter_event_id(long.model_copy(update={"offset": 3}))


@pytest.mark.parametrize(
    ("value", "code", "says"),
    [
        (b"[" * 5000, DeadLetterReason.TOO_DEEP, "nest"),
        (b'{"tags":' + b"[" * 40 + b"]" * 40 + b"}", DeadLetterReason.TOO_DEEP, "'tags'"),
        (b'{"width":' + b"9" * 5000 + b"}", DeadLetterReason.INVALID_NUMBER, "5000 characters"),
        (b'{"width":1e400}', DeadLetterReason.INVALID_NUMBER, "64-bit float"),
        (b'{"width":NaN}', DeadLetterReason.INVALID_NUMBER, "NaN at line 1 column 10"),
        (b'{"width":-Infinity}', DeadLetterReason.INVALID_NUMBER, "JSON has no NaN"),
        (b'{"name":"\\ud800"}', DeadLetterReason.INVALID_JSON, "field 'name' holds an unpaired"),
        (b'{"\\udc00":1}', DeadLetterReason.INVALID_JSON, "unpaired UTF-16 surrogate"),
        (b'\xef\xbb\xbf{"a":1}', DeadLetterReason.INVALID_JSON, "byte order mark"),
        ('{"a":1}'.encode("utf-16"), DeadLetterReason.INVALID_UTF8, "UTF-16 byte order mark"),
        ('{"a":1}'.encode("utf-16-le"), DeadLetterReason.INVALID_JSON, "UTF-16 or UTF-32"),
        (b'{"a":1,"a":2}', DeadLetterReason.INVALID_JSON, "'a' appears more than once"),
    ],
)
def test_hostile_values_become_reasons(value: bytes, code: DeadLetterReason, says: str) -> None:
    error = reason_of(value, max_bytes=1 << 20)
    assert error.code is code
    assert says in error.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", "5"),
        ("width", True),
        ("width", 5.0),
        ("file_size_bytes", "250000"),
        ("file_size_bytes", 2**40 + 1),
        ("duration_seconds", "3.5"),
    ],
)
def test_numbers_are_strict(field: str, value: object) -> None:
    error = reason_of(registration_body(**{field: value}))
    assert error.code is DeadLetterReason.SCHEMA_VIOLATION
    assert f"{field}:" in error.reason


def test_long_keys_and_field_names_are_quoted_short() -> None:
    name = "k" * 5000
    error = reason_of(registration_body(**{name: 1}), max_bytes=1 << 20)
    assert error.code is DeadLetterReason.SCHEMA_VIOLATION
    assert "Extra inputs are not permitted" in error.reason and "(5000 characters)" in error.reason
    assert len(error.reason) < 600

    error = reason_of(registration_body(), key=b"\xff" * 100_000)
    assert error.code is DeadLetterReason.KEY_MISMATCH
    assert "(100000 bytes)" in error.reason and len(error.reason) < 600

    error = reason_of(registration_body(schema_version="9" * 10_000), max_bytes=1 << 20)
    assert error.code is DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION
    assert len(error.reason) < 600


def test_only_a_plausible_event_id_is_carried() -> None:
    assert reason_of(registration_body(event_id="e" * 129, width=0)).event_id is None
    assert reason_of(registration_body(event_id="e1", width=0)).event_id == "e1"


def test_an_unexpected_failure_of_the_decoder_is_a_decode_error() -> None:
    class Exploding(AssetLifecycle):
        @model_validator(mode="after")
        def _explode(self) -> Exploding:
            raise KeyError("surprise")

    body = {"event_id": "e1", "occurred_at": "2026-03-01T12:00:00Z", "asset_id": "a1"}
    with pytest.raises(DecodeError) as caught:
        decode(Exploding, raw({**body, "action": "approved"}), max_bytes=4096)
    assert caught.value.code is DeadLetterReason.INTERNAL_ERROR
    assert "KeyError" in caught.value.reason


@pytest.mark.parametrize(("timestamp", "expected"), [(1764325123457, 1764325123457), (-1, None)])
def test_as_raw_keeps_a_consumer_records_timestamp_in_ms(
    timestamp: int, expected: int | None
) -> None:
    # The worker's consumer hands aiokafka's records to the handlers, timestamps in ms.
    record = ConsumerRecord("t", 3, 41, timestamp, 0, b"k", b"v", None, 1, 1, [])
    assert as_raw(record) == RawMessage("t", 3, 41, b"k", b"v", timestamp_ms=expected)
