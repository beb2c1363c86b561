"""The held connection of the metrics step (service/store/pinned.py) on a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ResponseError

from service.config import Settings
from service.store.pinned import hiredis_reader, pinned

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.secure]


async def test_replies_come_in_order_with_errors_in_place(redis: Any, settings: Settings) -> None:
    key = f"{settings.redis_key_prefix}:{{pinned}}:k"
    big = "x" * 200_000  # several reads of the socket for one reply
    async with pinned(redis, key) as conn:
        replies = await conn.run(
            [
                ("SET", key, big),
                ("HGET", key, "f"),  # a string, not a hash
                ("MULTI",),
                ("GET", key),
                ("HSET", key, "f", "v"),
                ("EXEC",),
                ("GET", key),
            ]
        )
        # The installed redis-py is read the fast way (once connected); if an upgrade
        # changes its parser, this says so instead of the worker slowing down unnoticed.
        assert hiredis_reader(conn._connection) is not None
    assert replies[0] is True or replies[0] == "OK"
    assert isinstance(replies[1], ResponseError) and "WRONGTYPE" in str(replies[1])
    assert replies[2:5] == ["OK", "QUEUED", "QUEUED"]
    got, wrong = replies[5]
    assert got == big and isinstance(wrong, ResponseError)
    assert replies[6] == big
    await redis.delete(key)
