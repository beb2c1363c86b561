"""Infrastructure faults mid-stream: every sum exact, every registration present, workers alive.

Each test runs real workers against the local stack, produces a steady mixed stream
(tests/e2e/workload.py) and breaks something in the middle of it: Redis killed and
restarted (it loses its last second of writes under `appendfsync everysec`), a worker
frozen past its session timeout and woken again, the Kafka broker killed and restarted;
and Redis and Kafka killed under an API server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from service.domain.events import DeadLetter
from service.store.client import connect
from service.streaming.kafka_client import client_options
from tests.conftest import ROOT, STACK_ENV, isolated_env, read_topic, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.test_refresher_e2e import ctr_top, perf, register, send
from tests.e2e.worker import Worker, eventually, free_port
from tests.e2e.workload import Truth, Workload
from tests.unit.factories import manual_suggestion_body

pytestmark = pytest.mark.e2e

STACK = ROOT / "deploy" / "stack.sh"


async def stack_sh(*args: str) -> None:
    """`deploy/stack.sh ARGS`, failing the test with its output when it fails."""
    done = await asyncio.to_thread(
        subprocess.run, [str(STACK), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"stack.sh {' '.join(args)}: {done.stdout}{done.stderr}"


def needs_local_stack() -> None:
    """The stack is the one deploy/stack.sh runs here (its pid files), not a remote one."""
    if not any(STACK_ENV.parent.glob("redis*.pid")):
        pytest.fail(
            "this test kills or changes the local stack's servers: run it under `make test`"
        )


def fault_env(stack_settings: dict[str, str]) -> dict[str, str]:
    return isolated_env(
        stack_settings,
        web_port=free_port(),
        kafka_session_timeout_seconds=6,
        kafka_heartbeat_interval_seconds=1,
        kafka_commit_interval_seconds=0.5,
        redis_retry_max_seconds=1,
    )


@asynccontextmanager
async def workers(env: dict[str, str], tmp_path: Path, count: int) -> AsyncIterator[list[Worker]]:
    """`count` running workers of one group; every one is stopped at the end, pass or fail."""
    started = [
        Worker({**env, "MEDIA_WEB_PORT": str(free_port())}, tmp_path / f"worker-{n}.log")
        for n in range(count)
    ]
    try:
        for worker in started:
            worker.start()
        for worker in started:
            await worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()  # also a frozen one


def assert_alive(group: list[Worker]) -> None:
    for worker in group:
        assert worker.process is not None and worker.process.poll() is None, worker.log()


async def healthy(group: list[Worker]) -> bool:
    for worker in group:
        status, _ = await worker.get("/healthz")
        if status != 200:
            return False
    return True


async def run_with_fault(
    stack_settings: dict[str, str],
    tmp_path: Path,
    *,
    workload: Workload,
    rate: float,
    count: int,
    fault: Callable[[list[Worker], Truth], Any],
) -> tuple[list[Worker], Truth]:
    needs_local_stack()
    env = fault_env(stack_settings)
    settings = settings_from(env)
    redis = connect(settings)
    truth = Truth(redis, settings)
    try:
        async with workers(env, tmp_path, count) as group:
            producing = asyncio.create_task(workload.produce(settings, per_second=rate))
            try:
                await eventually(truth.applied, seconds=120, every=0.1)
                await fault(group, truth)
                await producing
            finally:
                producing.cancel()

            async def complete() -> bool:
                try:
                    return await truth.complete(workload)
                except Exception:  # Redis may still be loading
                    return False

            await eventually(complete, seconds=180, every=0.5)
            await asyncio.sleep(2)  # anything counted twice would show now
            assert await truth.differences(workload) == []
            assert_alive(group)
            await eventually(lambda: healthy(group), seconds=30)
            for worker in group:
                assert worker.stop() == 0, worker.log()
            return group, truth
    finally:
        await redis.aclose()


async def test_redis_killed_and_restarted_mid_stream(stack: dict[str, str], tmp_path: Path) -> None:
    workload = Workload(registrations=1_500, events=45_000, seed=11)

    async def kill_redis(group: list[Worker], truth: Truth) -> None:
        await asyncio.sleep(1.5)
        await stack_sh("kill", "redis")
        await asyncio.sleep(3)
        status, body = await group[0].get("/readyz")
        assert status == 503, body
        await stack_sh("start", "redis")

    group, _ = await run_with_fault(
        stack, tmp_path, workload=workload, rate=6_000, count=2, fault=kill_redis
    )
    logs = "".join(w.log_path.read_text(errors="replace") for w in group)
    assert "paused, retrying" in logs, "Redis must have gone away while the workers were busy"


async def test_redis_restored_without_its_last_writes(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """As after a crash of the machine, a failover to a lagging replica or a restore: Redis
    comes back without its last seconds of acknowledged writes, positions included."""
    workload = Workload(registrations=1_500, events=45_000, seed=15)
    aof = ROOT / ".stack" / "redis" / "appendonlydir"
    copy = tmp_path / "appendonlydir"

    async def roll_back(group: list[Worker], truth: Truth) -> None:
        redis = connect(truth.settings)
        try:
            await redis.config_set("auto-aof-rewrite-percentage", 0)  # keep the files as they are
        finally:
            await redis.aclose()
        await asyncio.sleep(1.0)
        shutil.copytree(aof, copy)  # a prefix of the append-only file: Redis as it was now
        await asyncio.sleep(2.5)
        await stack_sh("kill", "redis")
        shutil.rmtree(aof)
        shutil.copytree(copy, aof)
        await stack_sh("start", "redis")

    group, _ = await run_with_fault(
        stack, tmp_path, workload=workload, rate=6_000, count=2, fault=roll_back
    )
    logs = "".join(w.log_path.read_text(errors="replace") for w in group)
    assert "lost writes" in logs, "the workers must have noticed and gone back"


async def test_redis_out_of_memory_then_read_only_mid_stream(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """Redis refuses writes (OOM under `noeviction`, then READONLY as a replica during a
    failover) while the workers are busy: the partitions wait, then every sum is exact."""
    workload = Workload(registrations=1_000, events=30_000, seed=17)

    async def refuse_writes(group: list[Worker], truth: Truth) -> None:
        redis = connect(truth.settings)
        try:
            await asyncio.sleep(1.0)
            await redis.config_set("maxmemory", 1)  # every write: OOM command not allowed
            try:
                await asyncio.sleep(2.5)
            finally:
                await redis.config_set("maxmemory", 0)
            await asyncio.sleep(1.0)
            await redis.execute_command(
                "REPLICAOF", "127.0.0.1", "1"
            )  # a primary that is not there
            try:
                await asyncio.sleep(2.5)
            finally:
                await redis.execute_command("REPLICAOF", "NO", "ONE")
        finally:
            await redis.aclose()

    group, _ = await run_with_fault(
        stack, tmp_path, workload=workload, rate=5_000, count=2, fault=refuse_writes
    )
    logs = "".join(w.log_path.read_text(errors="replace") for w in group)
    assert "paused, retrying in" in logs and "OutOfMemoryError" in logs, (
        "writes must have been refused for memory"
    )
    assert "ReadOnlyError" in logs, "writes must have been refused as a replica"


async def test_a_frozen_worker_woken_after_losing_its_partitions_changes_nothing(
    stack: dict[str, str], tmp_path: Path
) -> None:
    workload = Workload(registrations=1_000, events=40_000, seed=12)

    async def freeze(group: list[Worker], truth: Truth) -> None:
        frozen = group[0]
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            # Past the 6 s session timeout: the other worker takes every partition over.
            before = await truth.applied()
            await eventually(lambda: _grew(truth, before + 2_000), seconds=60, every=0.5)
        finally:
            frozen.process.send_signal(signal.SIGCONT)

    await run_with_fault(stack, tmp_path, workload=workload, rate=4_000, count=2, fault=freeze)


async def _grew(truth: Truth, at_least: int) -> bool:
    return await truth.applied() >= at_least


async def test_kafka_killed_and_restarted_mid_stream(stack: dict[str, str], tmp_path: Path) -> None:
    needs_local_stack()
    env = fault_env(stack)
    settings = settings_from(env)
    # Produced before and after the broker's restart: a producer that is cut off mid-send
    # cannot tell what was written, and the truth must not depend on it.
    before = Workload(registrations=800, events=40_000, seed=13, library="lib")
    after = Workload(registrations=200, events=5_000, seed=14, library="lib2")
    redis = connect(settings)
    truth = Truth(redis, settings)
    try:
        async with workers(env, tmp_path, 2) as group:
            await before.produce(settings, per_second=50_000)
            await eventually(truth.applied, seconds=120, every=0.05)
            assert await truth.applied() < before.events, "the backlog must be mid-way"
            await stack_sh("kill", "kafka")

            async def not_ready() -> bool:
                status, body = await group[0].get("/readyz")
                return status == 503 and "Kafka" in body["detail"]

            await eventually(not_ready, seconds=20, every=0.2)
            await stack_sh("start", "kafka")
            await after.produce(settings, per_second=20_000)

            async def complete() -> bool:
                if await truth.registered(after) < after.registrations:
                    return False
                return await truth.applied() >= before.events + after.events

            await eventually(complete, seconds=240, every=0.5)
            await asyncio.sleep(2)
            problems = await truth.differences(before)
            assert [p for p in problems if not p.startswith("applied")] == []
            assert [p for p in await truth.differences(after) if not p.startswith("applied")] == []
            assert await truth.applied() == before.events + after.events
            assert_alive(group)
            await eventually(lambda: healthy(group), seconds=60)
            for worker in group:
                assert worker.stop() == 0, worker.log()
    finally:
        await redis.aclose()


async def test_a_dead_letter_the_topic_refuses_holds_its_partition_until_it_is_taken(
    stack: dict[str, str], tmp_path: Path
) -> None:
    env = fault_env(stack)
    settings = settings_from(env)
    admin = AIOKafkaAdminClient(**client_options(settings))

    async def dead_letter_limit(max_bytes: int) -> None:
        resource = ConfigResource(
            ConfigResourceType.TOPIC,
            settings.topic_dead_letter,
            configs={"max.message.bytes": str(max_bytes)},
        )
        await admin.alter_configs([resource])

    await admin.start()
    redis = connect(settings)
    truth = Truth(redis, settings)
    after = Workload(registrations=5, events=0, seed=16)
    try:
        async with workers(env, tmp_path, 1) as (worker,):
            await dead_letter_limit(200)  # every dead letter is larger: the broker refuses it
            producer = AIOKafkaProducer(**client_options(settings))
            await producer.start()
            try:
                await producer.send_and_wait(
                    settings.topic_asset_registered, b"not json", key=b"w16-0", partition=0
                )
                for _, key, value in after.records:  # behind it, on the same partition
                    await producer.send_and_wait(
                        settings.topic_asset_registered, value, key=key.encode(), partition=0
                    )
            finally:
                await producer.stop()

            async def paused() -> bool:
                status, body = await worker.get("/readyz")
                return status == 503 and "paused" in body["detail"]

            await eventually(paused, seconds=30, every=0.2)
            await asyncio.sleep(2)
            assert await truth.registered(after) == 0, "nothing behind the refused record moves"
            await dead_letter_limit(1_048_576)
            await eventually(lambda: _registered_all(truth, after), seconds=30)
            letters = await read_topic(settings, settings.topic_dead_letter, 1)
            assert [(d.source_partition, d.source_offset) for d in map(_letter, letters)] == [
                (0, 0)
            ]
            assert (await worker.get("/readyz"))[0] == 200
            assert worker.stop() == 0, worker.log()
    finally:
        await admin.close()
        await redis.aclose()


async def _registered_all(truth: Truth, workload: Workload) -> bool:
    return await truth.registered(workload) == workload.registrations


def _letter(record: Any) -> DeadLetter:
    return DeadLetter.model_validate_json(record.value)


API_TOKEN = "e2e-faults-api-token-0123456789abcdefghij"


async def post_manual_suggestion(
    server: Worker, asset_id: str, suggestion_id: str
) -> tuple[int, Any]:
    """POST a manual suggestion to an API server: the status and body it answers with."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/v1/assets/{asset_id}/suggestions",
        data=json.dumps(manual_suggestion_body(suggestion_id)).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )

    def post() -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    return await asyncio.to_thread(post)


