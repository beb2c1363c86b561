"""Redis store of the asset registry: asset state, library indexes, the content-hash index.

The asset's state is the source of truth and changes only by compare-and-set
(`asset_commit.lua`). Library and content-hash indexes are projections of it,
applied by scripts that ignore anything older than what they already hold, so a
projection can be repeated any number of times without counting twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from service.domain.history import DEFAULT_HISTORY_MAX_PER_ASSET, HistoryEntry
from service.domain.library import LibraryEntry, LibraryStats, TextQuery, prefixes
from service.domain.registry import AssetState, Outcome
from service.store.codecs import library_stats
from service.store.keys import Keys, LibraryKeys
from service.store.scripts import Scripts


@dataclass(frozen=True, slots=True)
class Loaded:
    """An asset's state and, when the event was seen before, its recorded outcome."""

    state: AssetState | None
    seen: Outcome | None

    @property
    def rev(self) -> int:
        return 0 if self.state is None else self.state.rev


class DuplicateEntry(NamedTuple):
    """An asset holding a content, and its library."""

    asset_id: str
    library_id: str


@dataclass(frozen=True, slots=True)
class HashPlacement:
    """The result of placing an asset in the content-hash index: whether the placement
    was applied, whether the asset was announced already, and the assets that held the
    content before it, in order of first registration."""

    applied: bool
    announced: bool
    earlier: list[DuplicateEntry]


