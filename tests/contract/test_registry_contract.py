"""The registry store's contract, on the fake and on Redis: what RegistryHandler relies on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.domain import registry as rules
from service.domain.enums import AssetStatus, MediaType
from service.domain.history import HistoryAction, HistoryEntry
from service.domain.library import LibraryEntry
from service.domain.registry import AssetState, Outcome
from tests.contract.conftest import Backend
from tests.unit.factories import T0, lifecycle, registration, sha, source


def entry(size: int = 100, status: AssetStatus = AssetStatus.DRAFT) -> LibraryEntry:
    return LibraryEntry(
        file_size_bytes=size,
        media_type=MediaType.IMAGE,
        status=status,
        tags=["summer"],
        categories=["campaign"],
    )


def outcome(result: str = "applied") -> Outcome:
    return Outcome(result=result, source=source())  # type: ignore[arg-type]


async def test_commit_is_a_compare_and_set_of_the_rev(backend: Backend) -> None:
    store = backend.registry
    state = AssetState(asset_id="a1", rev=1)
    applied = outcome()
    assert (await store.load("a1", "e1")).rev == 0
    assert await store.commit("a1", 0, state, {"e1": applied})
    assert not await store.commit("a1", 0, state, {"e2": outcome()})  # the rev moved on
    loaded = await store.load("a1", "e1")
    assert loaded.state == state and loaded.rev == 1 and loaded.seen == applied
    assert (await store.load("a1", "e2")).seen is None, "a failed commit writes nothing"
    assert (await store.load("a1")).seen is None

    # No state (None): only the outcomes, at the same rev.
    rejected = outcome("rejected")
    assert await store.commit("a1", 1, None, {"e3": rejected})
    loaded = await store.load("a1", "e3")
    assert loaded.state == state and loaded.seen == rejected

    newer = state.model_copy(update={"rev": 2})
    assert not await store.commit("a1", 2, newer, {})
    assert await store.commit("a1", 1, newer, {})
    assert (await store.load("a1")).rev == 2


async def test_replace_rewrites_at_the_same_rev_only(backend: Backend) -> None:
    store = backend.registry
    held = rules.lifecycle(None, lifecycle("approved"), source(), T0, max_held=5).state
    assert await store.commit(held.asset_id, 0, held, {})
    tidied = held.model_copy(update={"departed_libraries": []})
    assert await store.replace(tidied)
    stale = held.model_copy(update={"rev": held.rev + 1})
    assert not await store.replace(stale)
    assert (await store.load(held.asset_id)).state == tidied


async def test_forget_deletes_only_an_empty_unregistered_state_at_its_rev(
    backend: Backend,
) -> None:
    store = backend.registry
    assert not await store.forget("ghost", 1)  # no state at all
    decision = rules.lifecycle(None, lifecycle("approved", "ghost"), source(), T0, max_held=5)
    held = decision.state
    assert await store.commit("ghost", 0, held, decision.settled)
    with pytest.raises(Exception, match="not forgettable: lifecycle events are held"):
        await store.forget("ghost", held.rev)

    expired, rejections = rules.expire_held(held, T0 + timedelta(hours=2), timedelta(hours=1))
    assert rejections and await store.commit("ghost", held.rev, expired, {})
    assert not await store.forget("ghost", expired.rev + 1)  # not the rev it holds
    assert await store.forget("ghost", expired.rev)
    loaded = await store.load("ghost", lifecycle_id(decision.settled))
    assert loaded.state is None and loaded.seen is not None, "the seen outcomes stay"
    assert not await store.forget("ghost", expired.rev)

    registered = rules.register(None, registration("a1"), source()).state
    assert await store.commit("a1", 0, registered, {})
    with pytest.raises(Exception, match="not forgettable: the asset is registered"):
        await store.forget("a1", registered.rev)
    assert (await store.load("a1")).state == registered


def lifecycle_id(settled: dict[str, Outcome]) -> str:
    [event_id] = settled
    return event_id


async def test_library_projection_counts_once_and_ignores_revs_not_newer(
    backend: Backend,
) -> None:
    store = backend.registry
    assert await store.project_library("L", "a1", 1, entry(size=100))
    assert not await store.project_library("L", "a1", 1, entry(size=100))  # a replay
    assert await store.project_library("L", "a2", 1, entry(size=7))
    assert await store.project_library("L", "a1", 3, entry(size=10, status=AssetStatus.APPROVED))
    assert not await store.project_library("L", "a1", 2, entry(size=99))  # older, late
    stats = await store.library_stats("L")
    assert (stats.asset_count, stats.total_bytes) == (2, 17)
    assert stats.by_status[AssetStatus.APPROVED] == 1 and stats.by_status[AssetStatus.DRAFT] == 1

    assert await store.project_library("L", "a1", 4, None)  # moved away or deleted
    assert not await store.project_library("L", "a1", 3, entry())
    stats = await store.library_stats("L")
    assert (stats.asset_count, stats.total_bytes) == (1, 7)
    assert stats.by_status[AssetStatus.APPROVED] == 0
    assert await store.library_stats("nowhere") is None


async def test_hash_placement_names_earlier_assets_and_ignores_older_revs(
    backend: Backend,
) -> None:
    store = backend.registry
    content = sha(42)
    first = await store.project_hash(content, "a1", 1, "L1")
    assert (first.applied, first.announced, first.earlier) == (True, False, [])
    second = await store.project_hash(content, "a2", 1, "L2")
    assert second.earlier == [("a1", "L1")]
    again = await store.project_hash(content, "a2", 1, "L2")  # same rev: the same answer
    assert (again.applied, again.earlier) == (True, [("a1", "L1")])

    await store.mark_announced(content, "a2")
    assert (await store.project_hash(content, "a2", 2, "L2")).announced
    assert not (await store.project_hash(content, "a2", 1, "L2")).applied  # older rev

    assert (await store.project_hash(content, "a1", 2, None)).applied  # a1 left the content
    stale = await store.project_hash(content, "a1", 1, "L1")
    assert (stale.applied, stale.earlier) == (False, [])
    assert [(d.asset_id, d.library_id) for d in await store.duplicates(content)] == [("a2", "L2")]

    # Back with the content: placed after the assets already there, not announced.
    back = await store.project_hash(content, "a1", 3, "L1")
    assert (back.announced, back.earlier) == (False, [("a2", "L2")])


async def test_the_held_schedule(backend: Backend) -> None:
    store = backend.registry
    await store.schedule_held("late", T0 + timedelta(minutes=30))
    await store.schedule_held("early", T0 + timedelta(minutes=10))
    await store.schedule_held("b", T0 + timedelta(minutes=20))
    assert await store.due_held(T0, 10) == []
    assert await store.due_held(T0 + timedelta(minutes=20), 10) == ["early", "b"]
    assert await store.due_held(T0 + timedelta(hours=1), 2) == ["early", "b"]

    await store.schedule_held("b", T0 + timedelta(hours=2))  # a newly held event moved it
    await store.unschedule_held("b", due_by=T0 + timedelta(hours=1))  # not due by then: kept
    await store.unschedule_held("early", due_by=T0 + timedelta(hours=1))  # due: removed
    assert await store.due_held(T0 + timedelta(hours=3), 10) == ["late", "b"]
    await store.unschedule_held("b")  # registered: removed whatever its deadline
    await store.unschedule_held("never-scheduled")
    assert await store.due_held(T0 + timedelta(hours=3), 10) == ["late"]


def history_entry(seq: int) -> HistoryEntry:
    return HistoryEntry(
        seq=seq,
        event_id=f"e{seq}",
        occurred_at=T0 + timedelta(minutes=seq),
        action=HistoryAction.USED,
        from_status=AssetStatus.PUBLISHED,
        to_status=AssetStatus.PUBLISHED,
        campaign_id="spring:2026",
        actor="ana",
    )


async def test_history_is_written_with_the_state_newest_first_and_bounded(
    backend: Backend,
) -> None:
    store = backend.registry
    state = AssetState(asset_id="a1", rev=1, history_seq=3)
    first = [history_entry(n) for n in (1, 2, 3)]
    assert await store.commit("a1", 0, state, {"e1": outcome()}, first)
    assert not await store.commit("a1", 0, state, {}, [history_entry(4)])  # the rev moved on
    assert await store.history("a1", before=None, limit=10) == first[::-1]
    assert await store.history("a1", before=3, limit=1) == [first[1]]
    assert await store.history("a1", before=1, limit=10) == []
    assert await store.history("nobody", before=None, limit=10) == []

    # One commit past the bound (200 by default): the oldest entries go.
    many = [history_entry(n) for n in range(4, 206)]
    assert await store.commit("a1", 1, state.model_copy(update={"rev": 2}), {}, many)
    kept = await store.history("a1", before=None, limit=1000)
    assert [e.seq for e in kept] == list(range(205, 5, -1))


async def test_the_library_projection_keeps_the_most_used_assets(backend: Backend) -> None:
    store = backend.registry

    def used(count: int) -> LibraryEntry:
        return entry().model_copy(update={"usage_count": count})

    assert await store.project_library("L", "a1", 1, used(2))
    assert await store.project_library("L", "a2", 1, used(5))
    assert await store.project_library("L", "a3", 1, used(2))
    assert await store.project_library("L", "a4", 1, used(0))
    assert await store.project_library("L", "a5", 1, entry())  # written before usage counted
    assert await store.most_used("L", 10) == [("a2", 5), ("a1", 2), ("a3", 2)]
    assert not await store.project_library("L", "a1", 1, used(9))  # a replay: ignored
    assert await store.project_library("L", "a1", 2, used(9))
    assert await store.most_used("L", 2) == [("a1", 9), ("a2", 5)]
    assert await store.project_library("L", "a1", 3, None)  # deleted, or moved away
    assert await store.most_used("L", 10) == [("a2", 5), ("a3", 2)]
    assert await store.most_used("elsewhere", 10) == []


async def test_the_library_projection_counts_redundant_copies(backend: Backend) -> None:
    store = backend.registry

    def holding(content: str, size: int) -> LibraryEntry:
        return entry(size=size).model_copy(update={"content_sha256": content})

    h1, h2 = sha(1), sha(2)
    assert await store.project_library("L", "a1", 1, holding(h1, 100))
    assert await store.redundant("L", 0, 10) == []  # one copy wastes nothing
    assert await store.project_library("L", "a2", 1, holding(h1, 100))
    assert await store.project_library("L", "a3", 1, holding(h1, 100))
    assert await store.project_library("L", "b1", 1, holding(h2, 500))
    assert await store.project_library("L", "b2", 1, holding(h2, 500))
    assert await store.project_library("M", "c1", 1, holding(h2, 500))  # reuse elsewhere
    assert await store.redundant("L", 0, 10) == [(h2, 2, 500), (h1, 3, 200)]
    assert await store.redundant("L", 1, 10) == [(h1, 3, 200)]
    assert not await store.project_library("L", "b2", 1, holding(h2, 500))  # replayed
    assert await store.project_library("L", "b2", 2, None)  # deleted
    assert await store.project_library("L", "a3", 2, holding(h2, 100))  # new content
    assert await store.redundant("L", 0, 10) == [(h2, 2, 300), (h1, 2, 100)]
    assert await store.redundant("M", 0, 10) == []
