"""The suggestion store's contract, on the fake and on Redis: what the suggestion engine
relies on (one record per slot, found by id in its slot or once retired, variants,
realised)."""

from __future__ import annotations

from datetime import timedelta

from service.domain.enums import Channel, Priority, SuggestionType
from service.domain.events import OptimizationSuggestion
from service.domain.suggestion_state import Status
from service.store.suggestions import SuggestionRecord
from tests.contract.conftest import Backend
from tests.unit.factories import T0


def record(
    suggestion_id: str,
    asset_id: str = "a1",
    suggestion_type: SuggestionType = SuggestionType.REFRESH_DESIGN,
    channel: Channel | None = Channel.DISPLAY,
    minutes: int = 0,
    library_id: str = "L1",
) -> SuggestionRecord:
    at = T0 + timedelta(minutes=minutes)
    return SuggestionRecord(
        suggestion=OptimizationSuggestion(
            event_id=suggestion_id,
            occurred_at=at,
            suggestion_id=suggestion_id,
            asset_id=asset_id,
            library_id=library_id,
            type=suggestion_type,
            priority=Priority.MEDIUM,
            channel=channel,
            description="refresh the design",
            estimated_improvement_pct=20.0,
            improvement_basis="the channel's benchmark",
            evidence={"ctr": 0.001, "ci95": [0.0, 0.002]},
            created_at=at,
        )
    )


async def test_a_slot_keeps_its_last_record(backend: Backend) -> None:
    store = backend.suggestions
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, Channel.DISPLAY) is None
    first = record("sug-1")
    await store.put(first)
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, Channel.DISPLAY) == first
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, Channel.WEB) is None
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, None) is None
    assert await store.by_id("sug-1") == first

    closed = first.model_copy(update={"status": Status.DISMISSED, "closed_at": T0})
    await store.put(closed)  # the same suggestion, closed
    assert await store.by_id("sug-1") == closed

    later = record("sug-2", minutes=5)  # another trigger of the same slot
    await store.put(later)
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, Channel.DISPLAY) == later
    assert await store.by_id("sug-1") is None, "superseded, not retired"
    retired = closed.model_copy(update={"status": Status.SUPERSEDED})
    await store.retire(retired)
    assert await store.by_id("sug-1") == retired, "retired: found by id"
    assert await store.get("a1", SuggestionType.REFRESH_DESIGN, Channel.DISPLAY) == later
    assert await store.by_id("sug-nope") is None

    no_channel = record("sug-3", suggestion_type=SuggestionType.COMPRESS, channel=None)
    await store.put(no_channel)
    assert await store.get("a1", SuggestionType.COMPRESS, None) == no_channel
    assert sorted(r.suggestion.suggestion_id for r in await store.for_asset("a1")) == [
        "sug-2",
        "sug-3",
    ]


async def page(
    backend: Backend, library: str, limit: int = 10, cursor: str | None = None, **filters: str
) -> tuple[list[str], str | None]:
    records, next_cursor = await backend.suggestions.library_page(
        library, filters=filters, cursor=cursor, limit=limit
    )
    return [r.suggestion.suggestion_id for r in records], next_cursor


async def test_a_library_pages_its_suggestions_newest_first(backend: Backend) -> None:
    store = backend.suggestions
    await store.put(record("sug-1", "a1", minutes=1))
    await store.put(record("sug-2", "a2", minutes=3))
    await store.put(record("sug-3", "a3", minutes=2))
    await store.put(record("sug-4", "a4", minutes=9, library_id="L2"))
    assert (await page(backend, "L1"))[0] == ["sug-2", "sug-3", "sug-1"]
    first, cursor = await page(backend, "L1", limit=2)
    assert first == ["sug-2", "sug-3"] and cursor is not None
    rest, end = await page(backend, "L1", limit=2, cursor=cursor)
    assert rest == ["sug-1"] and end is None
    assert await page(backend, "nowhere") == ([], None)


async def test_a_library_is_filtered_where_it_is_stored(backend: Backend) -> None:
    store = backend.suggestions
    for n in range(12):  # more than a page of others before the one that matches
        await store.put(record(f"sug-{n}", f"a{n}", minutes=20 - n))
    compress = record("sug-c", "a9", SuggestionType.COMPRESS, minutes=1)
    await store.put(compress)
    assert await page(backend, "L1", limit=3, type="compress") == (["sug-c"], None)
    # A status change moves it between indexes.
    await store.put(compress.model_copy(update={"status": Status.DISMISSED}))
    assert await page(backend, "L1", type="compress", status="open") == ([], None)
    assert (await page(backend, "L1", type="compress", status="dismissed"))[0] == ["sug-c"]
    # Retired (superseded): listed under its closing status.
    await store.retire(compress.model_copy(update={"status": Status.SUPERSEDED}))
    assert (await page(backend, "L1", status="superseded"))[0] == ["sug-c"]
    assert (await page(backend, "L1", status="dismissed"))[0] == []
    ids, cursor = await page(backend, "L1", limit=5, priority="medium", status="open")
    assert ids == ["sug-0", "sug-1", "sug-2", "sug-3", "sug-4"]
    more, _ = await page(backend, "L1", limit=100, cursor=cursor, priority="medium")
    assert more == [f"sug-{n}" for n in range(5, 12)] + ["sug-c"]


async def test_variants_and_realised_improvements(backend: Backend) -> None:
    store = backend.suggestions
    assert await store.variant_of("a2") is None
    await store.put(record("sug-1"))
    await store.link_variant("a2", "sug-1")
    assert await store.variant_of("a2") == "sug-1"
    assert await store.realised(SuggestionType.REFRESH_DESIGN) == []

    known = (await store.by_id("sug-1")).model_copy(
        update={"realised_improvement_pct": 150.0, "realised_ci95": (40.0, 260.0)}
    )
    await store.record_realised(known)
    assert await store.by_id("sug-1") == known
    assert await store.realised(SuggestionType.REFRESH_DESIGN) == [known]
    assert await store.realised(SuggestionType.COMPRESS) == []
    await store.put(record("sug-9", minutes=60))  # the slot moves on: no longer listed
    assert await store.realised(SuggestionType.REFRESH_DESIGN) == []
