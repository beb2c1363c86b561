"""Leaderboards from real metrics and registry data: ranking, filters, moves, late registration."""

from __future__ import annotations

import json
import time
from itertools import count
from typing import Any

import pytest

from service.domain import leaderboard as lb
from service.domain.decoding import RawMessage, decode
from service.domain.enums import Channel
from service.domain.events import AssetLifecycle, AssetRegistered
from service.domain.windows import DAY, Window
from service.runtime import Runtime
from service.store.metrics import ApplyStatus, PerfRow
from tests.unit.factories import registration_body, sha

pytestmark = [pytest.mark.integration, pytest.mark.secure]

NOW = time.time()
_offsets = count()


async def register(runtime: Runtime, asset: str, library: str, **extra: Any) -> None:
    body = registration_body(
        asset, library_id=library, content_sha256=sha(hash(asset) % 999), **extra
    )
    message = RawMessage("reg", 0, next(_offsets), asset.encode(), json.dumps(body).encode())
    event = decode(AssetRegistered, message, max_bytes=10_000)
    await runtime.registry.registration(event, message.source())


async def lifecycle(runtime: Runtime, asset: str, action: str) -> None:
    body = {
        "event_id": f"{asset}-{action}",
        "occurred_at": "2026-03-01T12:00:00Z",
        "asset_id": asset,
        "action": action,
    }
    message = RawMessage("life", 0, next(_offsets), asset.encode(), json.dumps(body).encode())
    await runtime.registry.lifecycle(
        decode(AssetLifecycle, message, max_bytes=10_000), message.source()
    )


async def perform(runtime: Runtime, rows: list[tuple[str, str, float, int, int]]) -> None:
    """(asset, channel, seconds ago, impressions, clicks) rows, applied on partition 0."""
    store = runtime.metrics_store
    await store.point(0, sorted({r[0] for r in rows}))
    first = await store.position(0) + 1
    perf = [
        PerfRow(
            f"ev-{first + n}", asset, channel, "c1", int(NOW - ago), impressions, clicks, 0, 0, 0, 0
        )
        for n, (asset, channel, ago, impressions, clicks) in enumerate(rows)
    ]
    result = await store.apply(0, first, first + len(perf) - 1, perf, NOW)
    assert result.status is ApplyStatus.APPLIED


async def top(
    runtime: Runtime,
    library: str,
    window: Window = Window.DAY,
    *,
    channel: str | None = None,
    min_impressions: int = 100,
    metric: lb.RankMetric = lb.RankMetric.CTR,
) -> list[tuple[str, float]]:
    board = None if channel is None else Channel(channel)
    entries = await runtime.leaderboard_store.entries(library, window, board)
    ranked = lb.rank(entries, metric, min_impressions=min_impressions, limit=10)
    return [(e.asset_id, round(e.value(metric), 4)) for e in ranked]


async def test_boards_rank_filter_and_follow_the_registry(runtime: Runtime) -> None:
    for asset in ("a1", "a2", "a3"):
        await register(runtime, asset, "libA")
    await perform(
        runtime,
        [
            ("a1", "email", 60, 1000, 50),
            ("a2", "email", 120, 2000, 40),
            ("a2", "email", 3 * DAY, 1000, 100),  # in 7d and lifetime, not in 24h
            ("a3", "web", 30, 10, 5),  # a 50 % CTR on ten impressions
            ("a9", "social", 30, 500, 30),  # not registered yet
        ],
    )
    refresher = runtime.leaderboards
    assert await refresher.refresh(NOW) >= 4

    assert await top(runtime, "libA") == [("a1", 0.05), ("a2", 0.02)]
    assert await top(runtime, "libA", min_impressions=0) == [
        ("a3", 0.5),
        ("a1", 0.05),
        ("a2", 0.02),
    ]
    assert await top(runtime, "libA", Window.WEEK) == [("a1", 0.05), ("a2", 0.0467)]
    assert await top(runtime, "libA", Window.LIFETIME, channel="web", min_impressions=0) == [
        ("a3", 0.5)
    ]
    assert await top(runtime, "libA", channel="social", min_impressions=0) == []

    await register(runtime, "a9", "libA")  # metrics were waiting for it
    await refresher.refresh(NOW)
    assert ("a9", 0.06) in await top(runtime, "libA")

    await register(runtime, "a1", "libB")  # moved
    await lifecycle(runtime, "a2", "deleted")
    await refresher.refresh(NOW)
    assert [a for a, _ in await top(runtime, "libA", min_impressions=0)] == ["a3", "a9"]
    assert await top(runtime, "libB") == [("a1", 0.05)]


async def test_windows_move_on_at_the_hour(runtime: Runtime) -> None:
    await register(runtime, "a1", "libA")
    await perform(runtime, [("a1", "email", 23 * 3600, 1000, 10)])
    refresher = runtime.leaderboards
    await refresher.refresh(NOW)
    assert await top(runtime, "libA") == [("a1", 0.01)]
    # Two hours later, without a single new event, the 24h window no longer holds it.
    assert await refresher.refresh(NOW + 2 * 3600) >= 1
    assert await top(runtime, "libA") == []
    assert await top(runtime, "libA", Window.LIFETIME) == [("a1", 0.01)]
