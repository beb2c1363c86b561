"""LeaderboardRefresher on the in-memory fakes: dirty assets recomputed and only then taken
out of their set, moves and deletions, the hourly sweep, the per-run cap, and the
performance rules told each asset's totals per channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest

from service.domain import registry as rules
from service.domain.enums import Channel
from service.domain.metrics import Totals
from service.domain.registry import Asset
from service.domain.windows import DAY, HOUR, Window
from service.handlers.leaderboards import LeaderboardRefresher
from service.store.leaderboards import DirtySet, Placement
from service.store.metrics import ApplyStatus, PerfRow
from tests.fakes import FakeLeaderboardStore, FakeMetricsStore, FakeRegistryStore
from tests.unit.factories import T0, lifecycle, registration, source

# Some minutes into an hour, so that an hour later is a new hour.
NOW = float(int(T0.timestamp()) + 20 * 60)
PARTITIONS = 2


class Boards(FakeLeaderboardStore):
    """The fake store, noting each write and each `done`; `fail_on` makes `place` raise."""

    def __init__(self, metrics: FakeMetricsStore) -> None:
        super().__init__(metrics)
        self.log: list[tuple[str, Any]] = []
        self.fail_on: str | None = None

    async def place(
        self, asset_id: str, library_id: str | None, previous: str | None, boards: Placement
    ) -> None:
        if asset_id == self.fail_on:
            raise ConnectionError("Redis went away")
        await super().place(asset_id, library_id, previous, boards)
        self.log.append(("place", asset_id))

    async def done(self, which: DirtySet, asset_ids: Sequence[str]) -> None:
        await super().done(which, asset_ids)
        self.log.append(("done", set(asset_ids)))


class Rules:
    """The performance rules' port: remembers what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, dict[Window, dict[Channel, Totals]]]] = []

    async def on_totals(
        self, asset: Asset, totals: Mapping[Window, Mapping[Channel, Totals]]
    ) -> int:
        self.told.append((asset.asset_id, {w: dict(t) for w, t in totals.items()}))
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    max_assets: int = 2_000
    registry: FakeRegistryStore = field(default_factory=FakeRegistryStore)
    metrics: FakeMetricsStore = field(default_factory=FakeMetricsStore)
    rules: Rules = field(default_factory=Rules)
    clock: Clock = field(default_factory=Clock)
    offsets: Any = field(default_factory=count)
    boards: Boards = field(init=False)
    refresher: LeaderboardRefresher = field(init=False)

    def __post_init__(self) -> None:
        self.boards = Boards(self.metrics)
        self.refresher = LeaderboardRefresher(
            self.boards,
            self.metrics,
            self.registry,
            partitions=PARTITIONS,
            suggestions=self.rules,
            max_assets_per_run=self.max_assets,
            clock=self.clock,
        )

    async def register(self, asset_id: str, library_id: str) -> None:
        """Register (or move) the asset, and queue it as the registry handler does."""
        loaded = await self.registry.load(asset_id)
        event = registration(asset_id, library_id=library_id)
        state = rules.register(loaded.state, event, source()).state
        assert await self.registry.commit(asset_id, loaded.rev, state, {})
        await self.boards.mark_dirty([asset_id])

    async def delete(self, asset_id: str) -> None:
        loaded = await self.registry.load(asset_id)
        decision = rules.lifecycle(
            loaded.state, lifecycle("deleted", asset_id), source(), T0, max_held=5
        )
        assert await self.registry.commit(asset_id, loaded.rev, decision.state, {})
        await self.boards.mark_dirty([asset_id])

    async def perform(
        self, rows: list[tuple[str, str, float, int, int]], partition: int = 0
    ) -> None:
        """(asset, channel, seconds before NOW, impressions, clicks) rows on one partition."""
        await self.metrics.point(partition, sorted({r[0] for r in rows}))
        first = await self.metrics.position(partition) + 1
        perf = [
            PerfRow(f"ev{next(self.offsets)}", a, ch, "c1", int(NOW - ago), imp, clicks, 0, 0, 0, 0)
            for a, ch, ago, imp, clicks in rows
        ]
        result = await self.metrics.apply(partition, first, first + len(perf) - 1, perf, NOW)
        assert result.status is ApplyStatus.APPLIED

    async def board(
        self, library_id: str, window: Window = Window.DAY, channel: Channel | None = None
    ) -> dict[str, Totals]:
        entries = await self.boards.entries(library_id, window, channel)
        return {e.asset_id: e.totals for e in entries}

    async def dirty(self) -> set[str]:
        return self.boards.queued()


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_dirty_assets_are_recomputed_then_taken_out_of_their_sets(rig: Rig) -> None:
    await rig.register("a1", "L1")
    await rig.register("a2", "L1")
    await rig.perform([("a1", "email", 60, 1000, 50), ("a2", "web", 2 * DAY, 400, 4)])
    await rig.perform([("a3", "web", 60, 10, 1)], partition=1)  # not registered
    assert await rig.dirty() == {"a1", "a2", "a3"}

    assert await rig.refresher.refresh() == 5  # a1, a2 from the registry, then per partition
    assert await rig.dirty() == set()
    assert await rig.board("L1") == {"a1": Totals(1000, 50)}
    assert await rig.board("L1", Window.WEEK) == {"a1": Totals(1000, 50), "a2": Totals(400, 4)}
    assert await rig.board("L1", Window.LIFETIME, Channel.WEB) == {"a2": Totals(400, 4)}
    assert await rig.boards.placed(["a1", "a2", "a3"]) == ["L1", "L1", None]
    # Each asset's entries are written before the set it came from lets it go.
    for n, (kind, what) in enumerate(rig.boards.log):
        if kind == "done":
            written = {a for k, a in rig.boards.log[:n] if k == "place"}
            assert what <= written

    assert await rig.refresher.refresh() == 0, "nothing changed"


