"""Shared fixtures: the real Kafka and Redis of the local stack, and isolated settings.

Integration and end-to-end tests never skip: when Kafka or Redis cannot be
reached they fail and say how to start them. Each test gets its own topic names,
consumer group and Redis key prefix, so tests never see each other's data.

The stack is the plain one, or with MEDIA_STACK_SECURITY=tls the secure one (SASL_SSL
Kafka, TLS Redis with the service's ACL user): its settings come from the environment
or its env file, every connection setting included, and reach every client and worker
the tests start. Key prefixes start with `media:` so that the service's ACL rule, which
allows `~media:*`, covers them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from service.config import SECURITY_OPTIONAL_FIELDS, Settings, variable
from service.runtime import Runtime
from service.store.client import connect
from service.streaming.kafka_client import client_options
from service.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
SECURE = os.environ.get("MEDIA_STACK_SECURITY", "plain") == "tls"
CLUSTER = os.environ.get("MEDIA_STACK_REDIS", "single") == "cluster"
VARIANT = {
    (False, False): "plain",
    (True, False): "tls",
    (False, True): "cluster",
    (True, True): "tls-cluster",
}[SECURE, CLUSTER]
STACK_ENV = ROOT / ".stack" / ("env" if VARIANT == "plain" else f"{VARIANT}/env")
HOW_TO_START = (
    "start the local stack with `make stack-up` (or run `make test`)"
    if VARIANT == "plain"
    else f"start the local stack with `MEDIA_STACK_SECURITY={'tls' if SECURE else 'plain'} "
    f"MEDIA_STACK_REDIS={'cluster' if CLUSTER else 'single'} make stack-up`"
)
# The settings that say how to connect: passed to every worker a test starts.
CONNECTION_VARIABLES = (
    "MEDIA_KAFKA_BOOTSTRAP_SERVERS",
    "MEDIA_REDIS_URL",
    "MEDIA_REDIS_CLUSTER",
    variable("kafka_security_protocol"),
    variable("kafka_ssl_check_hostname"),
    variable("redis_ssl_check_hostname"),
    *(variable(field) for field in SECURITY_OPTIONAL_FIELDS),
)


def _env_file() -> dict[str, str]:
    """The `export NAME=value` lines of the stack's env file (none when it is missing)."""
    values: dict[str, str] = {}
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                values[name] = value.strip().strip("'\"")
    return values


def _stack_env() -> dict[str, str]:
    """Connection settings from the environment, else from the stack's env file."""
    values = _env_file()
    for name in CONNECTION_VARIABLES:
        if name in os.environ:
            values[name] = os.environ[name]
    return {name: values[name] for name in CONNECTION_VARIABLES if values.get(name)}


STACK = _stack_env()
KAFKA = STACK.get("MEDIA_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
REDIS_URL = STACK.get("MEDIA_REDIS_URL", "redis://127.0.0.1:16379/0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Which tests a stack variant runs; the others are deselected (reported as such), not
    skipped: `make test` runs every variant.

    - plain: every test but the `secure_only` and `cluster_only` ones;
    - tls: the tests marked `secure` or `secure_only`;
    - cluster (a Redis Cluster): the tests marked `cluster` or `cluster_only`;
    - tls-cluster: the tests marked both `secure` and `cluster`.
    """

    def wanted(item: pytest.Item) -> bool:
        marks = {mark.name for mark in item.iter_markers()}
        if VARIANT == "tls":
            return bool(marks & {"secure", "secure_only"})
        if VARIANT == "cluster":
            return bool(marks & {"cluster", "cluster_only"})
        if VARIANT == "tls-cluster":
            return {"secure", "cluster"} <= marks
        return not marks & {"secure_only", "cluster_only"}

    selected = [item for item in items if wanted(item)]
    deselected = [item for item in items if not wanted(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


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
    return _stack_env()


def _stack_env() -> dict[str, str]:
    return {
        **STACK,
        "MEDIA_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "MEDIA_REDIS_URL": REDIS_URL,
        "kafka": KAFKA,
        "redis_url": REDIS_URL,
    }


# The runs `isolated_env` handed out in this session. Their topics are deleted when the
# session ends: a local stack that kept every test's topics ran out of broker memory
# after a few dozen full runs.
_RUNS: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _topics_deleted_at_the_end() -> Iterator[None]:
    yield
    if _RUNS:
        asyncio.run(_delete_topics_of(set(_RUNS)))


async def _delete_topics_of(runs: set[str]) -> None:
    """Delete the topics of `runs` (`<run>.<name>`, and Faust's `<run>-...`). Never fails
    the session: a broker already gone only leaves them behind."""
    settings = settings_from(isolated_env(_stack_env()))
    admin = AIOKafkaAdminClient(
        **client_options(settings), client_id="tests-cleanup", request_timeout_ms=30_000
    )
    try:
        await admin.start()
        names = [
            name
            for name in await admin.list_topics()
            if name.split(".", 1)[0].split("-", 1)[0] in runs
        ]
        for at in range(0, len(names), 100):
            await admin.delete_topics(names[at : at + 100])
    except Exception as exc:
        print(f"\nthe tests' topics were not all deleted: {exc!r}")
    finally:
        await admin.close()


def isolated_env(stack: dict[str, str], **extra: Any) -> dict[str, str]:
    """MEDIA_* variables for one test: its own topics, consumer group and key prefix, and
    the stack's connection settings."""
    run = f"t{uuid.uuid4().hex[:10]}"
    _RUNS.add(run)
    env = {
        **{name: value for name, value in stack.items() if name.startswith("MEDIA_")},
        "MEDIA_APP_ID": run,
        "MEDIA_REDIS_KEY_PREFIX": f"media:{run}",
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
    await client.aclose()
    await delete_keys(settings)


async def delete_keys(settings: Settings) -> None:
    """Remove a test's keys. The service's ACL user may not SCAN (it never needs to):
    on the secure stack the stack's admin user does it."""
    cleaner = connect(admin_settings(settings))
    try:
        keys = [k async for k in cleaner.scan_iter(match=f"{settings.redis_key_prefix}:*")]
        if keys:
            await cleaner.delete(*keys)
    finally:
        await cleaner.aclose()


def admin_settings(settings: Settings) -> Settings:
    """The same Redis as the stack's admin user (on the plain stack: unchanged)."""
    name = "MEDIA_STACK_REDIS_ADMIN_PASSWORD"
    password = os.environ.get(name) or _env_file().get(name)
    if not password:
        return settings
    return settings.model_copy(
        update={"redis_username": "admin", "redis_password": SecretStr(password)}
    )


class KafkaPort:
    """The handlers' producer port on a plain aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value, key=key)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[KafkaPort]:
    client = AIOKafkaProducer(**client_options(settings), acks="all")
    await client.start()
    yield KafkaPort(client)
    await client.stop()


async def read_topic(
    settings: Settings, topic: str, expected: int, wait_seconds: float = 30.0
) -> list[Any]:
    """Every record of a topic, waiting up to `wait_seconds` for `expected` of them."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
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
