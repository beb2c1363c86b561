"""CSV bodies of the list routes: content negotiation, the rows, and one route through
the app's web stack on the in-memory registry."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from service.api.csv_body import render, wants_csv
from service.api.openapi import document
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("application/json", False),
        ("text/csv", True),
        ("text/csv;q=0.9, application/json", False),
        ("application/json;q=0.5, text/csv", True),
        ("*/*", False),
        ("text/csv, */*;q=0.1", True),
        ("text/csv;q=0", False),
        ("TEXT/CSV", True),
    ],
)
def test_csv_only_when_the_client_prefers_it(accept: str | None, expected: bool) -> None:
    assert wants_csv(accept) is expected


class Inner(BaseModel):
    ctr: float
    clicks: int


class Row(BaseModel):
    name: str
    tags: list[str]
    lifetime: Inner
    note: str | None = None
    ok: bool = True


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_rows_flatten_objects_join_lists_and_defuse_formulas() -> None:
    rows = [
        Row(name="hero, big", tags=["a", "b"], lifetime=Inner(ctr=0.5, clicks=3)),
        Row(name="=HYPERLINK(1)", tags=[], lifetime=Inner(ctr=0, clicks=0), note="-1", ok=False),
    ]
    assert parse(render(rows, Row)) == [
        ["name", "tags", "lifetime.ctr", "lifetime.clicks", "note", "ok"],
        ["hero, big", "a;b", "0.5", "3", "", "true"],
        ["'=HYPERLINK(1)", "", "0.0", "0", "'-1", "false"],
    ]
    assert parse(render([], Row)) == [["name", "tags", "lifetime", "note", "ok"]]


def test_the_document_offers_csv_on_the_list_routes() -> None:
    paths = document(api_page_size_max=500, token_required=False)["paths"]
    with_csv = {
        path
        for path, ops in paths.items()
        if "text/csv" in ops["get"]["responses"]["200"]["content"]
    }
    assert with_csv == {
        "/v1/assets/{asset_id}/series",
        "/v1/assets/{asset_id}/history",
        "/v1/assets/{asset_id}/suggestions",
        "/v1/libraries",
        "/v1/libraries/{library_id}/assets",
        "/v1/libraries/{library_id}/top",
        "/v1/libraries/{library_id}/duplicates",
        "/v1/libraries/{library_id}/suggestions",
        "/v1/campaigns/{campaign_id}/top",
    }


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig]]:
    rig = make_rig()
    async with serve_views(tmp_path, registry_store=rig.store) as test_client:
        yield test_client, rig


async def test_a_list_route_answers_csv_when_asked(client: Any) -> None:
    http, rig = client
    for asset_id in ("a1", "a2", "a3"):
        await rig.register(rig.reg(asset_id, library_id="L1", name=f"{asset_id}.png"))
    response = await http.get("/v1/libraries/L1/assets?limit=2", headers={"Accept": "text/csv"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Next-Cursor"] == "a2"
    rows = parse(await response.text())
    assert rows[0][:3] == ["asset_id", "library_id", "name"]
    assert [r[0] for r in rows[1:]] == ["a1", "a2"]
    assert rows[1][rows[0].index("tags")] == "summer;sale"
    plain = await http.get("/v1/libraries/L1/assets?limit=2")
    assert plain.headers["Content-Type"].startswith("application/json")
    # Errors stay problem details whatever Accept says.
    missing = await http.get("/v1/libraries/L9/assets", headers={"Accept": "text/csv"})
    assert missing.status == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
