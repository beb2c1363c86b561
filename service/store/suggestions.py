"""Redis store of sent suggestions: one record per (asset, type, channel), plus indexes.

An asset's suggestions hash maps `<type>|<channel or ->` to a record's JSON (the last
event sent, its status and when it closed); a second hash keeps, by id, the records their
slot no longer holds (superseded); each suggestion id names its asset; a library keeps
its suggestions in sorted-set indexes (all, per type, per priority, per status) whose
members sort newest first; a variant names the applied suggestion it
answers; per type, the suggestions whose realised improvement is known. The keys are
in `store/keys.py`, described in docs/redis-keys.md.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.domain.enums import Channel, Priority, SuggestionOrigin, SuggestionType
from service.domain.events import OptimizationSuggestion
from service.domain.suggestion_state import SentState, Status
from service.store.keys import Keys

NEWEST_FIRST = 10**13 - 1  # milliseconds, inverted: a later time sorts first


def index_member(record: SuggestionRecord) -> str:
    """A suggestion's member in its library's indexes: `<inverted ms>:<id>`, so that lex
    order is newest first (by the time it was opened), then by id."""
    opened = int(record.suggestion.created_at.timestamp() * 1000)
    return f"{NEWEST_FIRST - opened:013d}:{record.suggestion.suggestion_id}"


def index_facets(record: SuggestionRecord) -> list[tuple[str, str]]:
    s = record.suggestion
    return [("type", s.type.value), ("priority", s.priority.value), ("status", record.status.value)]


ALL_FACETS = [
    *(("type", t.value) for t in SuggestionType),
    *(("priority", p.value) for p in Priority),
    *(("status", st.value) for st in Status),
]


def slot(suggestion_type: SuggestionType, channel: Channel | None) -> str:
    """The field of one (type, channel) in an asset's suggestions hash."""
    return f"{suggestion_type.value}|{channel.value if channel else '-'}"


class SuggestionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    suggestion: OptimizationSuggestion
    status: Status = Status.OPEN
    closed_at: datetime | None = None
    new_asset_id: str | None = None
    realised_improvement_pct: float | None = None
    realised_ci95: tuple[float, float] | None = None

    @property
    def slot(self) -> str:
        """Its field in the asset's hash: one per (type, channel) for the rules; one per
        suggestion for the manual ones, which never take a rule's place."""
        s = self.suggestion
        if s.origin is SuggestionOrigin.MANUAL:
            return f"{slot(s.type, s.channel)}|{s.suggestion_id}"
        return slot(s.type, s.channel)

    def state(self) -> SentState:
        s = self.suggestion
        return SentState(
            suggestion_id=s.suggestion_id,
            status=self.status,
            priority=s.priority,
            estimated_improvement_pct=s.estimated_improvement_pct,
            sent_at=s.occurred_at,
            closed_at=self.closed_at,
        )


