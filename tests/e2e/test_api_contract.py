"""The live API against its OpenAPI document: fuzzed, authenticated, errors as problems."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api.openapi import document
from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, settings_from
from tests.e2e.worker import Worker, free_port
from tests.unit.factories import manual_suggestion_body, registration_body, sha

pytestmark = pytest.mark.e2e

TOKEN = "e2e-api-token-0123456789abcdefghijklmnop"
SCHEMA = schemathesis.openapi.from_dict(document(api_page_size_max=500, token_required=True))


def call(base: str, path: str, method: str = "GET", token: str | None = TOKEN) -> Any:
    request = urllib.request.Request(f"{base}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


async def _seed(env: dict[str, str]) -> None:
    from aiokafka import AIOKafkaProducer

    config = settings_from(env)
    producer = AIOKafkaProducer(**client_options(config), acks="all")
    await producer.start()
    try:
        body = registration_body("a1", library_id="lib1", content_sha256=sha(5))
        await producer.send(config.topic_asset_registered, json.dumps(body).encode(), key=b"a1")
        perf = {
            "event_id": "p1",
            "occurred_at": datetime.now(UTC).isoformat(),
            "asset_id": "a1",
            "campaign_id": "c1",
            "channel": "web",
            "impressions": 500,
            "clicks": 9,
        }
        await producer.send(config.topic_asset_performance, json.dumps(perf).encode(), key=b"a1")
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def api(stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = isolated_env(
        stack, web_port=free_port(), api_token=TOKEN, leaderboard_refresh_seconds=0.5
    )
    worker = Worker(env, Path(tmp_path_factory.mktemp("api")) / "worker.log")
    worker.start()
    try:
        asyncio.run(worker.wait_ready())
        asyncio.run(_seed(env))
        base = f"http://127.0.0.1:{worker.port}"
        deadline = time.monotonic() + 60
        while call(base, "/v1/assets/a1")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield base
    finally:
        worker.stop()  # kills it if it ignores Ctrl-C


@SCHEMA.parametrize()
# Derandomized: the same examples on every run, so CI never fails by chance; widen
# max_examples locally to explore more.
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_response_matches_the_document(case: Any, api: str) -> None:
    excluded = []
    if case.operation.path in ("/v1/assets/{asset_id}/metrics", "/v1/assets/{asset_id}/series"):
        # channel and campaign each valid, together a documented 400: sums are not kept
        # per channel and campaign at once, and OpenAPI cannot say "one of". Likewise
        # each resolution and window of a series, but not every pair (documented 400).
        excluded.append(positive_data_acceptance)
    case.call_and_validate(
        base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=excluded
    )


def test_known_data_is_served_as_documented(api: str) -> None:
    status, _, asset = call(api, "/v1/assets/a1")
    assert status == 200 and asset["lifetime"]["impressions"] == 500


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_v1_routes_require_the_token(api: str, token: str | None) -> None:
    status, headers, body = call(api, "/v1/assets/a1", token=token)
    assert status == 401
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["type"] == "/problems/unauthorized" and body["status"] == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_health_and_the_document_stay_open(api: str) -> None:
    assert call(api, "/healthz", token=None)[0] == 200
    status, _, doc = call(api, "/openapi.json", token=None)
    assert status == 200 and doc["openapi"] == "3.1.0"


def test_errors_are_problem_details(api: str) -> None:
    for path, method, code, kind in [
        ("/v1/assets/nope", "GET", 404, "/problems/not-found"),
        ("/v1/nothing-here", "GET", 404, "/problems/not-found"),
        ("/v1/assets/a1", "POST", 405, "/problems/method-not-allowed"),
        ("/v1/duplicates/XYZ", "GET", 400, "/problems/bad-request"),
        ("/v1/assets/a1/metrics?chanel=web", "GET", 400, "/problems/bad-request"),
    ]:
        status, headers, body = call(api, path, method)
        assert status == code, (path, method, status, body)
        assert headers["Content-Type"].startswith("application/problem+json"), path
        assert body["type"] == kind and body["status"] == code and body["detail"], body


def test_a_manual_suggestion_is_made_once_per_request(api: str) -> None:
    body = manual_suggestion_body("manual-e2e-1")

    def send() -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{api}/v1/assets/a1/suggestions",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())

    status, created = send()
    assert status == 201 and created["origin"] == "manual" and created["revision"] == 1
    assert send() == (201, created)
    _, _, listed = call(api, "/v1/assets/a1/suggestions")
    mine = [s for s in listed["items"] if s["suggestion_id"] == created["suggestion_id"]]
    assert len(mine) == 1 and mine[0]["origin"] == "manual" and mine[0]["status"] == "open"
