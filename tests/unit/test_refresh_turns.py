"""RefreshTurns: the boards are refreshed only under the refresh lease; a worker gives it
up after each run, a refresher process keeps it until it stops."""

from __future__ import annotations

import pytest

from service.handlers.leaderboards import RefreshTurns


class Lease:
    """One holder at a time; expiry is left to the Redis lease's own tests."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.held_for: list[float] = []

    async def hold(self, token: str, seconds: float) -> bool:
        if self.holder not in (None, token):
            return False
        self.holder = token
        self.held_for.append(seconds)
        return True

    async def release(self, token: str) -> None:
        if self.holder == token:
            self.holder = None


class Refresher:
    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.holders: list[str | None] = []
        self.fail = False

    async def refresh(self) -> int:
        self.holders.append(self.lease.holder)
        if self.fail:
            raise ConnectionError("Redis went away")
        return 7


def turns(lease: Lease, refresher: Refresher, token: str, *, keep: bool) -> RefreshTurns:
    return RefreshTurns(
        refresher,  # type: ignore[arg-type]  # the one method RefreshTurns calls
        lease,
        token,
        lease_seconds=90.0,
        keep=keep,
    )


async def test_a_worker_refreshes_under_the_lease_and_gives_it_up_after() -> None:
    lease = Lease()
    refresher = Refresher(lease)
    worker = turns(lease, refresher, "worker", keep=False)
    assert await worker.run() == 7
    assert refresher.holders == ["worker"] and lease.holder is None
    assert lease.held_for == [90.0]
    refresher.fail = True
    with pytest.raises(ConnectionError):
        await worker.run()
    assert lease.holder is None, "given up after a failed run too"


async def test_a_refresher_process_keeps_the_lease_and_the_worker_skips() -> None:
    lease = Lease()
    refresher = Refresher(lease)
    process = turns(lease, refresher, "refresher", keep=True)
    worker = turns(lease, refresher, "worker", keep=False)
    assert await process.run() == 7
    assert lease.holder == "refresher"
    assert await worker.run() is None
    assert await process.run() == 7, "extended"
    assert refresher.holders == ["refresher", "refresher"]
    await process.stop()
    assert lease.holder is None
    assert await worker.run() == 7, "the worker takes over at its next run"


async def test_while_a_worker_runs_a_starting_refresher_waits_for_the_next_run() -> None:
    lease = Lease()
    refresher = Refresher(lease)
    await lease.hold("worker", 90.0)  # in the middle of a worker's run
    process = turns(lease, refresher, "refresher", keep=True)
    assert await process.run() is None
    await lease.release("worker")
    assert await process.run() == 7
