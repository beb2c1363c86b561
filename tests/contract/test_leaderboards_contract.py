"""The leaderboard store's contract, on the fake and on Redis: what the board refresh
relies on (dirty sets, where an asset's entries are, entries moved with the asset)."""

from __future__ import annotations

import time

import pytest

from service.domain.enums import Channel
from service.domain.labels import Pool
from service.domain.leaderboard import RankMetric
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import Window
from service.store.leaderboards import REGISTRY
from service.store.metrics import PerfRow
from tests.contract.conftest import Backend

# Dirty sets, claims and board keys share slots as designed: checked on a cluster too.
pytestmark = pytest.mark.cluster

NOW = float(int(time.time()))


async def test_a_claim_takes_up_to_count_until_done(backend: Backend) -> None:
    boards = backend.boards
    assert await boards.claim(REGISTRY, 10) == []
    await boards.mark_dirty(["a1", "a2", "a3"])
    await boards.mark_dirty(["a2"])
    await boards.mark_dirty([])
    two = await boards.claim(REGISTRY, 2)
    assert len(two) == 2 and set(two) < {"a1", "a2", "a3"}
    assert sorted(await boards.claim(REGISTRY, 10)) == sorted(two), "unfinished claims come first"
    await boards.done(REGISTRY, two)
    await boards.done(REGISTRY, [])
    (rest,) = {"a1", "a2", "a3"} - set(two)
    assert await boards.claim(REGISTRY, 10) == [rest]
    assert await boards.claim(0, 10) == [], "the registry's set is not a partition's"
    await boards.done(REGISTRY, [rest])
    assert await boards.claim(REGISTRY, 10) == []


async def test_a_mark_set_during_a_refresh_is_kept(backend: Backend) -> None:
    boards = backend.boards
    await boards.mark_dirty(["a1", "a2"])
    claimed = await boards.claim(REGISTRY, 10)
    await boards.mark_dirty(["a1"])  # changed again while its entries are being computed
    await boards.done(REGISTRY, claimed)
    assert await boards.claim(REGISTRY, 10) == ["a1"]


async def test_the_metrics_script_marks_the_assets_it_counted(backend: Backend) -> None:
    rows = [
        PerfRow("e1", "a1", "web", "c1", int(NOW) - 60, 10, 1, 0, 0, 0, 0),
        PerfRow("e2", "a2", "web", "c1", int(NOW) - 60, 10, 1, 0, 0, 0, 0),
    ]
    await backend.metrics.apply(2, 0, 1, rows, NOW)
    assert sorted(await backend.boards.claim(2, 10)) == ["a1", "a2"]
    assert (
        await backend.boards.claim(1, 10) == [] and await backend.boards.claim(REGISTRY, 10) == []
    )
    await backend.boards.done(2, ["a1", "a2"])
    await backend.metrics.apply(2, 2, 2, [rows[0]], NOW)  # a copy: nothing counted
    assert await backend.boards.claim(2, 10) == []


async def test_the_swept_hour(backend: Backend) -> None:
    assert await backend.boards.swept_hour() is None
    await backend.boards.set_swept_hour(493_000)
    assert await backend.boards.swept_hour() == 493_000


def totals(**by_channel: Totals) -> WindowTotals:
    return WindowTotals(by_channel={Channel(c): t for c, t in by_channel.items()})


async def test_entries_follow_the_asset_between_libraries(backend: Backend) -> None:
    boards = backend.boards
    assert await boards.placed(["a1"]) == [None]
    windows = {
        Window.DAY: totals(email=Totals(100, 5)),
        Window.LIFETIME: totals(email=Totals(300, 9), web=Totals(10, 1)),
    }
    await boards.place("a1", "L1", None, windows)
    await boards.place("a2", "L1", None, {Window.WEEK: totals(web=Totals(1, 0))})
    assert await boards.placed(["a1", "a2", "a3"]) == ["L1", "L1", None]

    async def board(library: str, window: Window, channel: Channel | None) -> dict[str, Totals]:
        return {e.asset_id: e.totals for e in await boards.entries(library, window, channel)}

    assert await board("L1", Window.DAY, None) == {"a1": Totals(100, 5)}
    assert await board("L1", Window.DAY, Channel.EMAIL) == {"a1": Totals(100, 5)}
    assert await board("L1", Window.DAY, Channel.WEB) == {}, "no entry at zero"
    assert await board("L1", Window.LIFETIME, None) == {"a1": Totals(310, 10)}
    assert await board("L1", Window.WEEK, None) == {"a2": Totals(1, 0)}
    assert await boards.ranked_assets(Window.DAY) == {"a1"}
    assert await boards.ranked_assets(Window.WEEK) == {"a2"}

    # New totals at zero in a window remove the entry there.
    await boards.place("a1", "L1", "L1", {Window.LIFETIME: totals(web=Totals(10, 1))})
    assert await board("L1", Window.DAY, None) == {}
    assert await board("L1", Window.LIFETIME, Channel.EMAIL) == {}
    assert await board("L1", Window.LIFETIME, None) == {"a1": Totals(10, 1)}

    # Moved to L2: gone from every board of L1.
    await boards.place("a1", "L2", "L1", windows)
    assert await boards.placed(["a1"]) == ["L2"]
    assert await board("L1", Window.LIFETIME, None) == {}
    assert await board("L1", Window.LIFETIME, Channel.WEB) == {}
    assert await board("L2", Window.DAY, None) == {"a1": Totals(100, 5)}
    assert await boards.ranked_assets(Window.DAY) == {"a1"}

    # Out of every library (deleted): in no board, placed nowhere.
    await boards.place("a1", None, "L2", windows)
    assert await boards.placed(["a1"]) == [None]
    assert await board("L2", Window.DAY, None) == {}
    assert await boards.ranked_assets(Window.DAY) == set()
    assert await boards.ranked_assets(Window.WEEK) == {"a2"}