async def test_a_failed_write_leaves_the_assets_queued(rig: Rig) -> None:
    await rig.register("a1", "L1")
    await rig.register("a2", "L1")
    await rig.perform([("a1", "email", 60, 1000, 50), ("a2", "email", 60, 100, 1)])
    rig.boards.fail_on = "a2"
    with pytest.raises(ConnectionError):
        await rig.refresher.refresh()
    assert await rig.dirty() == {"a1", "a2"}, "a crash repeats a refresh, never skips one"

    rig.boards.fail_on = None
    assert await rig.refresher.refresh() == 4
    assert await rig.dirty() == set()
    assert await rig.board("L1") == {"a1": Totals(1000, 50), "a2": Totals(100, 1)}


async def test_an_asset_counted_again_while_it_is_recomputed_is_recomputed_again(
    rig: Rig,
) -> None:
    await rig.register("a1", "L1")
    await rig.refresher.refresh()
    await rig.perform([("a1", "email", 60, 1000, 50)])  # marks a1 in partition 0's set only
    recomputed = rig.refresher.recompute
    calls = 0

    async def recompute_while_events_arrive(asset_ids: Any, now: float, source: Any) -> None:
        nonlocal calls
        calls += 1
        await recomputed(asset_ids, now, source)  # read and written the totals it saw ...
        if calls == 1:
            await rig.perform([("a1", "email", 30, 500, 5)])  # ... which just changed

    rig.refresher.recompute = recompute_while_events_arrive  # type: ignore[method-assign]
    await rig.refresher.refresh()
    assert await rig.board("L1") == {"a1": Totals(1500, 55)}
    assert calls == 2 and await rig.dirty() == set()


