"""The Redis client carries the configured timeouts (no connection is opened here)."""

from __future__ import annotations

from service.config import Settings
from service.store.client import CONNECT_TIMEOUT_SECONDS, connect


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
