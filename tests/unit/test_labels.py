"""Performance labels: the statistical rule, and the labels on
GET /v1/assets/{asset_id}/metrics through the app's web stack on the in-memory stores."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain.enums import Channel
from service.domain.labels import Label, Pool, judge, judge_against
from service.domain.metrics import Totals
from service.domain.windows import Window
from service.store.metrics import PerfRow
from tests.fakes import FakeLeaderboardStore, FakeMetricsStore
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views

LIBRARY = [Totals(1000, 20), Totals(2000, 40), Totals(50, 40)]  # the last: too few to count


def test_clear_differences_get_a_verdict_close_ones_do_not() -> None:
    best = judge(Totals(1000, 50), LIBRARY, 100)
    assert (best.label, best.library_ctr) == (Label.BEST, 0.02)  # the tiny asset is left out
    assert judge(Totals(1000, 5), LIBRARY, 100).label is Label.LOW
    assert judge(Totals(1000, 25), LIBRARY, 100).label is Label.GOOD  # 2.5 %: not shown apart
    assert judge(Totals(100_000, 2500), LIBRARY, 100).label is Label.BEST  # now it is


def test_too_little_evidence_is_learning() -> None:
    assert judge(Totals(99, 50), LIBRARY, 100) == judge(Totals(99, 50), [], 100)
    assert judge(Totals(99, 50), LIBRARY, 100).label is Label.LEARNING
    assert judge(Totals(1000, 50), [Totals(50, 1)], 100).label is Label.LEARNING
    assert judge(Totals(0, 0), [], 0).label is Label.LEARNING
    assert judge(Totals(10, 30), [Totals(1000, 20)], 10).label is Label.BEST  # clicks capped


def test_a_pool_without_the_asset_judges_as_the_others_do() -> None:
    rng = random.Random(5)
    for _ in range(300):
        library = [
            Totals(rng.randint(0, 3000), rng.randint(0, 200)) for _ in range(rng.randint(0, 6))
        ]
        mine = Totals(rng.randint(0, 3000), rng.randint(0, 200))
        least = rng.choice([0, 1, 100, 1000])
        pool = Pool.of([*library, mine], least).without(mine, least)
        assert pool == Pool.of(library, least)
        assert judge_against(mine, pool, least) == judge(mine, library, least)


def test_a_pool_added_up_before_the_entry_changed_never_goes_below_zero() -> None:
    mine = Totals(1000, 50)
    assert Pool().without(mine, 100) == Pool(), "summed before the asset had an entry"
    assert Pool(10, 200, 1).without(mine, 100) == Pool(), "held its smaller entry"
    assert Pool(60, 1500, 2).without(mine, 100) == Pool(10, 500, 1)
    assert judge_against(mine, Pool().without(mine, 100), 100).label is Label.LEARNING


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig, Any]]:
    rig = make_rig()
    metrics = FakeMetricsStore()
    boards = FakeLeaderboardStore(metrics)
    async with serve_views(
        tmp_path, registry_store=rig.store, metrics_store=metrics, leaderboard_store=boards
    ) as test_client:
        yield test_client, rig, SimpleNamespace(metrics=metrics, boards=boards)


async def test_the_metrics_route_labels_each_channel(client: Any) -> None:
    http, rig, stores = client
    await rig.register(rig.reg("a1", library_id="L1"))
    now = int(time.time())
    rows = [
        PerfRow("e1", "a1", "email", "c1", now - 60, 1000, 50, 0, 0, 0, 0),
        PerfRow("e2", "a1", "web", "c1", now - 60, 30, 1, 0, 0, 0, 0),
    ]
    await stores.metrics.point(0, ["a1"])
    await stores.metrics.apply(0, 0, 1, rows, now)
    for window in (Window.DAY, Window.WEEK):
        board = stores.boards.boards[("L1", window, Channel.EMAIL)]
        board.update({"a1": Totals(1000, 50), "a2": Totals(3000, 60)})

    body = await (await http.get("/v1/assets/a1/metrics?window=1h")).json()
    assert body["label_window"] == "7d"
    assert [(x["channel"], x["label"], x["library_ctr"]) for x in body["labels"]] == [
        ("email", "best", 0.02),
        ("web", "learning", None),
    ]
    body = await (await http.get("/v1/assets/a1/metrics?window=24h&channel=web")).json()
    assert body["label_window"] == "24h" and body["impressions"] == 30
    assert [x["label"] for x in body["labels"]] == ["best", "learning"]
    body = await (await http.get("/v1/assets/a1/metrics?window=lifetime")).json()
    assert [x["label"] for x in body["labels"]] == ["learning", "learning"]  # empty boards
