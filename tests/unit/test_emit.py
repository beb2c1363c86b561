"""The dead-letter publisher: what it sends, and how its failure is told apart."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from service.domain.decoding import RawMessage
from service.domain.enums import DeadLetterReason
from service.domain.events import DEAD_LETTER_CUT, MAX_DEAD_LETTER_REASON_CHARS
from service.domain.registry import Rejection, SourceRef
from service.errors import DeadLetterUnavailable, DecodeError
from service.handlers.emit import DeadLetters, fit_reason
from service.observability import Instruments


class Producer:
    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append((topic, key, value))


class Counters:
    def __init__(self) -> None:
        self.counted: list[tuple[DeadLetterReason, str]] = []

    async def count(self, reason: DeadLetterReason, dead_letter_id: str) -> bool:
        self.counted.append((reason, dead_letter_id))
        return True


def publisher(producer: Producer, counters: Counters, cap: int = 8) -> DeadLetters:
    sent = Instruments.create().dead_letters
    return DeadLetters(producer, "dl", counters, sent, max_original_bytes=cap)


async def test_a_value_over_the_limit_is_cut_and_described_whole() -> None:
    producer, counters = Producer(), Counters()
    value = b"0123456789abcdef"
    message = RawMessage("t", 1, 7, b"k1", value, timestamp_ms=5)
    error = DecodeError(DeadLetterReason.OVERSIZE, "too big")
    await publisher(producer, counters).decode_failure(message, error)
    [(topic, key, payload)] = producer.sent
    letter = json.loads(payload)
    assert (topic, key) == ("dl", None)
    assert base64.b64decode(letter["value_base64"]) == value[:8]
    assert letter["value_truncated"] is True and letter["value_size_bytes"] == 16
    assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(letter["key_base64"]) == b"k1" and letter["key_truncated"] is False
    assert letter["event_id"] == "dead-letter/t/1/7" and letter["source_timestamp_ms"] == 5
    assert counters.counted == [(DeadLetterReason.OVERSIZE, "t/1/7")]


async def test_a_rejection_carries_its_source_bytes_and_asset_key() -> None:
    producer, counters = Producer(), Counters()
    source = SourceRef(
        topic="t", partition=0, offset=3, key_base64="YTE=", value_base64="e30="
    )  # key a1, value {}
    rejection = Rejection(
        reason_code=DeadLetterReason.INVALID_TRANSITION,
        reason="no",
        event_id="e1",
        asset_id="a1",
        source=source,
    )
    await publisher(producer, counters).rejection(rejection)
    [(_, key, payload)] = producer.sent
    letter = json.loads(payload)
    assert key == b"a1"
    assert (letter["value_base64"], letter["value_truncated"], letter["value_size_bytes"]) == (
        "e30=",
        False,
        2,
    )
    assert letter["original_event_id"] == "e1" and letter["asset_id"] == "a1"


async def test_a_failed_send_is_dead_letter_unavailable_and_nothing_is_counted() -> None:
    cause = RuntimeError("broker gone")
    producer, counters = Producer(cause), Counters()
    message = RawMessage("t", 0, 1, None, b"x")
    with pytest.raises(DeadLetterUnavailable) as caught:
        await publisher(producer, counters).decode_failure(
            message, DecodeError(DeadLetterReason.INVALID_JSON, "bad")
        )
    assert caught.value.__cause__ is cause
    assert "'dl'" in str(caught.value) and "t/0/1" in str(caught.value)
    assert "Kafka is reachable" in str(caught.value)
    assert counters.counted == []


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("", "no reason given"),
        ("  fine  ", "fine"),
        ("a\ud800b", "a\\ud800b"),
    ],
)
def test_reasons_fit_the_contract(reason: str, expected: str) -> None:
    assert fit_reason(reason) == expected


def test_a_long_reason_is_cut_with_a_marker() -> None:
    cut = fit_reason("r" * 100_000)
    assert len(cut) == MAX_DEAD_LETTER_REASON_CHARS and cut.endswith(DEAD_LETTER_CUT)
    assert fit_reason("r" * MAX_DEAD_LETTER_REASON_CHARS) == "r" * MAX_DEAD_LETTER_REASON_CHARS


def test_ids_that_do_not_fit_the_contract_are_left_out() -> None:
    from service.handlers.emit import dead_letter

    letter: Any = dead_letter(
        source=SourceRef(topic="t", partition=0, offset=1, value_base64=""),
        code=DeadLetterReason.SCHEMA_VIOLATION,
        reason="r",
        event_id="e" * 500,
        asset_id="not an id",
        key=None,
        value=b"",
    )
    assert (letter.original_event_id, letter.asset_id, letter.key_base64) == (None, None, None)