async def test_an_api_server_waits_out_redis_and_kafka(stack: dict[str, str], spawn: Spawn) -> None:
    """While Redis is away an API server answers 503 and is not ready, while Kafka is away
    it refuses manual suggestions with 503 and stays ready; each comes back by itself."""
    needs_local_stack()
    env = isolated_env(
        stack,
        web_port=free_port(),
        api_token=API_TOKEN,
        redis_retry_max_seconds=1,
        kafka_producer_timeout_seconds=3,
    )
    settings = settings_from(env)
    worker = spawn(env)
    server = spawn({**env, "MEDIA_WEB_PORT": str(free_port())}, name="api", command="api")
    await worker.wait_ready()
    await server.wait_ready()
    await register(settings, "a1")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}

    async def answers(path: str, status: int) -> bool:
        return (await server.get(path, auth))[0] == status

    await eventually(lambda: answers("/v1/assets/a1", 200))
    assert worker.stop() == 0  # the API server alone from here

    await stack_sh("kill", "redis")
    try:
        status, problem = await server.get("/v1/assets/a1", auth)
        assert status == 503 and "retry" in problem["detail"], problem
        status, ready = await server.get("/readyz")
        assert status == 503 and "Redis" in ready["detail"], ready
        assert (await server.get("/healthz"))[0] == 200, "alive: nothing to restart"
    finally:
        await stack_sh("start", "redis")
    await eventually(lambda: answers("/readyz", 200), seconds=30)
    assert await answers("/v1/assets/a1", 200)

    await stack_sh("kill", "kafka")
    try:
        status, problem = await post_manual_suggestion(server, "a1", "manual-while-away")
        assert status == 503 and "retry" in problem["detail"], problem
        assert await answers("/readyz", 200), "reads need Redis only"
        assert await answers("/v1/assets/a1", 200)
    finally:
        await stack_sh("start", "kafka")

    async def accepted() -> Any:
        status, created = await post_manual_suggestion(server, "a1", "manual-after")
        return status == 201 and created

    created = await eventually(accepted, seconds=60, every=1)
    # A send that timed out while the broker was coming back may have been written all
    # the same: the retry (same `event_id`) publishes the same suggestion again.
    published = [
        json.loads(r.value)
        for r in await read_topic(settings, settings.topic_optimization_suggestions, 1)
    ]
    assert {(p["suggestion_id"], p["origin"]) for p in published} == {
        (created["suggestion_id"], "manual")
    }
    assert server.stop(signal.SIGTERM) == 0, server.log()