async def test_an_asset_that_left_a_library_leaves_its_boards(rig: Rig) -> None:
    await rig.register("a1", "L1")
    await rig.register("a2", "L1")
    await rig.perform([("a1", "email", 60, 1000, 50), ("a2", "web", 60, 100, 3)])
    await rig.refresher.refresh()

    await rig.register("a1", "L2")  # moved
    await rig.refresher.refresh()
    assert await rig.board("L1") == {"a2": Totals(100, 3)}
    for window in (Window.DAY, Window.WEEK, Window.LIFETIME):
        assert "a1" not in await rig.board("L1", window, Channel.EMAIL)
        assert await rig.board("L2", window) == {"a1": Totals(1000, 50)}
    assert await rig.boards.placed(["a1"]) == ["L2"]

    await rig.delete("a2")
    told = len(rig.rules.told)
    await rig.refresher.refresh()
    assert await rig.board("L1") == {} and await rig.board("L1", Window.LIFETIME) == {}
    assert await rig.boards.placed(["a2"]) == [None]
    # the engine is told (its open suggestions expire), with no totals to judge
    assert [asset_id for asset_id, _ in rig.rules.told[told:]] == ["a2"]
    assert await rig.boards.ranked_assets(Window.DAY) == {"a1"}
    # Its counters that never expire are gone too; the other asset's stay.
    assert await rig.metrics.partitions_of(["a1", "a2"]) == [0, None]
    assert (0, "a2") not in rig.metrics.lifetime
    assert rig.metrics.lifetime_of("a1", "ch:email:impressions") == 1000


async def test_counters_of_a_deleted_asset_counted_after_it_was_forgotten_go_too(
    rig: Rig,
) -> None:
    await rig.register("a1", "L1")
    await rig.perform([("a1", "email", 60, 1000, 50)], partition=1)
    await rig.delete("a1")
    await rig.refresher.refresh()
    assert ("a1" not in rig.metrics.pointers) and (1, "a1") not in rig.metrics.lifetime
    # A late event: a worker that pointed the asset before does not point it again.
    first = await rig.metrics.position(1) + 1
    row = PerfRow("late-1", "a1", "web", "c1", int(NOW - 30), 5, 1, 0, 0, 0, 0)
    assert (await rig.metrics.apply(1, first, first, [row], NOW)).status is ApplyStatus.APPLIED
    assert (1, "a1") in rig.metrics.lifetime
    await rig.refresher.refresh()
    assert (1, "a1") not in rig.metrics.lifetime, "found through partition 1's dirty set"
    assert await rig.board("L1", Window.LIFETIME) == {}


async def test_the_hourly_sweep_moves_the_windows_without_new_events(rig: Rig) -> None:
    await rig.register("a1", "L1")
    await rig.register("a2", "L1")
    await rig.perform([("a1", "email", 23 * HOUR, 1000, 10), ("a2", "web", 10 * DAY, 50, 5)])
    await rig.refresher.refresh()
    assert await rig.board("L1") == {"a1": Totals(1000, 10)}
    assert await rig.boards.swept_hour() == int(NOW) // HOUR

    rig.clock.now = NOW + 30 * 60  # later in the same hour: no sweep
    assert await rig.refresher.refresh() == 0

    rig.clock.now = NOW + 2 * HOUR  # a new hour: a1's hour left the 24h window
    assert await rig.refresher.refresh() == 1  # a1; a2 counted in no bucket that left
    assert await rig.boards.swept_hour() == int(rig.clock.now) // HOUR
    assert await rig.board("L1") == {}, "the event left the 24h window"
    assert await rig.board("L1", Window.WEEK) == {"a1": Totals(1000, 10)}
    assert await rig.board("L1", Window.LIFETIME) == {
        "a1": Totals(1000, 10),
        "a2": Totals(50, 5),
    }
    assert await rig.dirty() == set()
    assert await rig.refresher.refresh() == 0, "swept once an hour"


