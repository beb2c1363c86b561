"""Storage waste: what copies of one content in one library waste, and
GET /v1/libraries/{library_id}/duplicates through the app's web stack on the in-memory
registry (kept by the library projection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain.library import wasted_bytes
from tests.unit.factories import sha
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views


def test_all_copies_but_one_are_waste() -> None:
    assert wasted_bytes(1, 500) == 0
    assert wasted_bytes(3, 300) == 200
    assert wasted_bytes(2, 301) == 151  # sizes reported differently: their average kept
    assert wasted_bytes(0, 0) == 0


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig]]:
    rig = make_rig()
    async with serve_views(tmp_path, registry_store=rig.store) as test_client:
        yield test_client, rig


async def test_the_route_lists_redundant_copies_largest_first(client: Any) -> None:
    http, rig = client
    for asset_id, library, content, size in [
        ("a1", "L1", sha(1), 100),
        ("a2", "L1", sha(1), 100),
        ("a3", "L1", sha(2), 9_000),
        ("a4", "L1", sha(2), 9_000),
        ("a5", "L1", sha(2), 9_000),
        ("b1", "L2", sha(1), 100),  # the same content in another library: reuse
        ("a6", "L1", sha(3), 5),
    ]:
        reg = rig.reg(asset_id, library_id=library, content_sha256=content, file_size_bytes=size)
        await rig.register(reg)

    response = await http.get("/v1/libraries/L1/duplicates")
    assert response.status == 200
    body = await response.json()
    assert [
        (i["content_sha256"], i["copies"], i["wasted_bytes"], i["asset_ids"]) for i in body["items"]
    ] == [(sha(2), 3, 18_000, ["a3", "a4", "a5"]), (sha(1), 2, 100, ["a1", "a2"])]
    assert body["next_cursor"] is None
    page = await (await http.get("/v1/libraries/L1/duplicates?limit=1")).json()
    assert [i["copies"] for i in page["items"]] == [3] and page["next_cursor"] == "1"
    page = await (await http.get("/v1/libraries/L1/duplicates?limit=1&cursor=1")).json()
    assert [i["copies"] for i in page["items"]] == [2]

    await rig.lifecycle(rig.life("a4", "deleted", "a4-gone"))
    body = await (await http.get("/v1/libraries/L1/duplicates")).json()
    assert [(i["copies"], i["wasted_bytes"]) for i in body["items"]] == [(2, 9_000), (2, 100)]
    assert (await (await http.get("/v1/libraries/L2/duplicates")).json())["items"] == []
    assert (await http.get("/v1/libraries/L9/duplicates")).status == 404
    assert (await http.get("/v1/libraries/L1/duplicates?cursor=x")).status == 400
