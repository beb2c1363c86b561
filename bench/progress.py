"""Watching Redis until it reflects every event: the end of each measurement.

The measurement ends when the partitions' `applied` counters (written by
the metrics step in the same transaction as the sums) add up to the number of
events produced, not when a consumer has read them: what counts is that the
metrics are visible to the API. The counters are polled every 100 ms, one
pipelined round trip, so the figures are exact to about a tenth of a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service.store.metrics import MetricsStore

POLL_SECONDS = 0.1
T = TypeVar("T")


class PhaseTimeout(RuntimeError):
    """A phase did not finish in its time budget."""


@dataclass(frozen=True, slots=True)
class Progress:
    """When a phase started, first showed an applied event, and completed (monotonic)."""

    started: float
    first_at: float
    first_applied: int
    done_at: float
    applied: int
    duplicates: int
    late: int

    @property
    def seconds(self) -> float:
        return self.done_at - self.started

    @property
    def startup_seconds(self) -> float:
        return self.first_at - self.started

    def rate(self, events: int) -> float:
        """Events per second from the start of the phase until Redis showed them all."""
        return events / self.seconds

    def steady_rate(self) -> float:
        """Events per second from the first applied event seen to the last: start-up
        (imports, group join, first fetch) excluded."""
        span = self.done_at - self.first_at
        return (self.applied - self.first_applied) / span if span > 0 else float("nan")


async def wait_applied(
    store: MetricsStore,
    *,
    partitions: int,
    target: int,
    started: float,
    baseline: int = 0,
    check: Callable[[], None] = lambda: None,
) -> Progress:
    """Poll the counters until `applied` reaches `target`; `check` raises if the
    process being measured died, so a crash fails fast instead of at the timeout."""
    first_at: float | None = None
    first_applied = baseline
    while True:
        counters = await store.counters(partitions)
        now = time.monotonic()
        applied = counters.applied
        if first_at is None and applied > baseline:
            first_at, first_applied = now, applied
        if applied >= target:
            return Progress(
                started=started,
                first_at=first_at if first_at is not None else now,
                first_applied=first_applied,
                done_at=now,
                applied=applied,
                duplicates=counters.duplicates,
                late=counters.late,
            )
        check()
        await asyncio.sleep(POLL_SECONDS)


async def within(phase: str, seconds: float, awaitable: Awaitable[T]) -> T:
    """Bound a phase's run time: a stuck consumer fails the run with a clear message."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise PhaseTimeout(
            f"{phase} did not finish within {seconds:.0f} s (option --phase-timeout)"
        ) from None
