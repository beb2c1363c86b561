"""Builds the Redis client from settings: a single server or a Redis Cluster."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from service.config import Settings


def connect(settings: Settings) -> Any:
    """A lazily connecting client; the first command opens the connection."""
    url = settings.redis_url.get_secret_value()
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    if settings.redis_cluster:
        return RedisCluster.from_url(url, decode_responses=True, retry=retry)
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=retry,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )
