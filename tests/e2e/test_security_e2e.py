"""On the secure stack: the service's Redis user holds exactly the documented rule, a worker
leaks no credential anywhere, and wrong credentials stop a worker with what to fix.

The stack's passwords hold '@', ':' and '/' (deploy/stack.sh), so each check here is made
with the characters that break naive URL handling and log masking.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from service.store.client import connect
from service.streaming.kafka_client import client_options
from tests.conftest import ROOT, admin_settings, isolated_env, read_topic, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.test_registry_e2e import registered
from tests.e2e.worker import Worker, eventually, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.secure_only]

ACL_FILE = ROOT / "deploy" / "redis" / "service.acl"
SECRET_VARIABLES = (
    "MEDIA_KAFKA_SASL_PASSWORD",
    "MEDIA_KAFKA_SSL_KEY_PASSWORD",
    "MEDIA_REDIS_PASSWORD",
    "MEDIA_REDIS_SSL_KEY_PASSWORD",
)
API_TOKEN = "secure-stack-api-token-0123456789abcdef"
METRICS_TOKEN = "secure-stack-metrics-token-0123456789ab"


KEY = "media:probe"
SHA = "0" * 40
# A valid call of each command the rule may grant (ACL DRYRUN checks the arity too).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "ping": (),
    "select": ("0",),
    "info": ("memory",),
    "get": (KEY,),
    "hget": (KEY, "f"),
    "hgetall": (KEY,),
    "hmget": (KEY, "f"),
    "hkeys": (KEY,),
    "hexists": (KEY, "f"),
    "zrange": (KEY, "0", "1"),
    "zrevrange": (KEY, "0", "1"),
    "zrangebyscore": (KEY, "0", "1"),
    "zrangebylex": (KEY, "-", "+"),
    "zscore": (KEY, "m"),
    "zcard": (KEY,),
    "smembers": (KEY,),
    "srandmember": (KEY,),
    "hscan": (KEY, "0"),
    "set": (KEY, "v"),
    "del": (KEY,),
    "hset": (KEY, "f", "v"),
    "hdel": (KEY, "f"),
    "zadd": (KEY, "1", "m"),
    "zrem": (KEY, "m"),
    "sadd": (KEY, "m"),
    "srem": (KEY, "m"),
    "hincrby": (KEY, "f", "1"),
    "expire": (KEY, "10"),
    "expireat": (KEY, "10"),
    "smismember": (KEY, "m"),
    "exists": (KEY,),
    "spop": (KEY, "1"),
    "evalsha": (SHA, "1", KEY),
    "script|load": ("return 1",),
    "script|exists": (SHA,),
    "multi": (),
    "exec": (),
    "watch": (KEY,),
    "unwatch": (),
    "cluster|slots": (),
    "cluster|shards": (),
    "asking": (),
    "command": (),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rule_commands() -> list[str]:
    """The commands granted by deploy/redis/service.acl (`+name` items)."""
    text = " ".join(line.split("#", 1)[0] for line in ACL_FILE.read_text().splitlines())
    return [item[1:] for item in text.split() if item.startswith("+")]


def secrets_of(env: dict[str, str]) -> list[str]:
    """Every password in the env, and the forms a leak could take (URL-encoded, halves)."""
    found = []
    for name in SECRET_VARIABLES:
        value = env.get(name)
        assert value and "@" in value and ":" in value and "/" in value, (
            f"the secure stack's {name} should hold '@', ':' and '/'"
        )
        found += [value, urllib.parse.quote(value, safe=""), value.split("/", 1)[1]]
    return found


@pytest.fixture
def env(stack: dict[str, str]) -> dict[str, str]:
    return isolated_env(
        stack,
        web_port=free_port(),
        log_level="debug",  # the most a log can say
        api_token=API_TOKEN,
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture
async def kafka(env: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**client_options(settings_from(env)), acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def test_the_service_user_has_exactly_the_documented_rule(env: dict[str, str]) -> None:
    """ACL DRYRUN, as the stack's admin: every command of the rule runs on the service's
    keys, and nothing else does, nor on any other key."""
    settings = settings_from(env)
    admin = connect(admin_settings(settings))
    user = settings.redis_username
    try:

        async def dry_run(*command: str) -> str:
            return str(await admin.execute_command("ACL", "DRYRUN", user, *command))

        granted = rule_commands()
        assert "evalsha" in granted and "hincrby" in granted
        unknown = sorted(set(granted) - set(EXAMPLES))
        assert not unknown, f"give {unknown} an example call in EXAMPLES"
        for command in granted:
            answer = await dry_run(*command.split("|"), *EXAMPLES[command])
            assert answer == "OK", (command, answer)
        for refused in (
            ("flushall",),
            ("keys", "*"),
            ("scan", "0"),
            ("config", "get", "*"),
            ("eval", "return 1", "0"),
            ("hlen", KEY),
            ("script", "flush"),
        ):
            answer = await dry_run(*refused)
            assert "no permissions" in answer, (refused, answer)
        assert "no permissions to access" in await dry_run("get", "other:key")
        assert "no permissions to access" in await dry_run("get", "mediax:key")
    finally:
        await admin.aclose()


async def test_no_credential_leaks_anywhere(
    env: dict[str, str], spawn: Spawn, kafka: AIOKafkaProducer, tmp_path: Path
) -> None:
    settings = settings_from(env)
    secrets = secrets_of(env)
    worker: Worker = spawn(env)
    await worker.wait_ready()
    asset = registered("a1", "libA", "a" * 64, 1_000)
    await kafka.send_and_wait(settings.topic_asset_registered, asset, b"a1")
    # Dead letters carry reasons that name the failure: one that held a password would leak.
    await kafka.send_and_wait(settings.topic_asset_registered, b'{"event_id": ', b"x")

    async def known() -> bool:
        status, _ = await worker.get("/v1/assets/a1", bearer(API_TOKEN))
        return status == 200

    await eventually(known)
    letters = await read_topic(settings, settings.topic_dead_letter, 1, 30)
    assert letters, "the broken message was not dead-lettered"
    metrics = await worker.get_text("/metrics", bearer(METRICS_TOKEN))
    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "check-config"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "kafka: security SASL_SSL, SCRAM-SHA-512 as user" in check.stdout
    assert "redis: requirements OK" in check.stdout  # read from INFO: the rule has no CONFIG
    worker.stop()
    outputs = {
        "worker log": worker.log_path.read_text(errors="replace"),
        "check-config": check.stdout + check.stderr,
        "/metrics": metrics,
        "dead letters": "\n".join(repr(record.value) + repr(record.headers) for record in letters),
    }
    assert "sasl" in outputs["worker log"].lower() or "SASL" in outputs["worker log"]
    for where, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"a password appears in the {where}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"MEDIA_KAFKA_SASL_PASSWORD": "p@ss:w/wrong"},
            "Kafka refused the login of user 'media' with SCRAM-SHA-512",
        ),
        (
            {"MEDIA_REDIS_PASSWORD": "p@ss:w/wrong"},
            "Redis refused the login: check MEDIA_REDIS_USERNAME and MEDIA_REDIS_PASSWORD",
        ),
        (
            {"MEDIA_KAFKA_SSL_CAFILE": ""},
            "the broker's certificate is not trusted",
        ),
        (
            {
                "MEDIA_KAFKA_SSL_CERTFILE": "",
                "MEDIA_KAFKA_SSL_KEYFILE": "",
                "MEDIA_KAFKA_SSL_KEY_PASSWORD": "",
            },
            "the broker may require a client certificate",
        ),
    ],
    ids=["kafka-password", "redis-password", "kafka-ca", "kafka-client-certificate"],
)
async def test_wrong_credentials_stop_a_worker_with_what_to_fix(
    env: dict[str, str], change: dict[str, str], expected: str
) -> None:
    secrets = secrets_of(env)
    worker = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "worker"],
        cwd=ROOT,
        env={**os.environ, **env, **change},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 1, worker.stderr[-3000:]
    assert expected in worker.stderr, worker.stderr[-3000:]
    for secret in [*secrets, *change.values()]:
        if secret:
            assert secret not in worker.stdout + worker.stderr
