"""Per-reason dead-letter counters, shared by every worker and counted once per message."""

from __future__ import annotations

from typing import Any

from service.domain.enums import DeadLetterReason
from service.store.keys import Keys
from service.store.scripts import Scripts


class DeadLetterCounters:
    def __init__(self, redis: Any, keys: Keys, scripts: Scripts, marker_ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._ttl = marker_ttl_seconds

    async def count(self, reason: DeadLetterReason, dead_letter_id: str) -> bool:
        """Count one dead letter; a repeat of the same id (a replay) is not counted again."""
        counted = await self._scripts.count_once(
            keys=[self._keys.dead_letter_counts, self._keys.dead_letter_marker(dead_letter_id)],
            args=[reason.value, self._ttl],
        )
        return bool(counted)

    async def totals(self) -> dict[str, int]:
        raw = await self._redis.hgetall(self._keys.dead_letter_counts)
        return {reason.value: int(raw.get(reason.value, 0)) for reason in DeadLetterReason}
