"""Slots of a Redis Cluster move while workers write: nothing is lost or counted twice.

Two workers process a steady mixed stream on the cluster stack; meanwhile
`redis-cli --cluster reshard` moves, from the primary holding performance partition 0's
slot, every slot up to and including the last performance partition's slot it holds to
another primary (slot by slot, keys and all, as an operator adding a node would). Every
script call whose keys are partly moved is refused (TRYAGAIN) or redirected (ASK) and
repeated; at the end every sum and registration is exact.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.store.client import connect
from service.store.keys import Keys
from service.store.slots import key_slot
from tests.e2e.test_faults import run_with_fault
from tests.e2e.worker import Worker
from tests.e2e.workload import Truth, Workload

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_only]


async def redis_cli(*args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, ["redis-cli", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"redis-cli {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def owners(nodes: str) -> dict[str, list[tuple[int, int]]]:
    """CLUSTER NODES: node id -> the slot ranges it serves (primaries only)."""
    served: dict[str, list[tuple[int, int]]] = {}
    for line in nodes.splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2]:
            continue
        ranges = []
        for part in fields[8:]:
            if part.startswith("["):
                continue  # a slot being migrated or imported
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high or low)))
        served[fields[0]] = ranges
    return served


def owner_of(served: dict[str, list[tuple[int, int]]], slot: int) -> str:
    return next(node for node, ranges in served.items() if any(a <= slot <= b for a, b in ranges))


async def test_slots_moved_mid_stream_lose_and_double_count_nothing(
    stack: dict[str, str], tmp_path: Path
) -> None:
    url = urlsplit(stack["MEDIA_REDIS_URL"])
    node = f"{url.hostname}:{url.port}"
    workload = Workload(registrations=1_000, events=40_000, seed=23)
    moved: dict[str, Any] = {}

    async def reshard(group: list[Worker], truth: Truth) -> None:
        keys = Keys(truth.settings.redis_key_prefix)
        slot = key_slot(keys.perf_prefix(0))
        served = owners(await redis_cli("-u", stack["MEDIA_REDIS_URL"], "cluster", "nodes"))
        source = owner_of(served, slot)
        target = next(n for n in served if n != source)
        slots = [key_slot(keys.perf_prefix(p)) for p in range(truth.settings.topic_partitions)]
        last = max(s for s in slots if owner_of(served, s) == source)
        # redis-cli moves the source's lowest slots first: all those up to `last`.
        count = sum(min(high, last) - low + 1 for low, high in served[source] if low <= last)
        # A primary left without slots becomes a replica: the source keeps one at least.
        count = min(count, sum(high - low + 1 for low, high in served[source]) - 1)
        moved["before"] = await truth.applied()
        await move(source, target, count)
        moved["after"] = await truth.applied()
        served = owners(await redis_cli("-u", stack["MEDIA_REDIS_URL"], "cluster", "nodes"))
        moved["owner"], moved["target"] = owner_of(served, slot), target
        # And back, still mid-stream, so that the cluster keeps its layout for what follows.
        await move(target, source, count)

    async def move(source: str, target: str, count: int) -> None:
        await redis_cli(
            "--cluster", "reshard", node,
            "--cluster-from", source, "--cluster-to", target,
            "--cluster-slots", str(count), "--cluster-yes",
            "--cluster-pipeline", "100",
        )  # fmt: skip

    _, truth = await run_with_fault(
        stack, tmp_path, workload=workload, rate=4_000, count=2, fault=reshard
    )
    assert moved["owner"] == moved["target"], "partition 0's slot must have moved"
    assert moved["before"] < workload.events, "the slots must move while events are applied"
    redis = connect(truth.settings)
    try:
        info = await redis.cluster_info()
        assert info["cluster_state"] == "ok"
    finally:
        await redis.aclose()
