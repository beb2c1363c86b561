"""`service refresher`: the leaderboard refresh in a process of its own.

A worker's group leader refreshes the boards on the event loop that also consumes the
input topics; while many assets change per interval, each run delays the consumers.
This process takes that work off them:

1. Connect a Kafka producer (the performance rules send suggestions) and Redis; while
   either is away, wait and try again, saying why.
2. Every `MEDIA_LEADERBOARD_REFRESH_SECONDS`, hold the refresh lease
   (`P:lb-refresh-lease`, service/store/leases.py) and run one refresh: the claims,
   writes and releases of docs/processing.md. Nothing else waits for this process, so a
   run has no cap of assets (a worker's leader stops at 2,000): it goes on until the
   queues are empty or one interval has passed, and then the next run starts at once.
   Several replicas may run; the one holding the lease refreshes, the others wait for
   it. A failed run is logged and repeated at
   the next interval (its claims are given out again).
3. On SIGTERM or SIGINT, finish the run, give the lease up so that a worker's leader or
   another replica takes over at once, and close the clients. A refresher killed
   outright frees the lease when it expires (about a minute).

Workers skip their own runs while a refresher holds the lease; with
`MEDIA_LEADERBOARD_REFRESH_IN_WORKER=false` they never refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import signal
import socket
import sys
import time

from aiokafka import AIOKafkaProducer

from service.config import Settings
from service.handlers.leaderboards import RefreshTurns, lease_seconds
from service.observability import logging_config, redact
from service.resilience import is_transient
from service.runtime import Runtime
from service.streaming.kafka_client import client_options

log = logging.getLogger("service.refresher")

RETRY_MAX_SECONDS = 30.0


class KafkaProducer:
    """The handlers' producer port on an aiokafka producer (acks from every replica)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        await self._producer.send_and_wait(topic, value, key=key)


async def run_refresher(settings: Settings, stop: asyncio.Event) -> int:
    """Refresh until `stop` is set; returns the exit status (0 after a clean stop)."""
    producer = await started_producer(settings, stop)
    if producer is None:
        return 0
    runtime = Runtime.build(settings, KafkaProducer(producer))
    interval = settings.leaderboard_refresh_seconds
    # Unlike a worker's leader, nothing else waits for this loop: a run goes on until the
    # queues are empty or an interval has passed (then the next starts at once).
    refresher = runtime.leaderboards.budgeted(
        max_assets_per_run=sys.maxsize, max_seconds_per_run=interval
    )
    turns = RefreshTurns(
        refresher,
        runtime.refresh_lease,
        f"refresher:{socket.gethostname()}:{os.getpid()}",
        lease_seconds=lease_seconds(settings.leaderboard_refresh_seconds),
        keep=True,
    )
    log.info("refreshing the boards every %ss", interval)
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                done = await turns.run()
                if done:
                    log.info("board refresh: %d assets recomputed", done)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("board refresh postponed: %s", redact(repr(exc)))
                else:
                    log.exception("board refresh failed; it runs again at its next interval")
            # A run cut off by its interval left work: the next one starts at once.
            await _wait(stop, max(0.0, interval - (time.monotonic() - started)))
    finally:
        try:
            await turns.stop()
        except Exception as exc:  # the lease then expires on its own
            log.warning("could not give the refresh lease up: %s", redact(repr(exc)))
        await runtime.close()
        await producer.stop()
    log.info("refresher stopped")
    return 0


async def started_producer(settings: Settings, stop: asyncio.Event) -> AIOKafkaProducer | None:
    """A started producer, retrying while Kafka is away; None when stopped first."""
    delay = 1.0
    while not stop.is_set():
        producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
        try:
            await producer.start()
            return producer
        except Exception as exc:
            await producer.stop()
            log.warning(
                "cannot reach Kafka at %s (%s); retrying in %.0fs",
                settings.kafka_bootstrap_servers,
                redact(repr(exc)),
                delay,
            )
            await _wait(stop, delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def main(settings: Settings) -> int:
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_refresher(settings, stop)

    return asyncio.run(run())