async def test_a_refresher_waits_out_redis(stack: dict[str, str], spawn: Spawn) -> None:
    """Redis killed under `service refresher` (the only process refreshing the boards): it
    postpones its runs while Redis is away, stays up, and the boards catch up after."""
    needs_local_stack()
    env = isolated_env(
        stack,
        web_port=free_port(),
        leaderboard_refresh_seconds=0.5,
        leaderboard_refresh_in_worker="false",
        redis_retry_max_seconds=1,
    )
    settings = settings_from(env)
    worker = spawn(env)
    refresher = spawn(env, name="refresher", command="refresher")
    await worker.wait_ready()
    await register(settings, "a1", "a2")
    await send(
        settings,
        settings.topic_asset_performance,
        [perf("p1", "a1", 1000, 50), perf("p2", "a2", 1000, 20)],
    )

    async def top(expected: list[tuple[str, float]]) -> bool:
        try:
            status, items = await ctr_top(worker)
        except OSError:
            return False
        return status == 200 and items == expected

    await eventually(lambda: top([("a1", 0.05), ("a2", 0.02)]))

    await stack_sh("kill", "redis")
    try:
        await send(settings, settings.topic_asset_performance, [perf("p3", "a2", 1000, 130)])

        async def postponed() -> bool:
            return "board refresh postponed" in refresher.log_path.read_text(errors="replace")

        await eventually(postponed, seconds=30)
    finally:
        await stack_sh("start", "redis")
    await eventually(lambda: top([("a2", 0.075), ("a1", 0.05)]), seconds=60)
    assert refresher.process is not None and refresher.process.poll() is None, refresher.log()

    async def resumed() -> bool:
        # A run logs what it recomputed once it returns, a moment after its board writes.
        log = refresher.log_path.read_text(errors="replace")
        return log.rfind("assets recomputed") > log.find("board refresh postponed")

    await eventually(resumed, seconds=10)
    assert refresher.stop(signal.SIGTERM) == 0, refresher.log()
    assert worker.stop() == 0, worker.log()
