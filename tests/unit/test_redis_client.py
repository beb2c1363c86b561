"""The Redis client carries the configured timeouts and packs commands with hiredis (no
connection is opened here)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from service.config import Settings
from service.store.client import (
    CONNECT_TIMEOUT_SECONDS,
    HiredisConnection,
    connect,
)


def test_single_server_client_times_out_replies_and_connections() -> None:
    client = connect(Settings(_env_file=None, redis_socket_timeout_seconds=7.5))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 7.5
    assert kwargs["socket_connect_timeout"] == CONNECT_TIMEOUT_SECONDS
    assert kwargs["retry"].get_retries() == 3


def test_cluster_client_times_out_replies_and_connections() -> None:
    settings = Settings(_env_file=None, redis_cluster=True, redis_socket_timeout_seconds=2.0)
    client = connect(settings)
    assert client.connection_kwargs["socket_timeout"] == 2.0
    # never longer than the reply timeout itself
    assert client.connection_kwargs["socket_connect_timeout"] == 2.0
    assert client.retry.get_retries() == 3


def test_the_default_reply_timeout_leaves_room_for_script_calls() -> None:
    assert Settings(_env_file=None).redis_socket_timeout_seconds == 10.0


PACKED_ARGS = [
    ("EVALSHA", "0123abcd", 2, "P:{ps:0.1}:life", "k2", -1, 0, 10**15, "é€ and text"),
    ("CONFIG GET", "maxmemory-policy"),  # a command name of two words is sent as two
    ("SET", b"\x00\xffbinary", "x" * 7000),  # past redis-py's 6,000-byte buffer cut
    ("SMISMEMBER", "ids", *[bytes([n % 256]) * 12 for n in range(3000)]),
]


@pytest.mark.parametrize("args", PACKED_ARGS, ids=lambda a: str(a[0]))
def test_commands_are_packed_as_redis_py_packs_them(args: tuple[Any, ...]) -> None:
    ours = b"".join(HiredisConnection().pack_command(*args))
    assert ours == b"".join(Connection().pack_command(*args))


def test_a_value_redis_py_refuses_is_refused() -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "k", None)


def test_every_client_packs_with_hiredis() -> None:
    plain = connect(Settings(_env_file=None))
    assert plain.connection_pool.connection_class is HiredisConnection
    cluster = connect(Settings(_env_file=None, redis_cluster=True))
    manager = cluster.nodes_manager
    assert manager.connection_kwargs["connection_class"] is HiredisConnection
    assert {n.connection_class for n in manager.startup_nodes.values()} == {HiredisConnection}
    # A node the cluster reports later is built from the same options.
    discovered = ClusterNode("127.0.0.1", 7001, **manager.connection_kwargs)
    assert discovered.connection_class is HiredisConnection


def test_buffers_are_packed_as_bytes() -> None:
    args = ("SET", bytearray(b"key"), memoryview(b"value"))
    expected = b"".join(Connection().pack_command("SET", b"key", b"value"))
    assert b"".join(HiredisConnection().pack_command(*args)) == expected