class SuggestionStore:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        lua = resources.files("service.store") / "lua" / "suggestion_index.lua"
        self._move = redis.register_script(lua.read_text("utf-8"))

    async def get(
        self, asset_id: str, suggestion_type: SuggestionType, channel: Channel | None
    ) -> SuggestionRecord | None:
        """The last suggestion of this type and channel sent for the asset."""
        field = slot(suggestion_type, channel)
        raw = await self._redis.hget(self._keys.asset_suggestions(asset_id), field)
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def put(self, record: SuggestionRecord) -> None:
        s = record.suggestion
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                self._keys.asset_suggestions(s.asset_id), record.slot, record.model_dump_json()
            )
            pipe.set(self._keys.suggestion(s.suggestion_id), s.asset_id)
            await pipe.execute()
        await self._index(record)

    async def _index(self, record: SuggestionRecord) -> None:
        """Move the suggestion into its library's indexes for its current type, priority
        and status, in one script (`suggestion_index.lua`): two writers of one suggestion
        never leave it in an index twice."""
        s = record.suggestion
        index = self._keys.library_suggestion_index
        facets = [index(s.library_id, facet, value) for facet, value in ALL_FACETS]
        now = {index(s.library_id, facet, value) for facet, value in index_facets(record)}
        keys = [self._keys.library_suggestion_members(s.library_id), index(s.library_id), *facets]
        positions = [n + 3 for n, key in enumerate(facets) if key in now]  # 1-based in KEYS
        await self._move(keys=keys, args=[s.suggestion_id, index_member(record), *positions])

    async def retire(self, record: SuggestionRecord) -> None:
        """Keep a record its slot no longer holds (superseded by another suggestion of the
        same type and channel), so that it is still found by id."""
        s = record.suggestion
        await self._redis.hset(
            self._keys.closed_suggestions(s.asset_id), s.suggestion_id, record.model_dump_json()
        )
        await self._index(record)

    async def link_variant(
        self, new_asset_id: str, suggestion_id: str, original_id: str | None = None
    ) -> None:
        await self._redis.set(self._keys.variant_of(new_asset_id), suggestion_id)
        if original_id is not None:  # listed among the original's variants
            await self._redis.zadd(self._keys.asset_variants(original_id), {new_asset_id: 0})

    async def variant_of(self, asset_id: str) -> str | None:
        value: str | None = await self._redis.get(self._keys.variant_of(asset_id))
        return value

    async def record_realised(self, record: SuggestionRecord) -> None:
        await self.put(record)  # the record its slot holds (the engine checks)
        s = record.suggestion
        key = self._keys.suggestions_realised(s.type.value)
        await self._redis.zadd(key, {s.suggestion_id: s.created_at.timestamp()})

    async def realised(self, suggestion_type: SuggestionType) -> list[SuggestionRecord]:
        key = self._keys.suggestions_realised(suggestion_type.value)
        ids = await self._redis.zrange(key, 0, -1)
        records = [await self.by_id(i) for i in ids]
        return [r for r in records if r is not None and r.realised_improvement_pct is not None]

    async def for_asset(self, asset_id: str) -> list[SuggestionRecord]:
        raw = await self._redis.hgetall(self._keys.asset_suggestions(asset_id))
        return [SuggestionRecord.model_validate_json(v) for v in raw.values()]

    async def by_id(self, suggestion_id: str) -> SuggestionRecord | None:
        asset_id = await self._redis.get(self._keys.suggestion(suggestion_id))
        if asset_id is None:
            return None
        for record in await self.for_asset(asset_id):
            if record.suggestion.suggestion_id == suggestion_id:
                return record
        raw = await self._redis.hget(self._keys.closed_suggestions(asset_id), suggestion_id)
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def library_page(
        self,
        library_id: str,
        *,
        filters: dict[str, str],
        cursor: str | None,
        limit: int,
    ) -> tuple[list[SuggestionRecord], str | None]:
        """A page of a library's suggestions, newest first, matching every filter
        (`type`, `priority`, `status`), after `cursor`; and the cursor of the next page
        (None at the end). Filtered in Redis: the smallest index is walked, membership in
        the others checked."""
        index = self._keys.library_suggestion_index
        keys = [index(library_id)] + [index(library_id, f, v) for f, v in sorted(filters.items())]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcard(key)
            sizes = await pipe.execute()
        scan = keys[sizes.index(min(sizes))]
        others = [k for k in keys if k != scan]
        page: list[str] = []
        start = "-" if not cursor else f"({cursor}"
        batch = max(limit, 100)
        while len(page) < limit:
            candidates: list[str] = await self._redis.zrangebylex(
                scan, start, "+", start=0, num=batch
            )
            if not candidates:
                break
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in candidates:
                    for key in others:
                        pipe.zscore(key, member)
                scores = await pipe.execute()
            width = len(others)
            for n, member in enumerate(candidates):
                if all(x is not None for x in scores[n * width : (n + 1) * width]):
                    page.append(member)
                    if len(page) == limit:
                        break
            start = f"({candidates[-1]}"
            if len(candidates) < batch:
                break
        records = [await self.by_id(member.split(":", 1)[1]) for member in page]
        next_cursor = page[-1] if len(page) == limit else None
        return [r for r in records if r is not None], next_cursor
