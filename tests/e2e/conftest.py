"""End-to-end fixtures: worker processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.worker import Worker

Spawn = Callable[..., Worker]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """`spawn(env, name="worker", command="worker")` starts a worker (or another command
    of the service, such as `refresher`) whose log is `<tmp_path>/<name>.log`.

    Every worker started here is killed when the test ends, passed or failed, frozen
    (SIGSTOP) or not; a test that means to check a clean stop calls `worker.stop()`.
    """
    started: list[Worker] = []

    def start(env: dict[str, str], name: str = "worker", command: str = "worker") -> Worker:
        worker = Worker(env, tmp_path / f"{name}.log", command)
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.kill()
