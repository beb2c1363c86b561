"""Who may read what, and credentials kept out of every output.

Tokens are checked by the settings (no empty, short or placeholder token starts a
worker), several may be valid at once (rotation), /v1 and /metrics each take theirs
through the app's real web stack, Faust's own pages are not served, and passwords
holding `@`, `:` or `/` are masked in logs, dead letters and check-config's lines.
"""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from service import operations
from service.app import create_app
from service.config import Settings
from service.handlers.emit import fit_reason
from service.observability import Instruments, logging_config, redact
from tests.unit.test_api_errors import Stores

API_OLD = "api-token-old-0123456789abcdefghijklmnop"
API_NEW = "api-token-new-0123456789abcdefghijklmnop"
METRICS = "metrics-token-0123456789abcdefghijklmnop"
PASSWORD = "p@ss:w/rd@x"
REDIS_URL = f"redis://svc:{PASSWORD}@redis.internal:6379/0"
# The same in a URL the settings accept: the password percent-encoded.
ENCODED_URL = f"redis://svc:{quote(PASSWORD, safe='')}@redis.internal:6379/0"


def settings(**values: Any) -> Settings:
    return Settings.model_validate({**values, "_env_file": None})


# --- tokens in the settings ---------------------------------------------------------


@pytest.mark.parametrize("field", ["api_token", "metrics_token"])
@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "is empty"),
        ("CHANGE-ME", "is a placeholder"),
        ("changeme", "is a placeholder"),
        ("Secret", "is a placeholder"),
        ("PASSWORD", "is a placeholder"),
        ("token", "is a placeholder"),
        ("example", "is a placeholder"),
        ("x" * 40, "is a placeholder"),
        ("please-CHANGE-ME-before-deploying-0123456789", "is a placeholder"),
        ("ourchangemetoken-0123456789abcdefghijkl", "is a placeholder"),
        ("short-but-random-9f8e7d", "is shorter than 32 characters"),
        (f"{API_OLD},", "token 2 of 2 is empty"),
        (f"{API_OLD},CHANGE-ME", "token 2 of 2 is a placeholder"),
    ],
)
def test_an_unusable_token_is_refused(field: str, token: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**{field: token})
    message = str(caught.value)
    assert f"MEDIA_{field.upper()}" in message and problem in message
    assert "secrets.token_urlsafe(32)" in message, "the message says how to make one"
    assert "input_value" not in message, "the refused value is never echoed"
    if len(token) > 12:
        assert token not in message


def test_several_tokens_are_each_accepted() -> None:
    configured = settings(api_token=f"{API_OLD}, {API_NEW}", metrics_token=METRICS)
    assert [t.get_secret_value() for t in configured.api_tokens] == [API_OLD, API_NEW]
    assert [t.get_secret_value() for t in configured.metrics_tokens] == [METRICS]
    assert settings().api_tokens == () and settings().metrics_tokens == ()


# --- the web stack ----------------------------------------------------------------


async def _client(configured: Settings) -> TestClient[Any, Any]:
    app = create_app(configured)
    stores = Stores()
    app.runtime = SimpleNamespace(  # type: ignore[assignment]
        settings=configured,
        registry_store=stores,
        metrics_store=stores,
        suggestion_store=stores,
        leaderboard_store=stores,
        instruments=Instruments.create(),
    )
    return TestClient(TestServer(app.web.web_app))


@pytest.fixture
async def guarded(tmp_path: Any) -> AsyncIterator[TestClient[Any, Any]]:
    configured = settings(
        data_dir=str(tmp_path),
        api_token=f"{API_OLD},{API_NEW}",
        metrics_token=METRICS,
    )
    async with await _client(configured) as client:
        yield client


@pytest.fixture
async def open_client(tmp_path: Any) -> AsyncIterator[TestClient[Any, Any]]:
    async with await _client(settings(data_dir=str(tmp_path))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "path", ["/", "/router", "/router/topics", "/table", "/stats", "/graph", "/performance"]
)
async def test_faust_pages_are_not_served(open_client: TestClient[Any, Any], path: str) -> None:
    response = await open_client.get(path)
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["type"] == "/problems/not-found" and body["instance"] == path


async def test_only_the_service_routes_exist(open_client: TestClient[Any, Any]) -> None:
    from service.api.views import ROUTES, UNDOCUMENTED

    app = open_client.server.app
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert served == {*ROUTES, *UNDOCUMENTED}


