"""The held connection on a redis-py that does not read through hiredis: it falls back to
redis-py's own reading, a reply at a time (service/store/pinned.py, `_read_replies`)."""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers import _AsyncRESP2Parser
from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ResponseError

from service.config import Settings
from service.store.client import connect
from service.store.pinned import hiredis_reader, pinned

pytestmark = [pytest.mark.integration]


async def test_replies_are_read_the_slow_way_when_hiredis_does_not_read_them(
    settings: Settings,
) -> None:
    usual = connect(settings)
    assert isinstance(usual, Redis)
    kwargs = {**usual.connection_pool.connection_kwargs, "parser_class": _AsyncRESP2Parser}
    pool = ConnectionPool(connection_class=usual.connection_pool.connection_class, **kwargs)
    redis: Any = Redis(connection_pool=pool)
    key = f"{settings.redis_key_prefix}:{{pinned}}:slow"
    big = "x" * 200_000
    try:
        async with pinned(redis, key) as conn:
            replies = await conn.run(
                [("SET", key, big), ("HGET", key, "f"), ("MULTI",), ("GET", key), ("EXEC",)]
            )
            assert hiredis_reader(conn._connection) is None, "redis-py's own parser reads"
            assert (await conn.run([("GET", key)]))[0] == big, "nothing left unread before"
        assert replies[0] in (True, "OK", b"OK")
        assert isinstance(replies[1], ResponseError) and "WRONGTYPE" in str(replies[1])
        assert replies[2:4] in (["OK", "QUEUED"], [b"OK", b"QUEUED"])
        assert replies[4] in ([big], [big.encode()])
    finally:
        await redis.delete(key)
        await redis.aclose()
        await usual.aclose()
