"""Libraries: the library-updated contract, the newest-wins rule, the handler on the
in-memory store, and GET /v1/libraries and /v1/libraries/{library_id} through the app's
web stack (libraries known only from their assets included)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain.decoding import RawMessage, decode
from service.domain.enums import DeadLetterReason
from service.domain.events import LibraryUpdated
from service.domain.libraries import epoch_micros, library_info, wins
from service.errors import DecodeError
from service.handlers.libraries import LibraryHandler
from tests.fakes import FakeLibraryStore
from tests.unit.factories import T0
from tests.unit.test_registry_handler import make_rig
from tests.unit.web import serve_views


def event(
    library_id: str = "L1", minutes: int = 0, event_id: str | None = None, **fields: Any
) -> LibraryUpdated:
    body: dict[str, Any] = {
        "event_id": event_id or f"lib-{library_id}-{minutes}",
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "library_id": library_id,
        "name": f"Library {library_id} @{minutes}",
        "owner": "brand-team",
    }
    body.update(fields)
    return LibraryUpdated.model_validate(body)


def raw(body: dict[str, Any], key: bytes | None = b"L1") -> RawMessage:
    return RawMessage("media.library-updated", 0, 7, key, json.dumps(body).encode())


def test_the_contract_refuses_what_it_does_not_know() -> None:
    good = {
        "event_id": "e1",
        "occurred_at": "2026-03-01T12:00:00Z",
        "library_id": "L1",
        "name": "Brand",
        "owner": "ana",
    }
    assert decode(LibraryUpdated, raw(good), max_bytes=10_000, key_field="library_id").name == (
        "Brand"
    )
    for body, key, code in [
        ({**good, "colour": "red"}, b"L1", DeadLetterReason.SCHEMA_VIOLATION),
        ({**good, "name": ""}, b"L1", DeadLetterReason.SCHEMA_VIOLATION),
        ({k: v for k, v in good.items() if k != "owner"}, b"L1", DeadLetterReason.SCHEMA_VIOLATION),
        (good, b"L2", DeadLetterReason.KEY_MISMATCH),
    ]:
        with pytest.raises(DecodeError) as refused:
            decode(LibraryUpdated, raw(body, key), max_bytes=10_000, key_field="library_id")
        assert refused.value.code is code, body


def test_the_newest_version_wins_whatever_the_order() -> None:
    old, new = library_info(event(minutes=0)), library_info(event(minutes=5))
    assert wins(old, None) and wins(new, old) and not wins(old, new) and not wins(new, new)
    same_time = library_info(event(minutes=5, event_id="zzz"))
    assert wins(same_time, new) and not wins(new, same_time)


def test_times_compare_exactly_in_microseconds() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert epoch_micros(moment) == int(moment.timestamp()) * 1_000_000 + 123456
    assert epoch_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_micros(moment.astimezone(timezone(timedelta(hours=2)))) == epoch_micros(moment)


async def test_the_handler_keeps_the_newest_facts_and_lists_the_library() -> None:
    store = FakeLibraryStore()
    handler = LibraryHandler(store)
    assert await handler.updated(event(minutes=5, name="Newer"))
    assert not await handler.updated(event(minutes=1, name="Older"))  # arrived late
    assert not await handler.updated(event(minutes=5, name="Newer"))  # a copy
    [(info, stats)] = await store.details(["L1"])
    assert info is not None and info.name == "Newer" and stats is None
    assert await store.page(None, 10) == ["L1"]


# --- the routes ---------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    rig = make_rig()
    libraries = FakeLibraryStore(rig.store)
    async with serve_views(
        tmp_path, registry_store=rig.store, library_store=libraries
    ) as test_client:
        yield test_client, SimpleNamespace(rig=rig, handler=LibraryHandler(libraries))


async def get(http: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await http.get(path)
    return response.status, await response.json()


async def test_libraries_are_listed_with_their_facts_or_name_null(client: Any) -> None:
    http, world = client
    await world.rig.register(world.rig.reg("a1", library_id="L2", file_size_bytes=300))
    await world.rig.register(world.rig.reg("a2", library_id="L2", file_size_bytes=200))
    await world.handler.updated(event("L1", description="The brand's images"))
    await world.handler.updated(event("L2", minutes=3, name="Social"))
    await world.rig.register(world.rig.reg("a3", library_id="L3", file_size_bytes=50))

    status, first = await get(http, "/v1/libraries?limit=2")
    assert status == 200
    assert [
        (i["library_id"], i["name"], i["owner"], i["asset_count"], i["total_bytes"])
        for i in first["items"]
    ] == [("L1", "Library L1 @0", "brand-team", 0, 0), ("L2", "Social", "brand-team", 2, 500)]
    assert first["items"][0]["description"] == "The brand's images"
    assert first["next_cursor"] == "L2"
    status, second = await get(http, "/v1/libraries?limit=2&cursor=L2")
    assert [(i["library_id"], i["name"], i["updated_at"]) for i in second["items"]] == [
        ("L3", None, None)
    ]
    assert second["next_cursor"] is None

    status, one = await get(http, "/v1/libraries/L2")
    assert status == 200
    assert (one["name"], one["asset_count"], one["by_media_type"]["image"]) == ("Social", 2, 2)
    assert one["by_status"]["draft"] == 2
    status, bare = await get(http, "/v1/libraries/L1")
    assert status == 200 and bare["asset_count"] == 0 and bare["by_status"]["draft"] == 0
    status, body = await get(http, "/v1/libraries/L9")
    assert status == 404 and "no registered assets" in body["detail"]
    assert (await get(http, "/v1/libraries?limit=0"))[0] == 400
