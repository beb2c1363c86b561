"""Loads the Lua scripts shipped in `lua/` and registers them with a Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return (resources.files("service.store") / "lua" / f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True)
class Scripts:
    """Each script runs with EVALSHA, falling back to EVAL once after a Redis restart."""

    asset_commit: AsyncScript
    asset_forget: AsyncScript
    library_project: AsyncScript
    library_info: AsyncScript
    hash_project: AsyncScript
    index_page: AsyncScript
    count_once: AsyncScript
    unschedule_if_due: AsyncScript
    perf_forget: AsyncScript
    position_advance: AsyncScript
    board_claim: AsyncScript
    board_write: AsyncScript
    lease_hold: AsyncScript
    lease_release: AsyncScript

    @classmethod
    def register(cls, redis: Any) -> Scripts:
        return cls(
            **{name: redis.register_script(_source(name)) for name in cls.__dataclass_fields__}
        )