class RegistryStore:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        scripts: Scripts,
        seen_ttl_seconds: int,
        *,
        history_max: int = DEFAULT_HISTORY_MAX_PER_ASSET,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._seen_ttl = seen_ttl_seconds
        self._history_max = history_max

    # --- asset state -----------------------------------------------------------------

    async def load(self, asset_id: str, event_id: str | None = None) -> Loaded:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._keys.asset_state(asset_id), "doc")
            if event_id is not None:
                pipe.hget(self._keys.asset_seen(asset_id), event_id)
            results = await pipe.execute()
        doc = results[0]
        seen = results[1] if event_id is not None else None
        return Loaded(
            state=None if doc is None else AssetState.model_validate_json(doc),
            seen=None if seen is None else Outcome.model_validate_json(seen),
        )

    async def commit(
        self,
        asset_id: str,
        expected_rev: int,
        state: AssetState | None,
        settled: Mapping[str, Outcome],
        history: Sequence[HistoryEntry] = (),
    ) -> bool:
        """Write `state` (None: keep the stored one), its new history entries and the
        settled outcomes, atomically, if the asset is still at `expected_rev`."""
        entries: list[str | int] = []
        for entry in history:
            entries += [entry.seq, entry.model_dump_json()]
        pairs: list[str] = []
        for event_id, outcome in settled.items():
            pairs += [event_id, outcome.model_dump_json()]
        written = await self._scripts.asset_commit(
            keys=[
                self._keys.asset_state(asset_id),
                self._keys.asset_seen(asset_id),
                self._keys.asset_history(asset_id),
            ],
            args=[
                expected_rev,
                expected_rev if state is None else state.rev,
                "" if state is None else state.model_dump_json(),
                self._seen_ttl,
                self._history_max,
                len(history),
                *entries,
                *pairs,
            ],
        )
        return bool(written)

    async def replace(self, state: AssetState) -> bool:
        """Rewrite the state at the same rev: housekeeping that changes no projection."""
        return await self.commit(state.asset_id, state.rev, state, {})

    async def forget(self, asset_id: str, expected_rev: int) -> bool:
        """Delete the state of an asset that never registered and holds no event any more,
        if it is still at `expected_rev`; its outbox must have been sent. The seen hash
        stays."""
        deleted = await self._scripts.asset_forget(
            keys=[self._keys.asset_state(asset_id)], args=[expected_rev]
        )
        return bool(deleted)

    # --- projections -----------------------------------------------------------------

    async def project_library(
        self, library_id: str, asset_id: str, rev: int, entry: LibraryEntry | None
    ) -> bool:
        keys = self._keys.library(library_id)
        member: dict[str, Any] = {"rev": rev}
        if entry is not None:
            member["entry"] = entry.model_dump(mode="json", exclude_none=True)
        fixed = [keys.stats, keys.members, keys.assets, keys.usage, keys.contents, keys.waste]
        for _ in range(_PROJECTION_TRIES):
            stored = await self._redis.hget(keys.members, asset_id)
            indexes = _index_keys(keys, _stored_entry(stored)) | _index_keys(
                keys, member.get("entry")
            )
            applied = await self._scripts.library_project(
                keys=[*fixed, *sorted(indexes)],
                args=[keys.index_prefix, asset_id, rev, json.dumps(member, separators=(",", ":"))],
            )
            if int(applied) != -1:
                break
        else:
            raise RuntimeError(
                f"the library member of asset {asset_id!r} in {library_id!r} changed under "
                f"{_PROJECTION_TRIES} projections in a row; another writer is projecting it"
            )
        # Known from now on (idempotent, and repeated with the projection after a crash).
        await self._redis.zadd(self._keys.libraries, {library_id: 0})
        return bool(applied)

    async def project_variant(self, original_id: str, asset_id: str, present: bool) -> None:
        """List the asset among the original's variants, or take it off (idempotent)."""
        key = self._keys.asset_variants(original_id)
        if present:
            await self._redis.zadd(key, {asset_id: 0})
        else:
            await self._redis.zrem(key, asset_id)

    async def variants(self, original_id: str) -> list[str]:
        """The original's variants, by asset id."""
        members: list[str] = await self._redis.zrange(self._keys.asset_variants(original_id), 0, -1)
        return members

    async def variant_count(self, original_id: str) -> int:
        return int(await self._redis.zcard(self._keys.asset_variants(original_id)))

    async def project_hash(
        self, content_sha256: str, asset_id: str, rev: int, library_id: str | None
    ) -> HashPlacement:
        reply = await self._scripts.hash_project(
            keys=[self._keys.hash_assets(content_sha256), self._keys.hash_meta(content_sha256)],
            args=[asset_id, rev, library_id or ""],
        )
        pairs = reply[2:]
        earlier = [DuplicateEntry(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
        return HashPlacement(applied=bool(reply[0]), announced=bool(reply[1]), earlier=earlier)

    async def mark_announced(self, content_sha256: str, asset_id: str) -> None:
        await self._redis.hset(self._keys.hash_meta(content_sha256), f"announced:{asset_id}", "1")

    # --- held lifecycle events -------------------------------------------------------

    async def schedule_held(self, asset_id: str, deadline: datetime) -> None:
        """Record when the sweep should next look at this asset."""
        await self._redis.zadd(self._keys.held_schedule, {asset_id: _millis(deadline)})

    async def unschedule_held(self, asset_id: str, due_by: datetime | None = None) -> None:
        """Forget the asset's deadline; with `due_by`, only if that deadline has passed by then,
        so that a deadline a newly held event set meanwhile is kept."""
        if due_by is None:
            await self._redis.zrem(self._keys.held_schedule, asset_id)
        else:
            await self._scripts.unschedule_if_due(
                keys=[self._keys.held_schedule], args=[asset_id, _millis(due_by)]
            )

    async def due_held(self, now: datetime, limit: int) -> list[str]:
        result: list[str] = await self._redis.zrangebyscore(
            self._keys.held_schedule, "-inf", _millis(now), start=0, num=limit
        )
        return result

    # --- reads -----------------------------------------------------------------------

    async def library_stats(self, library_id: str) -> LibraryStats | None:
        counters = await self._redis.hgetall(self._keys.library(library_id).stats)
        if not counters:
            return None
        return library_stats(library_id, counters)

    async def library_page(
        self,
        library_id: str,
        *,
        tags: list[str],
        categories: list[str],
        status: str | None,
        cursor: str | None,
        limit: int,
        text: TextQuery | None = None,
    ) -> list[str]:
        """Asset ids of a library after `cursor`, in id order, matching every filter."""
        keys = self._keys.library(library_id)
        indexes = [keys.assets]
        indexes += [keys.tag(t) for t in tags]
        indexes += [keys.category(c) for c in categories]
        if text is not None:
            indexes += [keys.word(w) for w in text.whole]
            if text.prefix is not None:
                indexes.append(keys.prefix(text.prefix))
        if status is not None:
            indexes.append(keys.status(status))
        page: list[str] = await self._scripts.index_page(keys=indexes, args=[cursor or "", limit])
        return page

    async def redundant(
        self, library_id: str, offset: int, limit: int
    ) -> list[tuple[str, int, int]]:
        """The library's contents held more than once: (content_sha256, copies, wasted
        bytes), most wasted bytes first, from `offset`."""
        keys = self._keys.library(library_id)
        pairs = await self._redis.zrevrange(keys.waste, offset, offset + limit - 1, withscores=True)
        if not pairs:
            return []
        counts = await self._redis.hmget(keys.contents, [f"n:{sha}" for sha, _ in pairs])
        return [
            (sha, int(n or 0), int(score)) for (sha, score), n in zip(pairs, counts, strict=True)
        ]

    async def most_used(self, library_id: str, limit: int) -> list[tuple[str, int]]:
        """The library's most used assets with their usage_count: highest first, then asset
        id (the set is scored by minus the count); never used ones are not in it."""
        pairs = await self._redis.zrange(
            self._keys.library(library_id).usage, 0, limit - 1, withscores=True
        )
        return [(asset_id, -int(score)) for asset_id, score in pairs]

    async def history(self, asset_id: str, *, before: int | None, limit: int) -> list[HistoryEntry]:
        """The asset's history entries newest first, those with a seq below `before` when
        given."""
        top = "+inf" if before is None else f"({before}"
        docs: list[str] = await self._redis.zrange(
            self._keys.asset_history(asset_id),
            top,
            "-inf",
            desc=True,
            byscore=True,
            offset=0,
            num=limit,
        )
        return [HistoryEntry.model_validate_json(doc) for doc in docs]

    async def assets(self, asset_ids: list[str]) -> list[AssetState]:
        if not asset_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.hget(self._keys.asset_state(asset_id), "doc")
            docs = await pipe.execute()
        return [AssetState.model_validate_json(doc) for doc in docs if doc is not None]

    async def duplicates(self, content_sha256: str) -> list[DuplicateEntry]:
        """Every asset currently holding this content, in order of first registration."""
        members: list[str] = await self._redis.zrange(self._keys.hash_assets(content_sha256), 0, -1)
        if not members:
            return []
        libraries = await self._redis.hmget(
            self._keys.hash_meta(content_sha256), [f"lib:{m}" for m in members]
        )
        return [
            DuplicateEntry(asset_id=m, library_id=lib)
            for m, lib in zip(members, libraries, strict=True)
            if lib is not None
        ]


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


_PROJECTION_TRIES = 5


def _stored_entry(stored: str | None) -> dict[str, Any] | None:
    """The entry of a stored library member, or None (none, removed, or unreadable: the
    script refuses an unreadable one itself)."""
    if not stored:
        return None
    try:
        member = json.loads(stored)
    except ValueError:
        return None
    entry = member.get("entry") if isinstance(member, dict) else None
    return entry if isinstance(entry, dict) else None


def _index_keys(keys: LibraryKeys, entry: dict[str, Any] | None) -> set[str]:
    """The index keys listing an entry's asset, as library_project.lua derives them."""
    if entry is None:
        return set()
    found = {keys.status(str(entry.get("status")))}

    def names(field: str) -> list[str]:
        values = entry.get(field) or []
        return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []

    found.update(keys.tag(tag) for tag in names("tags"))
    found.update(keys.category(category) for category in names("categories"))
    for word in names("words"):
        found.add(keys.word(word))
        found.update(keys.prefix(prefix) for prefix in prefixes(word))
    return found