async def test_the_sweep_queues_only_the_assets_of_the_buckets_that_left(rig: Rig) -> None:
    for asset_id in ("a1", "a2", "a3"):
        await rig.register(asset_id, "L1")
    # At NOW (12:20) the 24h window's oldest hour is yesterday 13:00-14:00.
    await rig.perform(
        [
            ("a1", "email", 23 * HOUR + 5 * 60, 100, 1),  # yesterday 13:15: leaves at 13:00
            ("a2", "email", HOUR, 200, 2),  # 11:20 today: stays
            ("a3", "web", 3 * DAY, 300, 3),  # in 7d only
        ]
    )
    await rig.refresher.refresh()
    assert set(await rig.board("L1")) == {"a1", "a2"}
    rig.boards.log.clear()

    rig.clock.now = NOW + 50 * 60  # 13:10
    assert await rig.refresher.refresh() == 1
    assert [a for kind, a in rig.boards.log if kind == "place"] == ["a1"]
    assert await rig.board("L1") == {"a2": Totals(200, 2)}
    assert set(await rig.board("L1", Window.WEEK)) == {"a1", "a2", "a3"}


async def test_the_sweep_at_midnight_queues_the_day_that_left_the_7d_window(rig: Rig) -> None:
    midnight = (int(NOW) // DAY + 1) * DAY
    for asset_id in ("a1", "a2"):
        await rig.register(asset_id, "L1")
    oldest_day = NOW - (midnight - 7 * DAY + HOUR)  # how long ago 01:00 of the 7d's oldest day
    await rig.perform(
        [
            ("a1", "web", oldest_day, 100, 1),
            ("a2", "web", oldest_day + DAY, 5, 1),
        ]  # a2: a day older
    )
    await rig.perform([("a2", "web", 2 * DAY, 50, 2)])
    await rig.refresher.refresh()
    assert await rig.board("L1", Window.WEEK) == {"a1": Totals(100, 1), "a2": Totals(50, 2)}
    rig.boards.log.clear()

    rig.clock.now = midnight - 30 * 60  # 23:30: the hour that left holds no event
    assert await rig.refresher.refresh() == 0
    rig.clock.now = midnight + 10 * 60
    assert await rig.refresher.refresh() == 1
    assert [a for kind, a in rig.boards.log if kind == "place"] == ["a1"]
    assert await rig.board("L1", Window.WEEK) == {"a2": Totals(50, 2)}


async def test_after_a_month_without_a_sweep_every_ranked_asset_is_queued(rig: Rig) -> None:
    for asset_id in ("a1", "a2", "a3"):
        await rig.register(asset_id, "L1")
    await rig.perform([("a1", "email", HOUR, 100, 1), ("a2", "web", 3 * DAY, 10, 1)])
    await rig.perform([("a3", "web", 20 * DAY, 10, 1)])  # lifetime board only
    await rig.refresher.refresh()
    rig.boards.swept = int(NOW) // HOUR - 40 * 24  # whose buckets left is no longer known
    assert await rig.refresher.refresh() == 2  # a1 (24h, 7d) and a2 (7d)


async def test_a_run_stops_at_its_cap_and_the_next_one_goes_on() -> None:
    rig = Rig(max_assets=50)
    await rig.boards.mark_dirty([f"r{n:03}" for n in range(120)])
    await rig.perform([(f"p{n}", "web", 60, 10, 1) for n in range(10)], partition=1)
    # The cap is checked before each chunk of 50: a run stops at the first chunk past it.
    assert await rig.refresher.refresh() == 50
    assert len(await rig.dirty()) == 80
    assert await rig.refresher.refresh() == 50
    assert await rig.refresher.refresh() == 30  # the registry's last 20, then partition 1
    assert await rig.dirty() == set()


async def test_new_changes_go_before_moved_windows() -> None:
    rig = Rig(max_assets=50)
    await rig.boards.mark_moved([f"m{n:03}" for n in range(120)])  # a large sweep's backlog
    await rig.perform([(f"p{n}", "web", 60, 10, 1) for n in range(10)], partition=1)
    assert await rig.refresher.refresh() == 60  # 10 changed, then a chunk of moved ones
    assert not {f"p{n}" for n in range(10)} & await rig.dirty()
    assert len(await rig.dirty()) == 70


async def test_a_run_with_a_time_budget_takes_no_chunk_after_it() -> None:
    rig = Rig()
    ticks = iter(range(100))  # each look at the timer: one second later
    rig.refresher = LeaderboardRefresher(
        rig.boards,
        rig.metrics,
        rig.registry,
        partitions=PARTITIONS,
        suggestions=rig.rules,
        max_assets_per_run=10_000,
        max_seconds_per_run=2.5,
        clock=rig.clock,
        timer=lambda: float(next(ticks)),
    )
    await rig.boards.mark_dirty([f"r{n:03}" for n in range(500)])
    # started at 0; chunks begin at 1 and 2; at 3 the budget is spent
    assert await rig.refresher.refresh() == 100
    assert len(await rig.dirty()) == 400


async def test_a_budgeted_copy_refreshes_the_same_boards_under_its_own_cap() -> None:
    rig = Rig(max_assets=50)
    await rig.boards.mark_dirty([f"r{n:03}" for n in range(120)])
    unbounded = rig.refresher.budgeted(max_assets_per_run=1_000, max_seconds_per_run=None)
    assert await unbounded.refresh() == 120
    assert await rig.dirty() == set()


async def test_a_cap_not_a_multiple_of_the_chunk_finishes_its_chunk() -> None:
    rig = Rig(max_assets=60)
    await rig.boards.mark_dirty([f"r{n:03}" for n in range(130)])
    assert await rig.refresher.refresh() == 100
    assert await rig.refresher.refresh() == 30


async def test_the_performance_rules_get_each_assets_totals_per_channel(rig: Rig) -> None:
    await rig.register("a1", "L1")
    await rig.register("a2", "L1")  # registered, no events yet
    await rig.perform(
        [
            ("a1", "email", 60, 1000, 50),
            ("a1", "web", 120, 200, 2),
            ("a1", "email", 3 * DAY, 500, 5),
            ("a9", "social", 60, 500, 30),  # not registered: no rules
        ]
    )
    await rig.refresher.refresh(NOW)
    told = dict(rig.rules.told)
    assert sorted(told) == ["a1", "a2"]
    assert told["a1"][Window.DAY] == {Channel.EMAIL: Totals(1000, 50), Channel.WEB: Totals(200, 2)}
    assert told["a1"][Window.WEEK] == {
        Channel.EMAIL: Totals(1500, 55),
        Channel.WEB: Totals(200, 2),
    }
    assert told["a1"][Window.LIFETIME] == told["a1"][Window.WEEK]
    assert told["a2"] == {}
    # a1 was queued by the registry and by its metrics partition: told from each.
    assert sorted(a for a, _ in rig.rules.told) == ["a1", "a1", "a2"]
    assert rig.rules.told[-1] == ("a1", told["a1"])


async def test_only_the_assets_that_rank_have_their_sums_read(rig: Rig) -> None:
    asked: list[str] = []
    totals_by_window = rig.metrics.totals_by_window

    async def counting(placed: Any, windows: Any, now: float) -> Any:
        asked.extend(a for a, _ in placed)
        return await totals_by_window(placed, windows, now)

    rig.metrics.totals_by_window = counting  # type: ignore[method-assign]
    await rig.register("a1", "L1")
    await rig.register("gone", "L1")
    await rig.perform(
        [("a1", "web", 60, 100, 5), ("gone", "web", 60, 50, 1), ("x", "web", 60, 9, 1)]
    )
    await rig.refresher.refresh()
    assert await rig.board("L1") == {"a1": Totals(100, 5), "gone": Totals(50, 1)}
    await rig.delete("gone")
    asked.clear()
    await rig.perform([("x", "web", 60, 9, 1), ("a1", "web", 60, 1, 0)])

    assert await rig.refresher.refresh() == 3
    assert sorted(asked) == ["a1"], "the unregistered and the deleted asset's sums were read"
    assert await rig.board("L1") == {"a1": Totals(101, 5)}
    assert await rig.boards.placed(["gone", "x"]) == [None, None]
