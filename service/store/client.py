"""Builds the Redis client from settings: a single server or a Redis Cluster."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from service.config import Settings

# Opening a TCP connection (and the TLS handshake) never takes longer than this on a
# healthy network; a longer socket timeout would only delay noticing an unreachable Redis.
CONNECT_TIMEOUT_SECONDS = 5.0


def connect(settings: Settings) -> Any:
    """A lazily connecting client; the first command opens the connection.

    Every command waits at most `redis_socket_timeout_seconds` for its reply, so a Redis
    that stops answering (a frozen process, a dropped network path) raises a TimeoutError,
    which the handlers treat as transient, instead of hanging a partition forever.
    """
    url = settings.redis_url.get_secret_value()
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    reply_timeout = settings.redis_socket_timeout_seconds
    connect_timeout = min(CONNECT_TIMEOUT_SECONDS, reply_timeout)
    if settings.redis_cluster:
        return RedisCluster.from_url(
            url,
            decode_responses=True,
            retry=retry,
            socket_timeout=reply_timeout,
            socket_connect_timeout=connect_timeout,
        )
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=retry,
        health_check_interval=30,
        socket_timeout=reply_timeout,
        socket_connect_timeout=connect_timeout,
        socket_keepalive=True,
    )
