"""The handlers' producer on Faust's: a failed send raises the client's error."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError, UnknownTopicOrPartitionError
from faust.exceptions import ProducerSendError

from service.app import FaustProducer
from service.resilience import is_transient


class RefusingProducer:
    """Faust's producer as it fails: its own error, the client's as the cause."""

    def __init__(self, cause: BaseException | None) -> None:
        self.cause = cause

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        if self.cause is None:
            raise ProducerSendError("no cause")
        try:
            raise self.cause
        except BaseException as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc


class App:
    def __init__(self, cause: BaseException | None) -> None:
        self.producer = RefusingProducer(cause)


async def test_a_broker_away_surfaces_as_the_clients_transient_error() -> None:
    producer = FaustProducer(App(UnknownTopicOrPartitionError()))  # type: ignore[arg-type]
    with pytest.raises(UnknownTopicOrPartitionError) as raised:
        await producer.send("t", b"k", b"v")
    assert is_transient(raised.value)


async def test_a_refused_record_stays_a_failure_of_the_record() -> None:
    producer = FaustProducer(App(MessageSizeTooLargeError()))  # type: ignore[arg-type]
    with pytest.raises(MessageSizeTooLargeError) as raised:
        await producer.send("t", b"k", b"v")
    assert not is_transient(raised.value)


async def test_fausts_error_without_a_cause_is_raised_as_it_is() -> None:
    with pytest.raises(ProducerSendError):
        await FaustProducer(App(None)).send("t", None, b"v")  # type: ignore[arg-type]
