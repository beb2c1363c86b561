"""GET /v1/libraries/{library_id}/top?metric=usage: the most used assets, kept by the
registry's library projection, through the app's web stack on the in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain import leaderboard as lb
from service.domain import registry as rules
from service.domain.library import library_entry, most_used
from service.domain.metrics import Totals
from service.domain.windows import Window
from tests.fakes import FakeLeaderboardStore, FakeMetricsStore
from tests.unit.factories import T0, lifecycle, registration, source
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views


def test_most_used_ranks_by_count_then_id_and_skips_the_unused() -> None:
    usage = {"b": 3, "a": 3, "c": 7, "d": 0, "e": 1}
    assert most_used(usage, 10) == [("c", 7), ("a", 3), ("b", 3), ("e", 1)]
    assert most_used(usage, 2) == [("c", 7), ("a", 3)]


def test_the_library_entry_carries_the_usage_count() -> None:
    state = rules.register(None, registration(), source()).state
    for action in ("approved", "published", "used"):
        state = rules.lifecycle(state, lifecycle(action), source(), T0, max_held=9).state
    assert state.asset is not None
    entry = library_entry(state.asset)
    assert entry is not None and entry.usage_count == 2


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig, Any]]:
    rig = make_rig()
    boards = FakeLeaderboardStore(FakeMetricsStore())
    async with serve_views(
        tmp_path, registry_store=rig.store, leaderboard_store=boards
    ) as test_client:
        yield test_client, rig, boards


async def use(rig: Rig, asset_id: str, times: int) -> None:
    await rig.lifecycle(rig.life(asset_id, "approved", f"{asset_id}-ok"))
    for n in range(times):
        await rig.lifecycle(rig.life(asset_id, "used", f"{asset_id}-use-{n}", campaign_id="c1"))


async def test_the_route_ranks_the_most_used_assets(client: Any) -> None:
    http, rig, boards = client
    for asset_id in ("a1", "a2", "a3", "a4"):
        await rig.register(rig.reg(asset_id, library_id="L1"))
    await use(rig, "a1", 1)
    await use(rig, "a2", 3)
    await use(rig, "a3", 1)  # a4 is never used
    await rig.register(rig.reg("a5", library_id="L2"))
    await use(rig, "a5", 9)  # another library
    shown = Totals(impressions=40, clicks=2)
    boards.boards[("L1", Window.DAY, None)]["a2"] = shown

    response = await http.get("/v1/libraries/L1/top?metric=usage&min_impressions=1000")
    assert response.status == 200
    body = await response.json()
    assert (body["metric"], body["window"], body["min_impressions"]) == ("usage", "24h", 0)
    assert [(i["rank"], i["asset_id"], i["usage_count"], i["value"]) for i in body["items"]] == [
        (1, "a2", 3, 3.0),
        (2, "a1", 1, 1.0),
        (3, "a3", 1, 1.0),
    ]
    assert (body["items"][0]["impressions"], body["items"][0]["ctr"]) == (40, 0.05)
    assert body["items"][1]["impressions"] == 0

    # A deleted asset leaves the ranking with its library.
    await rig.lifecycle(rig.life("a2", "deleted", "a2-gone"))
    body = await (await http.get("/v1/libraries/L1/top?metric=usage&limit=1")).json()
    assert [i["asset_id"] for i in body["items"]] == ["a1"]
    assert (await http.get("/v1/libraries/nowhere/top?metric=usage")).status == 404
    assert (await http.get("/v1/libraries/L1/top?metric=reuse")).status == 400


def test_usage_is_a_top_metric_beside_the_rates() -> None:
    assert {m.value for m in lb.RankMetric} | {"usage"} == {m.value for m in lb.TopMetric}
