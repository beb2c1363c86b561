"""The Redis requirements check, and check-config's report of it, against the real Redis.

On the shared Redis an evicting policy is set for the shortest possible time and always
restored: other tests use this Redis too (with maxmemory 0 nothing is evicted meanwhile).
The worker's refusal is shown on a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from service.config import Settings
from service.errors import RedisRequirementError
from service.operations import check_config
from service.store.client import connect
from service.store.requirements import (
    NOT_VERIFIED,
    check_redis_requirements,
    describe_persistence,
    read_node_configs,
)
from service.topics import ensure_topics
from tests.conftest import ROOT, isolated_env, settings_from
from tests.e2e.worker import free_port

pytestmark = pytest.mark.integration


@asynccontextmanager
async def eviction_policy(redis: Any, policy: str) -> AsyncIterator[None]:
    before = (await redis.config_get("maxmemory-policy"))["maxmemory-policy"]
    await redis.config_set("maxmemory-policy", policy)
    try:
        yield
    finally:
        await redis.config_set("maxmemory-policy", before)


async def test_the_local_redis_meets_the_requirements(settings: Settings, redis: Any) -> None:
    report = await check_redis_requirements(redis, settings)
    assert report.eviction_policy == "noeviction"
    assert not report.refused and report.verified
    [config] = await read_node_configs(redis) or []
    assert report.persistence == describe_persistence(config) != "unknown"


async def test_an_evicting_policy_is_refused_unless_allowed(settings: Settings, redis: Any) -> None:
    allowing = settings.model_copy(update={"redis_allow_eviction": True})
    async with eviction_policy(redis, "allkeys-lru"):
        refused = await check_redis_requirements(redis, settings)
        allowed = await check_redis_requirements(redis, allowing)
    assert (await redis.config_get("maxmemory-policy"))["maxmemory-policy"] == "noeviction"

    assert refused.refused and refused.eviction_policy == "allkeys-lru"
    with pytest.raises(RedisRequirementError, match="MEDIA_REDIS_ALLOW_EVICTION"):
        refused.raise_if_refused()
    assert not allowed.refused
    assert any(w.startswith("EVICTION ALLOWED") for w in allowed.warnings)


async def limited_report(settings: Settings, redis: Any, rule: list[str]) -> Any:
    """check_redis_requirements as a user with `rule` (ACL SETUSER words)."""
    user, password = f"media-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.execute_command("ACL", "SETUSER", user, "reset", *rule, f">{password}")
    try:
        limited = connect(
            settings.model_copy(
                update={"redis_username": user, "redis_password": SecretStr(password)}
            )
        )
        try:
            assert await limited.ping()
            return await check_redis_requirements(limited, settings)
        finally:
            await limited.aclose()
    finally:
        await redis.acl_deluser(user)


async def test_the_service_acl_rule_still_verifies_the_eviction_policy(
    settings: Settings, redis: Any
) -> None:
    """The documented rule has no CONFIG: the policy and AOF come from INFO."""
    source = (ROOT / "deploy" / "redis" / "service.acl").read_text()
    rule = [w for line in source.splitlines() for w in line.split("#", 1)[0].split()]
    report = await limited_report(settings, redis, rule)
    assert report.verified and not report.refused, report
    assert report.eviction_policy == "noeviction"
    assert report.persistence == "AOF (fsync policy not readable without CONFIG)"


async def test_without_config_and_info_it_cannot_verify_and_does_not_refuse(
    settings: Settings, redis: Any
) -> None:
    report = await limited_report(settings, redis, ["on", "~*", "+@all", "-@admin", "-info"])
    assert not report.refused and not report.verified
    assert report.warnings == [NOT_VERIFIED]


async def test_check_config_prints_the_policy_persistence_and_verdict(
    settings: Settings, redis: Any
) -> None:
    await ensure_topics(settings)
    lines: list[str] = []
    assert await check_config(settings, lines.append)
    assert "redis: eviction policy noeviction" in lines
    assert any(line.startswith("redis: persistence ") for line in lines)
    assert any(line.startswith("redis: requirements OK") for line in lines)

    lines = []
    async with eviction_policy(redis, "volatile-lru"):
        ok = await check_config(settings, lines.append)
    assert not ok
    assert "redis: eviction policy volatile-lru" in lines
    assert "redis: requirements REFUSED" in lines
    assert any(
        line.startswith("redis: REFUSED: maxmemory-policy is volatile-lru") for line in lines
    )
    assert lines[-1] == "configuration has problems (see above)"


async def test_a_worker_refuses_to_start_on_an_evicting_redis(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """On its own redis-server (not the shared one), with allkeys-lru and no persistence."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
        "--dir",
        str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = isolated_env(stack, redis_url=f"redis://127.0.0.1:{port}/0")
        probe = connect(settings_from(env))
        try:
            await eventually_answers(probe)
        finally:
            await probe.aclose()
        worker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
    assert worker.returncode == 2, worker.stderr
    assert "Redis does not meet the service's requirements" in worker.stderr
    assert "maxmemory-policy is allkeys-lru" in worker.stderr
    assert "MEDIA_REDIS_ALLOW_EVICTION=true" in worker.stderr
    assert "no persistence" in worker.stderr  # the warning was logged first


async def eventually_answers(redis: Any, seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            await redis.ping()
            return
        except RedisConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
