"""Redis store of sent suggestions: one record per (asset, type, channel), plus indexes.

An asset's suggestions hash maps `<type>|<channel or ->` to a record's JSON (the last
event sent, its status and when it closed); a second hash keeps, by id, the records their
slot no longer holds (superseded); each suggestion id names its asset; a library
keeps its suggestion ids by time sent; a variant names the applied suggestion it
answers; per type, the suggestions whose realised improvement is known. The keys are
in `store/keys.py`, described in docs/redis-keys.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.domain.enums import Channel, SuggestionType
from service.domain.events import OptimizationSuggestion
from service.domain.suggestion_state import SentState, Status
from service.store.keys import Keys


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
        return slot(self.suggestion.type, self.suggestion.channel)

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

    async def get(
        self, asset_id: str, suggestion_type: SuggestionType, channel: Channel | None
    ) -> SuggestionRecord | None:
        """The last suggestion of this type and channel sent for the asset."""
        field = slot(suggestion_type, channel)
        raw = await self._redis.hget(self._keys.asset_suggestions(asset_id), field)
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def put(self, record: SuggestionRecord) -> None:
        s = record.suggestion
        sent_at = s.created_at.timestamp()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                self._keys.asset_suggestions(s.asset_id), record.slot, record.model_dump_json()
            )
            pipe.set(self._keys.suggestion(s.suggestion_id), s.asset_id)
            pipe.zadd(self._keys.library_suggestions(s.library_id), {s.suggestion_id: sent_at})
            await pipe.execute()

    async def retire(self, record: SuggestionRecord) -> None:
        """Keep a record its slot no longer holds (superseded by another suggestion of the
        same type and channel), so that it is still found by id."""
        s = record.suggestion
        await self._redis.hset(
            self._keys.closed_suggestions(s.asset_id), s.suggestion_id, record.model_dump_json()
        )

    async def link_variant(self, new_asset_id: str, suggestion_id: str) -> None:
        await self._redis.set(self._keys.variant_of(new_asset_id), suggestion_id)

    async def variant_of(self, asset_id: str) -> str | None:
        value: str | None = await self._redis.get(self._keys.variant_of(asset_id))
        return value

    async def record_realised(self, record: SuggestionRecord) -> None:
        await self.put(record)
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

    async def for_library(self, library_id: str, limit: int) -> list[SuggestionRecord]:
        ids = await self._redis.zrevrange(self._keys.library_suggestions(library_id), 0, limit - 1)
        records = [await self.by_id(i) for i in ids]
        return [r for r in records if r is not None]
