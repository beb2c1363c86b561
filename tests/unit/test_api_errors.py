"""Every error of every view, through the app's real web stack, with the stores stubbed.

The views raise; the middleware answers. These are the exact problem details the API
has always answered with: clients (and tests/e2e) rely on them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from service.app import create_app
from service.config import Settings
from service.errors import ConcurrentUpdateError
from tests.unit.factories import sha


class Stores:
    """Every store the views read, knowing nothing; `failure` makes every read raise."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self.realised_by_type: dict[str, list[Any]] = {}

    def _read(self, value: Any) -> Any:
        if self.failure is not None:
            raise self.failure
        return value

    async def load(self, asset_id: str, event_id: str | None = None) -> Any:
        return self._read(SimpleNamespace(state=None, seen=None))

    async def library_stats(self, library_id: str) -> Any:
        return self._read(None)

    async def duplicates(self, content_sha256: str) -> Any:
        return self._read([])

    async def totals(self, *args: Any, **kwargs: Any) -> Any:
        return self._read(None)

    async def for_asset(self, asset_id: str) -> Any:
        return self._read([])

    async def by_id(self, suggestion_id: str) -> Any:
        return self._read(None)

    async def realised(self, kind: str) -> Any:
        return self._read(self.realised_by_type.get(kind, []))


@pytest.fixture(scope="module")
def stores() -> Stores:
    return Stores()


@pytest.fixture(scope="module")
async def client(
    stores: Stores, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(data_dir=str(tmp_path_factory.mktemp("api")), api_page_size_max=500)
    app = create_app(settings)
    app.runtime = SimpleNamespace(  # type: ignore[assignment]
        settings=settings,
        registry_store=stores,
        metrics_store=stores,
        suggestion_store=stores,
        leaderboard_store=stores,
    )
    async with TestClient(TestServer(app.web.web_app)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def no_failure(stores: Stores) -> None:
    stores.failure = None
    stores.realised_by_type = {}


async def problem(client: TestClient[Any, Any], path: str, method: str = "GET") -> Any:
    response = await client.request(method, path)
    assert response.content_type == "application/problem+json", path
    body = await response.json()
    assert body["status"] == response.status
    assert body["instance"] == path.split("?")[0]
    return response.status, body["type"], body["title"], body["detail"]


NOT_FOUND = (404, "/problems/not-found", "Nothing is known under this name")
BAD_REQUEST = (400, "/problems/bad-request", "A parameter is not valid")
NO_LIBRARY = "library 'nolib' has no registered assets"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/assets/nope", (*NOT_FOUND, "asset 'nope' is not registered")),
        (
            "/v1/assets/nope/metrics",
            (*NOT_FOUND, "asset 'nope' is not registered and has no metrics"),
        ),
        ("/v1/assets/nope/suggestions", (*NOT_FOUND, "asset 'nope' is not registered")),
        ("/v1/libraries/nolib/stats", (*NOT_FOUND, NO_LIBRARY)),
        ("/v1/libraries/nolib/assets", (*NOT_FOUND, NO_LIBRARY)),
        ("/v1/libraries/nolib/top", (*NOT_FOUND, NO_LIBRARY)),
        ("/v1/libraries/nolib/metrics", (*NOT_FOUND, NO_LIBRARY)),
        ("/v1/libraries/nolib/suggestions", (*NOT_FOUND, NO_LIBRARY)),
        ("/v1/suggestions/s1", (*NOT_FOUND, "no current suggestion has id 's1'")),
        (
            f"/v1/duplicates/{sha(999)}",
            (*NOT_FOUND, f"no registered asset has content {sha(999)}"),
        ),
        ("/v1/nothing-here", (*NOT_FOUND, "no route /v1/nothing-here")),
    ],
)
async def test_what_does_not_exist_is_404(
    client: TestClient[Any, Any], path: str, expected: tuple[Any, ...]
) -> None:
    assert await problem(client, path) == expected


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        (
            "/v1/assets/a1/metrics?chanel=web",
            "unknown query parameter(s): chanel (known: campaign, channel, window)",
        ),
        ("/v1/assets/a1?x=1", "unknown query parameter(s): x (known: none)"),
        ("/v1/assets/a1/metrics?window=2h", "window must be one of: 1h, 24h, 7d, 30d, lifetime"),
        (
            "/v1/assets/a1/metrics?channel=fax",
            "channel must be one of: email, web, social, display, search, video, other",
        ),
        (
            "/v1/assets/a1/metrics?channel=web&campaign=spring",
            "filter by channel or by campaign, not both",
        ),
        (
            "/v1/libraries/l1/top?metric=likes",
            "metric must be one of: ctr, engagement_rate, conversion_rate, usage",
        ),
        ("/v1/libraries/l1/top?window=1h", "window must be one of: 24h, 7d, lifetime"),
        ("/v1/libraries/l1/top?limit=0", "limit must be between 1 and 100"),
        (
            "/v1/libraries/l1/top?min_impressions=-1",
            "min_impressions must be between 0 and 1000000000000",
        ),
        (
            "/v1/libraries/l1/metrics?channel=fax",
            "channel must be one of: email, web, social, display, search, video, other",
        ),
        ("/v1/libraries/l1/assets?limit=ten", "limit must be an integer, got 'ten'"),
        ("/v1/libraries/l1/assets?limit=501", "limit must be between 1 and 500"),
        (
            "/v1/libraries/l1/assets?status=lost",
            "status must be one of: draft, approved, published, archived",
        ),
        ("/v1/duplicates/XYZ", "content_sha256 must be 64 lowercase hexadecimal characters"),
        (
            "/v1/assets/a1/suggestions?status=new",
            "status must be one of: open, applied, dismissed, expired, superseded",
        ),
        (
            "/v1/libraries/l1/suggestions?priority=urgent",
            "priority must be one of: low, medium, high",
        ),
        (
            "/v1/suggestion-accuracy?type=magic",
            "type must be one of: refresh_design, compress, "
            "convert_to_webp, resize, remove_bg, reformat, creative_fatigue, gif_to_video, "
            "fix_aspect_ratio",
        ),
    ],
)
async def test_a_bad_parameter_is_400(client: TestClient[Any, Any], path: str, detail: str) -> None:
    assert await problem(client, path) == (*BAD_REQUEST, detail)


