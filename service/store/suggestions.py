"""Redis store of sent suggestions: one record per (asset, type, channel), plus indexes.

`P:{a:<asset>}:suggestions` hash: `<type>|<channel or ->` -> record JSON (the event
sent, its status and when it closed); `P:suggestion:<id>` -> asset id;
`P:{l:<library>}:suggestions` sorted set of ids by time sent; `P:{a:<new>}:variant-of`
-> the applied suggestion a variant answers; `P:suggestions-realised:<type>` sorted set of
the suggestions whose realised improvement is known.
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
            sent_at=s.created_at,
            closed_at=self.closed_at,
        )


class SuggestionStore:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _asset_key(self, asset_id: str) -> str:
        return f"{self._keys.prefix}:{{a:{asset_id}}}:suggestions"

    def _id_key(self, suggestion_id: str) -> str:
        return f"{self._keys.prefix}:suggestion:{suggestion_id}"

    def _library_key(self, library_id: str) -> str:
        return f"{self._keys.prefix}:{{l:{library_id}}}:suggestions"

    async def get(self, asset_id: str, slot: str) -> SuggestionRecord | None:
        raw = await self._redis.hget(self._asset_key(asset_id), slot)
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def put(self, record: SuggestionRecord) -> None:
        s = record.suggestion
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._asset_key(s.asset_id), record.slot, record.model_dump_json())
            pipe.set(self._id_key(s.suggestion_id), s.asset_id)
            pipe.zadd(self._library_key(s.library_id), {s.suggestion_id: s.created_at.timestamp()})
            await pipe.execute()

    def _variant_key(self, asset_id: str) -> str:
        return f"{self._keys.prefix}:{{a:{asset_id}}}:variant-of"

    def _realised_key(self, suggestion_type: str) -> str:
        return f"{self._keys.prefix}:suggestions-realised:{suggestion_type}"

    async def link_variant(self, new_asset_id: str, suggestion_id: str) -> None:
        await self._redis.set(self._variant_key(new_asset_id), suggestion_id)

    async def variant_of(self, asset_id: str) -> str | None:
        value: str | None = await self._redis.get(self._variant_key(asset_id))
        return value

    async def record_realised(self, record: SuggestionRecord) -> None:
        await self.put(record)
        s = record.suggestion
        await self._redis.zadd(
            self._realised_key(s.type.value), {s.suggestion_id: s.created_at.timestamp()}
        )

    async def realised(self, suggestion_type: str) -> list[SuggestionRecord]:
        ids = await self._redis.zrange(self._realised_key(suggestion_type), 0, -1)
        records = [await self.by_id(i) for i in ids]
        return [r for r in records if r is not None and r.realised_improvement_pct is not None]

    async def for_asset(self, asset_id: str) -> list[SuggestionRecord]:
        raw = await self._redis.hgetall(self._asset_key(asset_id))
        return [SuggestionRecord.model_validate_json(v) for v in raw.values()]

    async def by_id(self, suggestion_id: str) -> SuggestionRecord | None:
        asset_id = await self._redis.get(self._id_key(suggestion_id))
        if asset_id is None:
            return None
        for record in await self.for_asset(asset_id):
            if record.suggestion.suggestion_id == suggestion_id:
                return record
        return None  # superseded by a later suggestion of the same slot

    async def for_library(self, library_id: str, limit: int) -> list[SuggestionRecord]:
        ids = await self._redis.zrevrange(self._library_key(library_id), 0, limit - 1)
        records = [await self.by_id(i) for i in ids]
        return [r for r in records if r is not None]
