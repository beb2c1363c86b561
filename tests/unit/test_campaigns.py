"""Campaign boards: each asset's totals per campaign, kept by the board refresh (any
library, registered and not deleted assets), and GET /v1/campaigns/{campaign_id}/metrics
and /top through the app's web stack on the in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain import leaderboard as lb
from service.domain.enums import Channel
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import DAY, Window
from service.store.metrics import ApplyStatus, PerfRow
from tests.unit.test_leaderboard_refresher import NOW, Rig
from tests.unit.web import serve_views


def test_an_asset_enters_each_campaign_where_it_has_totals() -> None:
    spring, summer = Totals(100, 5), Totals(7, 1)
    windows = {
        Window.DAY: WindowTotals({Channel.WEB: spring}, {"spring": spring, "idle": Totals()}),
        Window.LIFETIME: WindowTotals(
            {Channel.WEB: spring + summer}, {"spring": spring, "summer": summer}
        ),
    }
    assert lb.campaign_entries(windows) == {
        "spring": {Window.DAY: spring, Window.LIFETIME: spring},
        "summer": {Window.LIFETIME: summer},
    }
    assert lb.campaign_entries({}) == {}


async def perform(rig: Rig, rows: list[tuple[str, str, float, int, int]]) -> None:
    """(asset, campaign, seconds before NOW, impressions, clicks) rows on partition 0."""
    await rig.metrics.point(0, sorted({r[0] for r in rows}))
    first = await rig.metrics.position(0) + 1
    perf = [
        PerfRow(f"ev{next(rig.offsets)}", a, "web", c, int(NOW - ago), imp, clicks, 0, 0, 0, 0)
        for a, c, ago, imp, clicks in rows
    ]
    result = await rig.metrics.apply(0, first, first + len(perf) - 1, perf, NOW)
    assert result.status is ApplyStatus.APPLIED


async def board(rig: Rig, campaign: str, window: Window = Window.DAY) -> dict[str, Totals]:
    return {e.asset_id: e.totals for e in await rig.boards.campaign_entries(campaign, window)}


@pytest.fixture
async def rig() -> Rig:
    rig = Rig()
    await rig.register("a1", "L1")
    await rig.register("a2", "L2")
    await perform(
        rig,
        [
            ("a1", "spring", 60, 1000, 50),
            ("a2", "spring", 60, 400, 4),
            ("a2", "summer", 3 * DAY, 300, 30),
            ("ghost", "spring", 60, 99, 9),  # not registered: in no board
        ],
    )
    await rig.refresher.refresh()
    return rig


async def test_the_refresh_keeps_each_campaigns_board_across_libraries(rig: Rig) -> None:
    assert await board(rig, "spring") == {"a1": Totals(1000, 50), "a2": Totals(400, 4)}
    assert await board(rig, "summer") == {}
    assert await board(rig, "summer", Window.WEEK) == {"a2": Totals(300, 30)}
    assert await board(rig, "summer", Window.LIFETIME) == {"a2": Totals(300, 30)}
    assert rig.boards.campaigns_of["a2"] == {"spring", "summer"}


async def test_moved_windows_and_deletions_leave_the_boards(rig: Rig) -> None:
    rig.clock.now = NOW + 5 * DAY  # the hourly sweep requeues every ranked asset
    await rig.refresher.refresh()
    assert await board(rig, "spring") == {}
    assert await board(rig, "summer", Window.WEEK) == {}
    assert await board(rig, "spring", Window.LIFETIME) == {
        "a1": Totals(1000, 50),
        "a2": Totals(400, 4),
    }
    await rig.delete("a2")
    await rig.refresher.refresh()
    assert await board(rig, "spring", Window.LIFETIME) == {"a1": Totals(1000, 50)}
    assert await board(rig, "summer", Window.LIFETIME) == {}
    assert rig.boards.campaigns_of["a2"] == set()


@pytest.fixture
async def client(rig: Rig, tmp_path: Any) -> AsyncIterator[TestClient[Any, Any]]:
    async with serve_views(
        tmp_path, registry_store=rig.registry, leaderboard_store=rig.boards
    ) as test_client:
        yield test_client


async def get(http: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await http.get(path)
    return response.status, await response.json()


async def test_the_campaign_routes(client: TestClient[Any, Any]) -> None:
    status, body = await get(client, "/v1/campaigns/spring/metrics")
    assert status == 200
    assert (body["window"], body["assets_with_activity"], body["impressions"]) == ("24h", 2, 1400)
    assert body["ctr"] == 54 / 1400
    status, body = await get(client, "/v1/campaigns/summer/metrics?window=lifetime")
    assert (status, body["impressions"], body["clicks"]) == (200, 300, 30)
    status, body = await get(client, "/v1/campaigns/summer/metrics")  # active, not today
    assert (status, body["impressions"], body["assets_with_activity"]) == (200, 0, 0)

    status, body = await get(client, "/v1/campaigns/spring/top?window=7d&min_impressions=500")
    assert status == 200
    assert [(i["rank"], i["asset_id"], i["library_id"]) for i in body["items"]] == [(1, "a1", "L1")]
    status, body = await get(client, "/v1/campaigns/spring/top?min_impressions=0&metric=ctr")
    assert [(i["asset_id"], i["value"]) for i in body["items"]] == [("a1", 0.05), ("a2", 0.01)]
    assert body["min_impressions"] == 0 and body["metric"] == "ctr"

    for path, expected in [
        ("/v1/campaigns/never/metrics", 404),
        ("/v1/campaigns/never/top", 404),
        ("/v1/campaigns/spring/metrics?window=1h", 400),
        ("/v1/campaigns/spring/top?metric=usage", 400),
        ("/v1/campaigns/spring/top?limit=0", 400),
    ]:
        status, body = await get(client, path)
        assert status == expected, (path, body)