@pytest.mark.parametrize(
    "failure", [RedisConnectionError("refused"), ConcurrentUpdateError("changed")]
)
async def test_a_transient_failure_is_503(
    client: TestClient[Any, Any], stores: Stores, failure: BaseException
) -> None:
    stores.failure = failure
    assert await problem(client, "/v1/libraries/l1/stats") == (
        503,
        "/problems/unavailable",
        "The store cannot be reached",
        "a service it depends on is unreachable; retry shortly",
    )


async def test_any_other_failure_is_500(client: TestClient[Any, Any], stores: Stores) -> None:
    stores.failure = KeyError("a bug")
    assert await problem(client, "/v1/assets/a1") == (
        500,
        "/problems/internal",
        "The service failed on this request",
        "the service failed; the log has the details",
    )


async def test_a_method_the_api_lacks_is_405(client: TestClient[Any, Any]) -> None:
    assert await problem(client, "/v1/assets/a1", "POST") == (
        405,
        "/problems/method-not-allowed",
        "This route does not offer this method",
        "POST is not allowed here (allowed: GET, HEAD)",
    )


async def test_accuracy_without_outcomes_is_empty(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/suggestion-accuracy")
    assert response.status == 200
    assert await response.json() == {"items": []}


def _realised(estimated: float, realised: float, ci95: tuple[float, float]) -> Any:
    return SimpleNamespace(
        suggestion=SimpleNamespace(estimated_improvement_pct=estimated),
        realised_improvement_pct=realised,
        realised_ci95=ci95,
    )


async def test_accuracy_sums_up_each_type_with_outcomes(
    client: TestClient[Any, Any], stores: Stores
) -> None:
    stores.realised_by_type = {
        "compress": [_realised(20.0, 10.0, (5.0, 15.0)), _realised(30.0, 35.0, (25.0, 45.0))],
        "resize": [_realised(12.34, 0.0, (-3.0, 13.0))],
        "refresh_design": [_realised(40.0, 10.0, (-5.0, 30.0))],
    }
    response = await client.get("/v1/suggestion-accuracy")
    assert response.status == 200
    assert await response.json() == {
        "items": [
            {
                "type": "refresh_design",
                "unit": "ctr_change",
                "realised": 1,
                "mean_estimated_pct": 40.0,
                "mean_realised_pct": 10.0,
                "mean_absolute_error_pct": 30.0,
                "estimate_within_ci95": 0,
            },
            {
                "type": "compress",
                "unit": "bytes_saved",
                "realised": 2,
                "mean_estimated_pct": 25.0,
                "mean_realised_pct": 22.5,
                "mean_absolute_error_pct": 7.5,
                "estimate_within_ci95": 1,
            },
            {
                "type": "resize",
                "unit": "bytes_saved",
                "realised": 1,
                "mean_estimated_pct": 12.3,
                "mean_realised_pct": 0.0,
                "mean_absolute_error_pct": 12.3,
                "estimate_within_ci95": 1,
            },
        ]
    }
    response = await client.get("/v1/suggestion-accuracy?type=resize")
    assert [item["type"] for item in (await response.json())["items"]] == ["resize"]
