"""Liveness of a worker's consumer, for /healthz and for ending a worker that stopped consuming.

A worker whose fetch loop died keeps its web server, its timers and, for a while,
its place in the group: it looks healthy and consumes nothing. The watchdog tells
that apart from a worker that merely waits (partitions paused while Redis is away,
a rebalance under way) and ends the process with a non-zero status, so that its
supervisor (Kubernetes, systemd, docker) starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

EXIT_CONSUMER_DIED = 70  # EX_SOFTWARE
GRACE_SECONDS = 30.0


@dataclass
class Liveness:
    """Why the worker is dead, once it is; None while it lives."""

    reason: str | None = None


def consumer_problem(app: Any, *, stall_seconds: float) -> str | None:
    """What is wrong with the app's consumer, or None when it consumes (or may wait)."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return None  # not started yet
    failure = getattr(consumer, "failure", None)
    if failure is not None:
        return f"the consumer's fetch loop died: {type(failure).__name__}: {failure}"
    thread = getattr(consumer, "_thread", None)
    crashed = getattr(thread, "_crashed", None)
    if crashed is not None and crashed.is_set():
        reason = getattr(thread, "crash_reason", None)
        return f"the Kafka consumer thread crashed: {reason!r}"
    drained_at = getattr(consumer, "drained_at", None)
    if drained_at is not None and not app.rebalancing:
        idle = time.monotonic() - drained_at
        if idle > stall_seconds:
            return f"the consumer's fetch loop has not run for {idle:.0f} s"
    return None


def kafka_problem(app: Any) -> str | None:
    """Whether the consumer currently knows its group coordinator (Kafka reachable)."""
    consumer = getattr(app, "_consumer", None)
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    coordinator = getattr(client, "_coordinator", None)
    if coordinator is None:
        return None  # not started, or a driver without one: nothing to tell
    if getattr(coordinator, "coordinator_id", None) is None:
        return "no Kafka group coordinator (Kafka unreachable, or the group is forming)"
    return None


def end_process(liveness: Liveness, reason: str) -> None:
    """Record why, stop the worker cleanly, and make sure it ends within the grace period."""
    if liveness.reason is not None:
        return
    liveness.reason = reason
    log.critical("%s: stopping the worker (exit status %d)", reason, EXIT_CONSUMER_DIED)
    os.kill(os.getpid(), signal.SIGTERM)
    timer = threading.Timer(GRACE_SECONDS, os._exit, args=(EXIT_CONSUMER_DIED,))
    timer.daemon = True
    timer.start()