async def test_any_api_token_passes_and_nothing_else(guarded: TestClient[Any, Any]) -> None:
    for token in (API_OLD, API_NEW):
        response = await guarded.get("/v1/assets/a1", headers=bearer(token))
        assert response.status == 404, "through the guard to the view (an unknown asset)"
    refused = ({}, bearer(""), bearer(METRICS), bearer(API_OLD + "x"), {"Authorization": "Bearer"})
    for headers in refused:
        response = await guarded.get("/v1/assets/a1", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_metrics_take_their_own_token(guarded: TestClient[Any, Any]) -> None:
    response = await guarded.get("/metrics", headers=bearer(METRICS))
    assert response.status == 200
    text = await response.text()
    assert "media_events_consumed" in text
    assert PASSWORD not in text and API_OLD not in text and METRICS not in text
    refused = ({}, bearer(API_OLD), bearer(METRICS[:-1]), {"Authorization": f"Basic {METRICS}"})
    for headers in refused:
        response = await guarded.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert (await response.json())["type"] == "/problems/unauthorized"


async def test_probes_stay_open(guarded: TestClient[Any, Any]) -> None:
    assert (await guarded.get("/openapi.json")).status == 200
    assert (await guarded.get("/healthz")).status != 401


async def test_without_tokens_metrics_and_api_are_open(open_client: TestClient[Any, Any]) -> None:
    assert (await open_client.get("/metrics")).status == 200
    assert (await open_client.get("/v1/assets/a1")).status == 404


# --- credentials in outputs -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://user:p@ss@host:6379/0", "redis://user:***@host:6379/0"),
        (REDIS_URL, "redis://svc:***@redis.internal:6379/0"),
        ("rediss://:a/b:c@d@db", "rediss://:***@db"),
        (
            "kafka+sasl://u:p@w@b1:9092 and redis://x:y@z/0",
            "kafka+sasl://u:***@b1:9092 and redis://x:***@z/0",
        ),
        ("https://tok3n@git.example/x", "https://***@git.example/x"),
        ("redis://db:6379/0", "redis://db:6379/0"),
    ],
)
def test_userinfo_is_masked_up_to_the_last_at(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_records_through_the_configured_formatter(fmt: str) -> None:
    config = logging_config("info", fmt)
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(config["formatters"]["default"]))
    handler.addFilter(configurator.configure_filter(config["filters"]["redact"]))
    logger = logging.getLogger(f"tests.security.{fmt}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting to %s", REDIS_URL)
        try:
            raise ConnectionError(f"Error connecting to {REDIS_URL}")
        except ConnectionError:
            logger.exception("Redis failed")
        logger.info("header Authorization: Bearer %s", API_OLD)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "redis.internal" in output
    for leaked in (PASSWORD, "p@ss", "w/rd", API_OLD):
        assert leaked not in output, output


def test_dead_letter_reasons_are_masked() -> None:
    reason = fit_reason(f"store failed: Error connecting to {REDIS_URL}")
    assert PASSWORD not in reason and "w/rd" not in reason
    assert "redis://svc:***@redis.internal" in reason


async def test_check_config_prints_no_credential(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    configured = settings(
        data_dir=str(tmp_path), redis_url=ENCODED_URL, api_token=API_OLD, metrics_token=METRICS
    )

    async def unreachable_kafka(_: Settings) -> Any:
        raise ConnectionError(f"cannot reach Kafka (Redis is {REDIS_URL})")

    class DownRedis:
        async def info(self, section: str) -> Any:
            raise ConnectionError(f"Error 111 connecting to {REDIS_URL}. Connection refused.")

        async def aclose(self) -> None:
            pass

    async def diagnosis(_: Settings) -> str:
        return "connected"  # the reason then comes from the failure itself, masked

    monkeypatch.setattr(operations, "describe_topics", unreachable_kafka)
    monkeypatch.setattr(operations, "diagnose_kafka", diagnosis)
    monkeypatch.setattr(operations, "connect", lambda _: DownRedis())
    lines: list[str] = []
    assert await operations.check_config(configured, lines.append) is False
    printed = "\n".join(lines)
    assert "MEDIA_REDIS_URL=********" in lines
    assert "MEDIA_API_TOKEN=********" in lines and "MEDIA_METRICS_TOKEN=********" in lines
    assert "redis: FAILED" in printed and "redis.internal" in printed
    for leaked in (PASSWORD, quote(PASSWORD, safe=""), "p@ss", "w/rd", API_OLD, METRICS):
        assert leaked not in printed, printed
