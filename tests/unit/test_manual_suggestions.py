"""POST /v1/assets/{asset_id}/suggestions: a suggestion a person makes, through the app's
real web stack, on the suggestion engine with in-memory stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.config import Settings
from service.domain import registry as rules
from service.domain.enums import AssetStatus
from service.domain.metrics import Totals
from service.handlers.suggestions import SuggestionEngine
from service.observability import Instruments
from service.runtime import load_rules
from tests.fakes import FakeProducer, FakeSuggestionStore
from tests.unit.factories import T0, registration, source

TOKEN = "unit-api-token-0123456789abcdefghijkl"
TOPIC = "suggestions"


class Registry:
    def __init__(self) -> None:
        state = rules.register(None, registration("a1"), source()).state
        self.states = {"a1": state}

    async def load(self, asset_id: str, event_id: str | None = None) -> Any:
        return SimpleNamespace(state=self.states.get(asset_id), seen=None)


def body(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": "req-1",
        "occurred_at": T0.isoformat(),
        "type": "refresh_design",
        "priority": "medium",
        "channel": "social",
        "description": "Try the autumn palette: the summer one tested poorly in the panel.",
        "estimated_improvement_pct": 12.5,
    }
    value.update(overrides)
    return value


async def make_client(
    tmp_path: Any, token: str | None
) -> tuple[TestClient[Any, Any], SimpleNamespace]:
    settings = Settings(data_dir=str(tmp_path), api_token=token)
    app = create_app(settings)
    store, producer = FakeSuggestionStore(), FakeProducer()

    async def lifetime(asset_id: str, channel: Any) -> Totals:
        return Totals()

    async def daily(asset_id: str, now: float) -> list[Any]:
        return []

    engine = SuggestionEngine(
        store,
        producer,
        TOPIC,
        load_rules(None),
        timedelta(hours=1),
        Instruments.create().suggestions,
        lifetime,
        daily=daily,
        now=lambda: T0 + timedelta(minutes=5),
    )
    runtime = SimpleNamespace(
        settings=settings,
        registry_store=Registry(),
        suggestion_store=store,
        suggestions=engine,
        producer=producer,
    )
    app.runtime = runtime  # type: ignore[assignment]
    return TestClient(TestServer(app.web.web_app)), runtime


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], SimpleNamespace]]:
    test_client, runtime = await make_client(tmp_path, TOKEN)
    async with test_client:
        yield test_client, runtime


async def post(client: TestClient[Any, Any], value: Any, path: str = "/v1/assets/a1") -> Any:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    response = await client.post(
        f"{path}/suggestions", data=data, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return response.status, await response.json()


async def test_a_manual_suggestion_is_published_marked_manual(client: Any) -> None:
    http, runtime = client
    status, created = await post(http, body())
    assert status == 201
    assert created["origin"] == "manual" and created["status"] == "open"
    assert (created["type"], created["channel"], created["priority"]) == (
        "refresh_design",
        "social",
        "medium",
    )
    [sent] = runtime.producer.on(TOPIC)
    assert sent["suggestion_id"] == created["suggestion_id"]
    assert sent["origin"] == "manual" and sent["event_id"] == f"{sent['suggestion_id']}:1"
    assert sent["evidence"]["request_event_id"] == "req-1"
    # The same request again: the same suggestion, nothing published twice.
    assert await post(http, body()) == (201, created)
    assert len(runtime.producer.on(TOPIC)) == 1
    # It sits beside the rules' suggestions, never in their slot.
    listed = await runtime.suggestion_store.for_asset("a1")
    assert [r.suggestion.suggestion_id for r in listed] == [created["suggestion_id"]]
    assert await runtime.suggestion_store.get("a1", listed[0].suggestion.type, None) is None


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (body(type="paint_it_red"), "type: Input should be"),
        (body(estimated_improvement_pct=-1), "estimated_improvement_pct: Input should be"),
        (body(surprise=1), "surprise: Extra inputs are not permitted"),
        ({k: v for k, v in body().items() if k != "description"}, "description: Field required"),
        (b'{"event_id": "x",', "not valid JSON"),
        (b'{"event_id": "a", "event_id": "b"}', "appears more than once"),
    ],
)
async def test_a_bad_body_is_400_with_what_to_fix(client: Any, value: Any, detail: str) -> None:
    http, runtime = client
    status, problem = await post(http, value)
    assert status == 400 and problem["type"] == "/problems/bad-request"
    assert detail in problem["detail"], problem["detail"]
    assert not problem["detail"].startswith("the request body[0]")
    assert runtime.producer.on(TOPIC) == []


async def test_an_unknown_or_retired_asset_takes_none(client: Any) -> None:
    http, runtime = client
    status, problem = await post(http, body(), "/v1/assets/nobody")
    assert status == 404 and "not registered" in problem["detail"]
    asset = runtime.registry_store.states["a1"].asset
    archived = asset.model_copy(update={"status": AssetStatus.ARCHIVED})
    runtime.registry_store.states["a1"] = runtime.registry_store.states["a1"].model_copy(
        update={"asset": archived}
    )
    status, problem = await post(http, body())
    assert status == 400 and "archived" in problem["detail"]
    assert runtime.producer.on(TOPIC) == []


async def test_the_token_is_always_required(tmp_path: Any, client: Any) -> None:
    http, _ = client
    response = await http.post("/v1/assets/a1/suggestions", data=json.dumps(body()).encode())
    assert response.status == 401
    # With no token configured the reads are open, but a manual suggestion is refused.
    open_client, runtime = await make_client(tmp_path / "open", None)
    async with open_client:
        response = await open_client.post(
            "/v1/assets/a1/suggestions", data=json.dumps(body()).encode()
        )
        problem = await response.json()
        assert response.status == 403 and problem["type"] == "/problems/forbidden"
        assert "MEDIA_API_TOKEN" in problem["detail"]
        assert runtime.producer.on(TOPIC) == []
        assert (await open_client.get("/v1/assets/a1/suggestions")).status == 200
