"""The watchdog's reading of a consumer: dead, stalled, crashed, or merely waiting."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from service.streaming.watchdog import consumer_problem, kafka_problem


def app(**consumer: Any) -> Any:
    defaults: dict[str, Any] = {"failure": None, "drained_at": time.monotonic(), "_thread": None}
    return SimpleNamespace(_consumer=SimpleNamespace(**{**defaults, **consumer}), rebalancing=False)


def test_a_consumer_that_turns_is_alive() -> None:
    assert consumer_problem(app(), stall_seconds=60) is None


def test_an_app_not_started_yet_is_not_dead() -> None:
    assert consumer_problem(SimpleNamespace(_consumer=None), stall_seconds=60) is None


def test_a_fetch_loop_that_died_is_reported_with_its_cause() -> None:
    problem = consumer_problem(app(failure=RuntimeError("boom")), stall_seconds=60)
    assert problem is not None and "RuntimeError: boom" in problem


def test_a_crashed_consumer_thread_is_reported() -> None:
    crashed = asyncio.Event()
    crashed.set()
    thread = SimpleNamespace(_crashed=crashed, crash_reason=OSError("gone"))
    problem = consumer_problem(app(_thread=thread), stall_seconds=60)
    assert problem is not None and "gone" in problem


def test_a_stalled_loop_is_dead_but_not_during_a_rebalance() -> None:
    stalled = app(drained_at=time.monotonic() - 120)
    assert "has not run for" in (consumer_problem(stalled, stall_seconds=60) or "")
    stalled.rebalancing = True
    assert consumer_problem(stalled, stall_seconds=60) is None


def test_kafka_is_unreachable_while_the_coordinator_is_unknown() -> None:
    coordinator = SimpleNamespace(coordinator_id=None)
    client = SimpleNamespace(_coordinator=coordinator)
    reachable = app(_thread=SimpleNamespace(_consumer=client))
    assert kafka_problem(reachable) is not None
    coordinator.coordinator_id = 1
    assert kafka_problem(reachable) is None
