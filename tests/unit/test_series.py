"""GET /v1/assets/{asset_id}/series: which bucket resolutions serve which windows, and the
zero-filled points through the app's web stack on the in-memory metrics store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain import registry as rules
from service.domain.windows import (
    DAY,
    FIVE_MINUTES,
    HOUR,
    ONE_DAY,
    ONE_HOUR,
    RESOLUTIONS,
    SERIES_RESOLUTIONS,
    SERIES_WINDOWS,
    SeriesResolution,
    Window,
    series_points,
    series_starts,
    servable_series,
)
from service.store.metrics import PerfRow
from tests.fakes import FakeMetricsStore
from tests.unit.factories import registration, source
from tests.unit.web import serve_views


def test_only_the_pairs_whose_buckets_are_kept_are_served() -> None:
    assert servable_series() == {
        SeriesResolution.FIVE_MINUTES: [Window.HOUR],
        SeriesResolution.HOUR: [Window.HOUR, Window.DAY],
        SeriesResolution.DAY: [Window.DAY, Window.WEEK, Window.MONTH],
    }
    assert series_points(FIVE_MINUTES, Window.HOUR) == 12
    assert series_points(ONE_HOUR, Window.DAY) == 24
    assert series_points(ONE_DAY, Window.MONTH) == 30
    assert series_points(ONE_HOUR, Window.WEEK) is None  # hourly buckets live a day
    assert series_points(ONE_DAY, Window.HOUR) is None  # shorter than one bucket
    assert series_points(ONE_DAY, Window.LIFETIME) is None


@pytest.mark.parametrize("name", list(SeriesResolution))
@pytest.mark.parametrize("window", SERIES_WINDOWS)
def test_a_served_series_never_reads_an_expired_bucket(
    name: SeriesResolution, window: Window
) -> None:
    resolution = SERIES_RESOLUTIONS[name]
    if series_points(resolution, window) is None:
        with pytest.raises(ValueError):
            series_starts(resolution, window, 0)
        return
    # At any moment of the newest bucket, even its last second, the oldest one still lives.
    for now in (7 * DAY, 7 * DAY + resolution.seconds - 1):
        starts = series_starts(resolution, window, now)
        assert starts == sorted(starts) and starts[-1] == resolution.start(now)
        assert all(resolution.expires_at(s) > now for s in starts)
        assert starts[-1] - starts[0] == (len(starts) - 1) * resolution.seconds


def test_the_series_resolutions_are_the_stored_ones() -> None:
    assert set(SERIES_RESOLUTIONS.values()) == set(RESOLUTIONS)


# --- the route ---------------------------------------------------------------------------


def row(event_id: str, t: int, channel: str = "web", campaign: str = "c1", **d: int) -> PerfRow:
    deltas = [d.get(m, 0) for m in ("impressions", "clicks", "engagements")]
    return PerfRow(event_id, "a1", channel, campaign, t, *deltas, 0, 0, 0)


class Registry:
    def __init__(self) -> None:
        self.states = {"a1": rules.register(None, registration("a1"), source()).state}

    async def load(self, asset_id: str, event_id: str | None = None) -> Any:
        return SimpleNamespace(state=self.states.get(asset_id), seen=None)


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], FakeMetricsStore]]:
    metrics = FakeMetricsStore()
    async with serve_views(
        tmp_path, registry_store=Registry(), metrics_store=metrics
    ) as test_client:
        yield test_client, metrics


async def get(http: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await http.get(path)
    return response.status, await response.json()


async def test_points_are_zero_filled_sums_per_bucket(client: Any) -> None:
    http, metrics = client
    now = int(time.time())
    this_hour = now - now % HOUR
    await metrics.point(0, ["a1"])
    rows = [
        row("e1", now, impressions=100, clicks=5),
        row("e2", now, channel="email", campaign="c2", impressions=50, clicks=5),
        row("e3", this_hour - 3 * HOUR, impressions=10, engagements=4),
    ]
    await metrics.apply(0, 0, 2, rows, now)

    status, body = await get(http, "/v1/assets/a1/series")
    assert status == 200
    assert (body["resolution"], body["window"], len(body["points"])) == ("1h", "24h", 24)
    points = body["points"]
    assert datetime.fromisoformat(points[-1]["start"]).timestamp() == this_hour
    assert (points[-1]["impressions"], points[-1]["clicks"], points[-1]["ctr"]) == (
        150,
        10,
        10 / 150,
    )
    assert (points[-4]["impressions"], points[-4]["engagement_rate"]) == (10, 0.4)
    assert sum(p["impressions"] for p in points) == 160
    assert all(p["impressions"] == 0 for p in points[:-4] + points[-3:-1])

    status, body = await get(http, "/v1/assets/a1/series?channel=email&resolution=5m&window=1h")
    assert status == 200 and len(body["points"]) == 12
    assert [p["impressions"] for p in body["points"]][-1] == 50
    status, body = await get(http, "/v1/assets/a1/series?campaign=c1&resolution=1d&window=7d")
    assert status == 200 and len(body["points"]) == 7
    assert sum(p["impressions"] for p in body["points"]) == 110


async def test_a_registered_asset_without_events_has_zero_points(client: Any) -> None:
    http, _ = client
    status, body = await get(http, "/v1/assets/a1/series?resolution=1d&window=30d")
    assert status == 200 and len(body["points"]) == 30
    assert {p["impressions"] for p in body["points"]} == {0}


async def test_the_route_refuses_what_the_store_cannot_serve(client: Any) -> None:
    http, _ = client
    status, body = await get(http, "/v1/assets/a1/series?resolution=5m&window=24h")
    assert status == 400
    assert "resolution=5m cannot serve window=24h" in body["detail"]
    assert "resolution=1d with window=24h, 7d, 30d" in body["detail"]
    for query in (
        "window=lifetime",
        "resolution=1m",
        "channel=web&campaign=c1",
        "resolution=1h&window=7d",
    ):
        status, body = await get(http, f"/v1/assets/a1/series?{query}")
        assert status == 400, query
    status, body = await get(http, "/v1/assets/nobody/series")
    assert status == 404
