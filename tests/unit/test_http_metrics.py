"""Every answer of the web server is counted and timed by its declared route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from service.app import MediaApp, create_api_app, create_app
from service.config import Settings

REQUESTS = "media_http_requests_total"


@asynccontextmanager
async def measured(
    tmp_path: Path, build: Callable[[Settings], MediaApp]
) -> AsyncIterator[tuple[TestClient[Any, Any], CollectorRegistry]]:
    """A client of the app's real web stack (no store behind it), and the registry its
    middleware records into."""
    settings = Settings(data_dir=str(tmp_path))
    app = build(settings)
    registry = app.runtime.instruments.registry
    app.runtime = SimpleNamespace(settings=settings)  # type: ignore[assignment]
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield client, registry


async def test_answers_are_counted_and_timed_by_declared_route(tmp_path: Path) -> None:
    async with measured(tmp_path, create_app) as (client, registry):
        assert (await client.get("/openapi.json")).status == 200
        for asset in ("a1", "a2"):  # an unknown query parameter: 400 before any read
            assert (await client.get(f"/v1/assets/{asset}/metrics?chanel=web")).status == 400
        assert (await client.get("/v1/nothing-here")).status == 404
        assert (await client.post("/openapi.json")).status == 405

    sample = registry.get_sample_value
    metrics_route = "/v1/assets/{asset_id}/metrics"
    assert sample(REQUESTS, {"route": "/openapi.json", "method": "GET", "status": "200"}) == 1
    assert sample(REQUESTS, {"route": metrics_route, "method": "GET", "status": "400"}) == 2
    assert sample(REQUESTS, {"route": "unmatched", "method": "GET", "status": "404"}) == 1
    assert sample(REQUESTS, {"route": "unmatched", "method": "POST", "status": "405"}) == 1
    assert sample("media_http_request_seconds_count", {"route": metrics_route}) == 2
    routes = {
        s.labels["route"]
        for family in registry.collect()
        for s in family.samples
        if "route" in s.labels
    }
    assert not [r for r in routes if "a1" in r or "a2" in r or "nothing" in r], routes


async def test_an_api_server_measures_its_answers_too(tmp_path: Path) -> None:
    async with measured(tmp_path, create_api_app) as (client, registry):
        assert (await client.get("/healthz")).status == 200
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    assert registry.get_sample_value(REQUESTS, labels) == 1
