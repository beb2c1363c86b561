"""Shared fixtures: the real Kafka and Redis of the local stack, and isolated settings.

Integration and end-to-end tests never skip: when Kafka or Redis cannot be
reached they fail and say how to start them. Each test gets its own topic names,
consumer group and Redis key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.config import Settings
from service.runtime import Runtime
from service.store.client import connect
from service.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
STACK_ENV = ROOT / ".stack" / "env"
HOW_TO_START = "start the local stack with `make stack-up` (or run `make test`)"


def _stack_env() -> dict[str, str]:
    """Settings from the environment, falling back on `.stack/env` written by `make stack-up`."""
    values: dict[str, str] = {}
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                values[name] = value.strip().strip("'\"")
    for name in ("MEDIA_KAFKA_BOOTSTRAP_SERVERS", "MEDIA_REDIS_URL"):
        if name in os.environ:
            values[name] = os.environ[name]
    return values


STACK = _stack_env()
KAFKA = STACK.get("MEDIA_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
REDIS_URL = STACK.get("MEDIA_REDIS_URL", "redis://127.0.0.1:16379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Fails (never skips) when the local Kafka or Redis is not answering."""
    kafka_host, _, kafka_port = KAFKA.split(",")[0].rpartition(":")
    if not _reachable(kafka_host, int(kafka_port)):
        pytest.fail(f"Kafka is not reachable at {KAFKA}: {HOW_TO_START}", pytrace=False)
    redis = urlparse(REDIS_URL)
    if not _reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {HOW_TO_START}", pytrace=False)
    return {"kafka": KAFKA, "redis_url": REDIS_URL}


def isolated_env(stack: dict[str, str], **extra: Any) -> dict[str, str]:
    """MEDIA_* variables for one test: its own topics, consumer group and key prefix."""
    run = f"t{uuid.uuid4().hex[:10]}"
    env = {
        "MEDIA_KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "MEDIA_REDIS_URL": stack["redis_url"],
        "MEDIA_APP_ID": run,
        "MEDIA_REDIS_KEY_PREFIX": run,
        "MEDIA_TOPIC_PARTITIONS": "4",
    }
    for field in Settings.model_fields:
        if (
            field.startswith("topic_")
            and field not in ("topic_partitions",)
            and (field != "topic_replication_factor")
        ):
            env[f"MEDIA_{field.upper()}"] = f"{run}.{field.removeprefix('topic_')}"
    env.update({f"MEDIA_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    fields = {k.removeprefix("MEDIA_").lower(): v for k, v in env.items()}
    return Settings.model_validate(fields)


@pytest.fixture
def settings(stack: dict[str, str]) -> Settings:
    return settings_from(isolated_env(stack))


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = connect(settings)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the stack fixture checked the port
        pytest.fail(f"Redis at {REDIS_URL} does not answer ({exc!r}): {HOW_TO_START}")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.redis_key_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class KafkaPort:
    """The handlers' producer port on a plain aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value, key=key)


@pytest.fixture
async def producer(stack: dict[str, str]) -> AsyncIterator[KafkaPort]:
    client = AIOKafkaProducer(bootstrap_servers=stack["kafka"], acks="all")
    await client.start()
    yield KafkaPort(client)
    await client.stop()


async def read_topic(
    bootstrap: str, topic: str, expected: int, wait_seconds: float = 30.0
) -> list[Any]:
    """Every record of a topic, waiting up to `wait_seconds` for `expected` of them."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
            if len(records) >= expected and not batches:
                break
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def runtime(settings: Settings, redis: Any, producer: KafkaPort) -> AsyncIterator[Runtime]:
    """Everything a worker builds (stores, handlers), on this test's topics and keys."""
    await ensure_topics(settings)
    built = Runtime.build(settings, producer)
    yield built
    await built.close()