async def test_an_assets_campaign_entries_follow_its_totals(backend: Backend) -> None:
    boards = backend.boards
    spring, summer = Totals(100, 5), Totals(7, 1)

    def placement(**campaigns: Totals) -> dict[Window, WindowTotals]:
        total = Totals()
        for sums in campaigns.values():
            total = total + sums
        return {
            window: WindowTotals({Channel.WEB: total}, dict(campaigns))
            for window in (Window.DAY, Window.LIFETIME)
        }

    async def board(campaign: str, window: Window = Window.DAY) -> dict[str, Totals]:
        return {e.asset_id: e.totals for e in await boards.campaign_entries(campaign, window)}

    await boards.place("a1", "L1", None, placement(**{"spring:2026": spring, "summer": summer}))
    await boards.place("a2", "L2", None, placement(**{"spring:2026": summer}))
    assert await board("spring:2026") == {"a1": spring, "a2": summer}
    assert await board("summer", Window.LIFETIME) == {"a1": summer}
    assert await board("summer", Window.WEEK) == {}  # a window without totals: no entry

    await boards.place("a1", "L1", "L1", placement(summer=summer))  # spring's totals went
    assert await board("spring:2026") == {"a2": summer}
    assert await board("summer") == {"a1": summer}
    await boards.place("a1", None, "L1", placement(summer=summer))  # deleted
    assert await board("summer") == {} and await board("summer", Window.LIFETIME) == {}
    assert await board("nothing") == {}


async def test_an_entry_and_a_pool_of_a_board(backend: Backend) -> None:
    boards = backend.boards
    assert await boards.entry("L1", Window.DAY, None, "a1") is None
    assert await boards.pool("L0", Window.DAY, None, 100) == Pool()
    await boards.place("a1", "L1", None, {Window.DAY: totals(email=Totals(1000, 50))})
    await boards.place("a2", "L1", None, {Window.DAY: totals(web=Totals(400, 500))})
    await boards.place("a3", "L1", None, {Window.DAY: totals(web=Totals(99, 9))})
    assert await boards.entry("L1", Window.DAY, None, "a1") == Totals(1000, 50)
    assert await boards.entry("L1", Window.DAY, Channel.WEB, "a1") is None
    # a3 has too few impressions; a2's clicks beyond its impressions count as impressions
    assert await boards.pool("L1", Window.DAY, None, 100) == Pool(450, 1400, 2)
    assert await boards.pool("L1", Window.DAY, Channel.EMAIL, 100) == Pool(50, 1000, 1)
    assert await boards.pool("L1", Window.DAY, Channel.WEB, 10) == Pool(409, 499, 2)


async def test_a_top_list_a_rollup_and_some_entries_of_a_board(backend: Backend) -> None:
    boards = backend.boards
    for n, (impressions, clicks) in enumerate([(1000, 50), (2000, 40), (90, 80), (500, 25)]):
        await boards.place(
            f"a{n}", "L1", None, {Window.WEEK: totals(email=Totals(impressions, clicks))}
        )
    top = await boards.top("L1", Window.WEEK, None, RankMetric.CTR, 100)
    # a2 has too few impressions; a0 and a3 tie at 5 %: more impressions first
    assert [e.asset_id for e in top] == ["a0", "a3", "a1"]
    anyone = await boards.top("L1", Window.WEEK, None, RankMetric.CTR, 0)
    assert anyone[0].asset_id == "a2", "at no minimum, 89 % leads"
    assert await boards.top("L1", Window.DAY, Channel.EMAIL, RankMetric.CTR, 0) == []
    rollup = await boards.rollup("L1", Window.WEEK, Channel.EMAIL)
    assert (rollup.totals, rollup.assets) == (Totals(3590, 195), 4)
    assert (await boards.rollup("L1", Window.DAY, None)).assets == 0
    assert await boards.entries_of("L1", Window.WEEK, None, ["a1", "a9"]) == {
        "a1": Totals(2000, 40)
    }
    assert await boards.entries_of("L1", Window.WEEK, None, []) == {}
