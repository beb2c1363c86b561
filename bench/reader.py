"""A reader of the HTTP API while the worker runs at full rate: how long reads wait.

Before the worker starts, the most popular `REGISTERED` assets of the catalogue are
registered in one library, so that the library's and the campaigns' boards fill as their
events are applied. During the worker's first pass the reader asks, one request at a
time and in turn, for an asset's metrics over 24 h (a bucket per hour of that asset),
its lifetime metrics, the library's top assets over 24 h and a campaign's top assets
over 24 h; every read waits behind whatever Redis is doing, the metrics script included.

Each read is made twice, one after the other: of the worker, whose event loop also
applies the batches, and of an API server (`service api`, no consumer) on the same
Redis, so that one run shows what a process of its own changes for readers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from bench.events import Encoded, EventFactory, partition_for
from service.domain.enums import MediaFormat, MediaType
from service.domain.events import AssetRegistered

REGISTERED = 500
LIBRARY = "bench-library"
PAUSE_SECONDS = 0.005  # between two reads: a dashboard polling hard, not a load test


@dataclass(frozen=True, slots=True)
class Reads:
    """Latencies of the API reads made during the worker's first pass."""

    count: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    routes: tuple[str, ...]
    failures: dict[str, int]  # "<status> <route>" (status 0: no answer) -> how many

    @classmethod
    def of(
        cls,
        latencies: list[float],
        errors: int,
        routes: tuple[str, ...],
        failures: dict[str, int] | None = None,
    ) -> Reads:
        ordered = sorted(latencies)

        def rank(q: float) -> float:
            if not ordered:
                return 0.0
            return 1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

        return cls(
            count=len(ordered),
            errors=errors,
            p50_ms=rank(0.50),
            p99_ms=rank(0.99),
            max_ms=1000 * ordered[-1] if ordered else 0.0,
            routes=routes,
            failures=dict(failures or {}),
        )


def registrations(factory: EventFactory, partitions: int, now: float) -> Iterator[Encoded]:
    """Registrations of the catalogue's `REGISTERED` most popular assets in one library."""
    occurred = datetime.fromtimestamp(now, UTC)
    for n, asset_id in enumerate(factory.asset_ids[:REGISTERED]):
        event = AssetRegistered(
            event_id=f"{factory.run_id}-registration-{n}",
            occurred_at=occurred,
            asset_id=asset_id,
            library_id=LIBRARY,
            name=f"Bench asset {n}",
            media_type=MediaType.IMAGE,
            format=MediaFormat.JPEG,
            width=1200,
            height=628,
            file_size_bytes=120_000 + n,
            content_sha256=f"{n:064x}",
            owner="bench",
        )
        key = asset_id.encode()
        yield partition_for(key, partitions), key, event.model_dump_json().encode()


def routes(factory: EventFactory) -> tuple[str, ...]:
    popular = factory.asset_ids[:REGISTERED]
    campaign = factory.campaigns_of(0)[0]
    return (
        f"/v1/assets/{popular[0]}/metrics?window=24h",
        f"/v1/assets/{popular[1]}/metrics?window=lifetime",
        f"/v1/libraries/{LIBRARY}/top?window=24h",
        f"/v1/campaigns/{campaign}/top?window=24h",
    )


async def read_until(
    bases: dict[str, str], paths: tuple[str, ...], stop: asyncio.Event
) -> dict[str, Reads]:
    """Read the paths in turn, each from every server of `bases` (name -> base URL) one
    after the other, until `stop` is set; a server's answer other than 200 to a path is
    an error once it has answered 200 to it."""
    latencies: dict[str, list[float]] = {name: [] for name in bases}
    errors: Counter[str] = Counter()
    failures: dict[str, Counter[str]] = {name: Counter() for name in bases}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # A route answers 404 until the worker has registered the assets, applied their
        # first events and refreshed the boards: each route counts from its first 200.
        answered: set[tuple[str, str]] = set()
        turn = 0
        while not stop.is_set():
            path = paths[turn % len(paths)]
            turn += 1
            for name, base in bases.items():
                started = time.perf_counter()
                try:
                    async with session.get(base + path) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                if status == 200:
                    answered.add((name, path))
                    latencies[name].append(time.perf_counter() - started)
                elif (name, path) in answered:
                    errors[name] += 1
                    failures[name][f"{status} {path}"] += 1
            await asyncio.sleep(PAUSE_SECONDS)
    return {name: Reads.of(latencies[name], errors[name], paths, failures[name]) for name in bases}
