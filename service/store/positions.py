"""Positions of the per-message input partitions (registrations, lifecycle, feedback).

A position is the offset of the last message of a partition whose effects are all
in Redis. It moves after a batch (`position_advance.lua`), never backwards, and
tells the worker when Redis lost writes it made (see the script's header).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from service.store.keys import Keys
from service.store.scripts import Scripts


class Advance(Enum):
    MOVED = 1
    COVERED = 0
    BEHIND = -2


@dataclass(frozen=True, slots=True)
class Advanced:
    """What `advance` did, and the position Redis holds after it."""

    result: Advance
    position: int


class PositionStore:
    def __init__(self, redis: Any, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def get(self, topic: str, partition: int) -> int:
        """The partition's position, or -1 when nothing was processed yet."""
        value = await self._redis.get(self._keys.input_position(topic, partition))
        return -1 if value is None else int(value)

    async def advance(self, topic: str, partition: int, expected: int, offset: int) -> Advanced:
        reply = await self._scripts.position_advance(
            keys=[self._keys.input_position(topic, partition)], args=[expected, offset]
        )
        return Advanced(Advance(int(reply[0])), int(reply[1]))
