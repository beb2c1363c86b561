"""Text search in a library: the words an asset is found by, what a query asks, and
GET /v1/libraries/{library_id}/assets?q= through the app's web stack on the in-memory
registry (indexes moved with the asset, as library_project.lua moves them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.domain.library import (
    MAX_PREFIX,
    MAX_SEARCH_WORDS,
    TextQuery,
    search_words,
    text_query,
    words_of,
)
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views


def test_words_are_case_folded_runs_of_letters_and_digits() -> None:
    assert words_of("Summer_Sale / HERO banner v2!") == ["summer", "sale", "hero", "banner", "v2"]
    assert words_of("Crème BRÛLÉE") == ["crème", "brûlée"]
    assert words_of("Cre\u0300me") == words_of("Crème")  # composed or not, the same word
    assert words_of("Straße") == ["strasse"]


def test_an_asset_is_found_by_a_bounded_set_of_words() -> None:
    assert search_words("Hero banner", "summer", "The hero of the summer") == [
        "hero",
        "banner",
        "summer",
        "the",
        "of",
    ]
    many = search_words(" ".join(f"w{n}" for n in range(500)))
    assert len(many) == MAX_SEARCH_WORDS and many[-1] == f"w{MAX_SEARCH_WORDS - 1}"


def test_every_word_must_match_the_last_as_a_prefix() -> None:
    assert text_query("Hero ban") == TextQuery(("hero",), "ban")
    assert text_query("ban hero hero") == TextQuery(("ban",), "hero")
    assert text_query("  ?! ") is None
    long = "x" * (MAX_PREFIX + 1)
    assert text_query(f"hero {long}") == TextQuery(("hero", long), None)


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig]]:
    rig = make_rig()
    async with serve_views(tmp_path, registry_store=rig.store) as test_client:
        yield test_client, rig


async def found(http: TestClient[Any, Any], query: str) -> list[str]:
    response = await http.get(f"/v1/libraries/L1/assets?{query}")
    assert response.status == 200, await response.text()
    return [a["asset_id"] for a in (await response.json())["items"]]


async def test_search_combines_with_the_filters_and_paging(client: Any) -> None:
    http, rig = client
    await rig.register(rig.reg("a1", library_id="L1", name="Summer hero banner", tags=["Sale"]))
    await rig.register(
        rig.reg("a2", library_id="L1", name="Winter banner", description="Hero", tags=[])
    )
    await rig.register(
        rig.reg("a3", library_id="L1", name="Summer teaser", tags=["hero"], file_size_bytes=9)
    )
    await rig.register(rig.reg("b1", library_id="L2", name="Summer hero banner"))

    assert await found(http, "q=hero") == ["a1", "a2", "a3"]
    assert await found(http, "q=HERO ban") == ["a1", "a2"]
    assert await found(http, "q=summ") == ["a1", "a3"]
    assert await found(http, "q=summer her&tag=sale") == ["a1"]
    assert await found(http, "q=summer") == ["a1", "a3"]
    assert await found(http, "q=summerx") == []
    assert await found(http, "q=hero&limit=2&cursor=a1") == ["a2", "a3"]
    assert await found(http, "q=...") == ["a1", "a2", "a3"]  # no word: no text filter

    # Renamed: the old words no longer find it, the new ones do.
    await rig.register(rig.reg("a1", library_id="L1", name="Autumn banner", tags=["Sale"]))
    assert await found(http, "q=summer") == ["a3"]
    assert await found(http, "q=autumn") == ["a1"]
    response = await http.get(f"/v1/libraries/L1/assets?q={'x' * 257}")
    assert response.status == 400
