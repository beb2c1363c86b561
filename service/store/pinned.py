"""One connection to the Redis node that holds a key, kept across round trips.

Why: a `WATCH` belongs to the connection that sent it, and the metrics step
(service/store/metrics.py) reads, watches its fence, then writes with `MULTI`/`EXEC` on
that same connection. redis-py's pipelines either release their connection after each
round trip or, once watching, send each command on its own; this sends a list of
commands in one write and reads every reply, on one connection, as often as needed.

On a cluster the connection goes to the node that owns the key's slot in the client's
slot map. A `MOVED` reply updates that map (the step fails as transient and is retried
on the right node); `ASK` and `TRYAGAIN` (a slot migrating) fail the same way; a lost
connection, a timeout or `CLUSTERDOWN` reload the map from the cluster (a failover may
have moved the slot).

A step's fixed cost is mostly its round trips' Python, so a round trip skips redis-py's
per-command layers: commands are packed by hiredis, written to the connection's stream
and their replies taken from hiredis's reader as redis-py's parser feeds it, all under
one deadline (a round trip of 62 commands: 224 us of CPU instead of 520). What of
redis-py this reads beyond its API: the connection's `_writer` and its parser's
`_reader` and `read_from_socket`; `tests/integration/test_pinned.py` checks them on
every stack, and without the reader `read_response` serves.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from hiredis import pack_command
from redis.asyncio import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:  # hiredis's reader as redis-py's parser feeds it (see _read_replies)
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
except ImportError:  # another layout of redis-py: its own reading, a reply at a time
    NOT_ENOUGH_DATA = None

log = logging.getLogger(__name__)

Command = Sequence[Any]


class Pinned:
    """A connection held by one task; `run` is its only way to talk."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.watching = False  # a WATCH is pending: UNWATCH before the connection goes back
        self.in_flight = False  # replies not read yet: the connection cannot be reused

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send `commands` in one write and return their replies in order; an error
        reply is returned in place, as its exception (so that every reply is read)."""
        connection = self._connection
        if self.watching and not connection.is_connected:
            # redis-py would connect again, silently: the new connection watches nothing.
            raise ConnectionError("the connection closed while watching; read again")
        watching = self.watching
        for command in commands:
            name = str(command[0]).upper()
            if name == "WATCH":
                watching = True
            elif name in _ENDING_WATCHES:
                watching = False
        # Packed by hiredis, in C, one buffer per command: redis-py's pack_commands
        # (through the connection's pack_command, service/store/client.py) costs several
        # times as much per command in Python.
        packed = [pack_command(c if type(c) is tuple else tuple(c)) for c in commands]
        if not connection.is_connected:
            await connection.connect()
        self.in_flight = True
        # One deadline for the whole round trip: redis-py's own, per reply, schedules and
        # cancels a timer for each of the hundred-odd replies of a step (and its write
        # runs in a task of its own, to time it).
        limit = connection.socket_timeout
        try:
            async with asyncio.timeout(limit):
                writer = connection._writer
                writer.writelines(packed)
                await writer.drain()
                replies = await _read_replies(connection, len(commands))
        except TimeoutError:
            raise RedisTimeoutError(f"no reply from Redis within {limit} s") from None
        except OSError as exc:  # a reset or broken socket, as redis-py names it
            raise RedisConnectionError(f"Error while talking to Redis: {exc!r}") from exc
        self.in_flight = False
        self.watching = watching
        return replies


def hiredis_reader(connection: Any) -> tuple[Any, Any] | None:
    """The connection's hiredis reader's `gets` and its parser's `read_from_socket`, or
    None when this redis-py does not read through them (then `read_response` serves)."""
    parser = getattr(connection, "_parser", None)
    reader = getattr(parser, "_reader", None)
    fill = getattr(parser, "read_from_socket", None)
    if NOT_ENOUGH_DATA is None or reader is None or fill is None:
        return None
    return reader.gets, fill


async def _read_replies(connection: Any, count: int) -> list[Any]:
    """`count` replies, error replies in place as their exceptions.

    Straight from hiredis's reader, as redis-py's parser feeds it: redis-py's
    `read_response` around each reply (its checks, its error handling) cost 2.5 us of
    the worker's time per reply, a step's fixed cost when a step is small."""
    fast = hiredis_reader(connection)
    replies: list[Any] = []
    if fast is None:
        for _ in range(count):
            try:
                replies.append(await connection.read_response(timeout=math.inf))
            except ResponseError as error:
                replies.append(error)
        return replies
    gets, fill = fast
    while len(replies) < count:
        reply = gets()
        if reply is not NOT_ENOUGH_DATA:
            replies.append(reply)
        else:
            await fill()  # (a reset socket's OSError is named by `Pinned.run`)
    return replies


# What ends every WATCH of a connection, whatever its outcome.
_ENDING_WATCHES = frozenset({"EXEC", "DISCARD", "UNWATCH"})
# Failures after which a cluster client's slot map may be wrong: a primary gone, a
# failover, slots not served. redis-py's own command path reloads it on the same.
_STALE_SLOT_MAP = (RedisConnectionError, RedisTimeoutError, ClusterDownError, SlotNotCoveredError)


@asynccontextmanager
async def pinned(redis: Any, key: str) -> AsyncIterator[Pinned]:
    """A connection to the node holding `key`, for this block only. Left with a WATCH
    pending, it is sent UNWATCH; left with replies unread (an error, a cancellation),
    it is closed rather than given back."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        node = redis.get_node_from_key(key)
        if node is None:  # (only a replica is ever None)
            raise RedisClusterException(f"no node holds the slot of {key!r}")
        connection = node.acquire_connection()
    else:
        node = None
        connection = await redis.connection_pool.get_connection()
    held = Pinned(connection)
    try:
        yield held
        if held.watching:
            await held.run([("UNWATCH",)])
    except MovedError as moved:
        if node is not None:
            await redis.nodes_manager.move_slot(moved)
        raise
    except _STALE_SLOT_MAP:
        if node is not None:
            await _reload_slot_map(redis)
        raise
    finally:
        try:
            if held.in_flight or held.watching:
                await connection.disconnect(nowait=True)
        finally:
            if node is not None:
                node.release(connection)
            else:
                await redis.connection_pool.release(connection)


async def _reload_slot_map(cluster: Any) -> None:
    try:
        await cluster.nodes_manager.initialize()
    except Exception as exc:  # the cluster is still away: the next step tries again
        log.debug("reloading the cluster's slot map failed: %r", exc)


def raise_first_error(replies: Sequence[Any]) -> None:
    """Raise the first error reply of a round trip (a transaction refused at queueing
    names the command that failed; EXECABORT says only that one did)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
