"""Keeping a worker going: transient failures are retried, anything else is dead-lettered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError
from redis.exceptions import BusyLoadingError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.agents.emit import DeadLetters
from service.agents.registry import ConcurrentUpdateError
from service.domain.decoding import DecodeError, RawMessage
from service.domain.enums import DeadLetterReason

log = logging.getLogger(__name__)

# Failures of the infrastructure, not of the message: wait and try the same message again.
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    TryAgainError,
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    ConcurrentUpdateError,
    ConnectionError,
    TimeoutError,
)


async def process(
    message: RawMessage,
    handle: Callable[[RawMessage], Awaitable[object]],
    dead_letters: DeadLetters,
    *,
    max_backoff: float,
) -> None:
    """Handle one message until it is done, whatever it takes.

    Every step of a handler is safe to repeat, so a transient failure retries the
    whole message. A message that cannot be decoded, or that makes the handler fail
    for a reason other than the infrastructure, goes to the dead-letter topic so
    that one bad message never stops the partition.
    """
    backoff = 0.05
    while True:
        try:
            try:
                await handle(message)
            except DecodeError as error:
                await dead_letters.decode_failure(message, error)
            except TRANSIENT:
                raise
            except Exception as exc:  # a bug or an unforeseen input: keep the partition moving
                log.exception("failed to process %s", message.source().dead_letter_id)
                await dead_letters.decode_failure(
                    message,
                    DecodeError(
                        DeadLetterReason.INTERNAL_ERROR,
                        f"the service failed on this message ({type(exc).__name__}: {exc}); "
                        "report it with this dead letter, then replay the message",
                    ),
                )
            return
        except TRANSIENT as exc:
            log.warning(
                "transient failure on %s, retrying in %.2fs: %r",
                message.source().dead_letter_id,
                backoff,
                exc,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
