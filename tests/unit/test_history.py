"""An asset's history: the entries the registry rules make, how the handler writes them
(once per applied change, never for a re-sent or rejected event), and
GET /v1/assets/{asset_id}/history through the app's web stack on the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain import registry as rules
from service.domain.enums import AssetStatus, LifecycleAction
from service.domain.events import AssetLifecycle
from service.domain.history import HistoryAction, HistoryEntry, newest_first
from service.domain.registry import AssetState
from tests.fakes import FakeRegistryStore
from tests.unit.factories import T0, lifecycle, registration, source
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views

MAX_HELD = 100


def with_actor(action: str, actor: str, minutes: int = 1) -> AssetLifecycle:
    return lifecycle(action, minutes=minutes).model_copy(update={"actor": actor})


# --- the rules -------------------------------------------------------------------------


def test_a_first_registration_is_the_first_entry() -> None:
    event = registration(library_id="L1")
    decision = rules.register(None, event, source())
    [entry] = decision.history
    assert entry == HistoryEntry(
        seq=1,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        action=HistoryAction.REGISTERED,
        from_status=None,
        to_status=AssetStatus.DRAFT,
        library_id="L1",
    )
    assert decision.state.history_seq == 1


def test_transitions_carry_statuses_campaign_and_actor() -> None:
    state = rules.register(None, registration(), source()).state
    approved = rules.lifecycle(
        state, with_actor("approved", "ana"), source(), T0, max_held=MAX_HELD
    )
    [entry] = approved.history
    assert (entry.seq, entry.action, entry.from_status, entry.to_status, entry.actor) == (
        2,
        HistoryAction.APPROVED,
        AssetStatus.DRAFT,
        AssetStatus.APPROVED,
        "ana",
    )
    published = rules.lifecycle(
        approved.state, lifecycle("published", campaign_id="spring"), source(), T0, max_held=9
    )
    [entry] = published.history
    assert (entry.seq, entry.campaign_id, entry.to_status) == (3, "spring", AssetStatus.PUBLISHED)
    used = rules.lifecycle(
        published.state, lifecycle("used", campaign_id="spring"), source(), T0, max_held=9
    )
    [entry] = used.history
    assert (entry.action, entry.from_status, entry.to_status) == (
        HistoryAction.USED,
        AssetStatus.PUBLISHED,
        AssetStatus.PUBLISHED,
    )
    again = rules.register(used.state, registration(name="renamed.png"), source())
    [entry] = again.history
    assert (entry.seq, entry.action, entry.from_status, entry.to_status) == (
        5,
        HistoryAction.UPDATED,
        AssetStatus.PUBLISHED,
        AssetStatus.PUBLISHED,
    )


def test_a_rejected_or_held_event_makes_no_entry() -> None:
    state = rules.register(None, registration(), source()).state
    rejected = rules.lifecycle(state, lifecycle("archived"), source(), T0, max_held=MAX_HELD)
    assert rejected.history == [] and rejected.state.history_seq == 1
    held = rules.lifecycle(None, lifecycle("approved"), source(), T0, max_held=MAX_HELD)
    assert held.history == [] and held.state.history_seq == 0


def test_held_events_enter_the_history_after_their_registration_in_order() -> None:
    state: AssetState | None = None
    for action in ("approved", "archived", "published"):  # archived is invalid after approved
        state = rules.lifecycle(state, lifecycle(action), source(), T0, max_held=MAX_HELD).state
    decision = rules.register(state, registration(), source())
    assert [(e.seq, e.action) for e in decision.history] == [
        (1, HistoryAction.REGISTERED),
        (2, HistoryAction.APPROVED),
        (3, HistoryAction.PUBLISHED),
    ]
    assert decision.state.history_seq == 3


def test_every_lifecycle_action_names_a_history_action() -> None:
    assert {a.value for a in LifecycleAction} <= {a.value for a in HistoryAction}


def test_pages_newest_first_before_a_cursor() -> None:
    entries = [
        HistoryEntry(
            seq=n,
            event_id=f"e{n}",
            occurred_at=T0 + timedelta(minutes=n),
            action=HistoryAction.USED,
            from_status=AssetStatus.APPROVED,
            to_status=AssetStatus.APPROVED,
        )
        for n in (3, 1, 2, 5, 4)
    ]
    assert [e.seq for e in newest_first(entries, None, 2)] == [5, 4]
    assert [e.seq for e in newest_first(entries, 4, 2)] == [3, 2]
    assert [e.seq for e in newest_first(entries, 2, 5)] == [1]


# --- the handler on the in-memory store ---------------------------------------------------


async def history_of(rig: Rig, asset_id: str) -> list[tuple[str, str | None]]:
    entries = await rig.store.history(asset_id, before=None, limit=1000)
    return [(e.action.value, e.actor) for e in entries]


async def test_the_handler_writes_each_applied_change_once() -> None:
    rig = make_rig()
    await rig.register(rig.reg("a1"))
    approval = rig.life("a1", "approved", "life-1", actor="ana")
    await rig.lifecycle(approval)
    await rig.lifecycle(approval)  # redelivered after a crash
    await rig.lifecycle(rig.again(approval))  # re-sent by its producer
    await rig.lifecycle(rig.life("a1", "archived", "life-2"))  # invalid: dead-lettered
    assert await history_of(rig, "a1") == [("approved", "ana"), ("registered", None)]


async def test_the_store_keeps_the_newest_entries_only() -> None:
    rig = make_rig(FakeRegistryStore(history_max=3))
    await rig.register(rig.reg("a1"))
    await rig.lifecycle(rig.life("a1", "approved", "life-1"))
    for n in range(3):
        await rig.lifecycle(rig.life("a1", "used", f"use-{n}", campaign_id="c1"))
    entries = await rig.store.history("a1", before=None, limit=10)
    assert [e.seq for e in entries] == [5, 4, 3]


# --- the route ---------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig]]:
    rig = make_rig()
    async with serve_views(tmp_path, registry_store=rig.store) as test_client:
        yield test_client, rig


async def get(http: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await http.get(path)
    return response.status, await response.json()


async def test_the_route_pages_through_the_history_newest_first(client: Any) -> None:
    http, rig = client
    await rig.register(rig.reg("a1", library_id="L1"))
    await rig.lifecycle(rig.life("a1", "approved", "life-1", actor="ana"))
    await rig.lifecycle(rig.life("a1", "published", "life-2", campaign_id="spring", actor="bo"))

    status, first = await get(http, "/v1/assets/a1/history?limit=2")
    assert status == 200
    assert [(i["action"], i["from_status"], i["to_status"]) for i in first["items"]] == [
        ("published", "approved", "published"),
        ("approved", "draft", "approved"),
    ]
    assert first["items"][0]["campaign_id"] == "spring" and first["items"][0]["actor"] == "bo"
    assert first["items"][0]["event_id"] == "life-2"
    assert first["next_cursor"] is not None

    status, second = await get(http, f"/v1/assets/a1/history?limit=2&cursor={first['next_cursor']}")
    assert status == 200
    [item] = second["items"]
    assert (item["action"], item["from_status"], item["library_id"]) == ("registered", None, "L1")
    assert second["next_cursor"] is None


async def test_the_route_answers_problems(client: Any) -> None:
    http, rig = client
    status, body = await get(http, "/v1/assets/nobody/history")
    assert status == 404 and "not registered" in body["detail"]
    await rig.register(rig.reg("a1"))
    for query in ("cursor=abc", "cursor=-1", "limit=0", "page=2"):
        status, body = await get(http, f"/v1/assets/a1/history?{query}")
        assert status == 400, query
    # A cursor past the oldest entry is an empty last page, not a 404.
    assert await get(http, "/v1/assets/a1/history?cursor=1") == (
        200,
        {"asset_id": "a1", "items": [], "next_cursor": None},
    )
