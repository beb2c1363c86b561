from __future__ import annotations

import pytest

from service.domain.decoding import DecodeError, decode
from service.domain.enums import DeadLetterReason
from service.domain.events import AssetLifecycle, AssetRegistered
from tests.unit.factories import raw, registration_body


def reason_of(value: bytes | dict[str, object], key: bytes | None = b"a1") -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(AssetRegistered, raw(value, key), max_bytes=4096)
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
    from service.agents.emit import dead_letter_event_id
    from service.domain.registry import SourceRef

    short = SourceRef(topic="t", partition=1, offset=2, value_base64="")
    assert dead_letter_event_id(short) == "dead-letter/t/1/2"
    long = SourceRef(topic="x" * 249, partition=1, offset=2, value_base64="")
    assert len(dead_letter_event_id(long)) <= 128
    assert dead_letter_event_id(long) != dead_letter_event_id(long.model_copy(update={"offset": 3}))
