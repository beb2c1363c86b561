"""End to end: performance events in, asset metrics and library boards out of the API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from service.streaming.kafka_client import client_options
from tests.conftest import isolated_env, settings_from
from tests.e2e.conftest import Spawn
from tests.e2e.worker import eventually, free_port
from tests.unit.factories import registration_body, sha

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def perf(n: int, asset: str, channel: str, impressions: int, clicks: int, ago: float) -> bytes:
    return json.dumps(
        {
            "event_id": f"pe-{n}",
            "occurred_at": datetime.fromtimestamp(time.time() - ago, UTC).isoformat(),
            "asset_id": asset,
            "campaign_id": "spring",
            "channel": channel,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": clicks // 2,
        }
    ).encode()


async def test_metrics_and_boards_through_the_api(stack: dict[str, str], spawn: Spawn) -> None:
    env = isolated_env(
        stack, web_port=free_port(), leaderboard_refresh_seconds=0.5, log_format="json"
    )
    settings = settings_from(env)
    worker = spawn(env)
    await worker.wait_ready()
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for asset in ("hero", "promo", "hero-b", "hero-copy"):
            content = sha(4) if asset == "hero-copy" else sha(len(asset))  # hero's bytes again
            body = registration_body(asset, library_id="libM", content_sha256=content)
            if asset == "hero-b":  # a variant, with no events yet
                body.update(variant_of="hero", variant_label="short copy")
            await producer.send(
                settings.topic_asset_registered, json.dumps(body).encode(), key=asset.encode()
            )
        rows = [
            ("hero", "email", 800, 40, 120),
            ("hero", "web", 200, 2, 4 * 86400),
            ("promo", "email", 1000, 20, 60),
            ("promo", "email", 1000, 20, 60),  # a second copy of the same event: pe-3
            ("later", "social", 300, 9, 30),  # not registered: counts all the same
        ]
        for n, (asset, channel, impressions, clicks, ago) in enumerate(rows):
            event_id = n if n != 3 else 2
            await producer.send(
                settings.topic_asset_performance,
                perf(event_id, asset, channel, impressions, clicks, ago),
                key=asset.encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()

    async def hero_24h() -> Any:
        status, body = await worker.get("/v1/assets/hero/metrics?window=24h")
        return status == 200 and body["impressions"] == 800 and body

    day = await eventually(hero_24h)
    assert (day["clicks"], day["ctr"], day["conversion_rate"]) == (40, 0.05, 0.5)
    _, week = await worker.get("/v1/assets/hero/metrics?window=7d")
    assert (week["impressions"], week["clicks"]) == (1000, 42)
    _, web = await worker.get("/v1/assets/hero/metrics?window=lifetime&channel=web")
    assert web["impressions"] == 200
    _, spring = await worker.get("/v1/assets/promo/metrics?window=1h&campaign=spring")
    assert spring["impressions"] == 1000  # the copy did not count
    status, later = await worker.get("/v1/assets/later/metrics?window=lifetime")
    assert status == 200 and later["impressions"] == 300
    _, asset = await worker.get("/v1/assets/hero")
    assert asset["lifetime"]["impressions"] == 1000

    # Variants: hero-b has no events, so no verdict on any of hero's channels
    async def variants() -> Any:
        status, body = await worker.get("/v1/assets/hero-b/variants")
        return status == 200 and body

    family = await eventually(variants)
    assert family["original"]["asset_id"] == "hero"
    assert family["original"]["channels"]["email"]["impressions"] == 800
    [variant] = family["variants"]
    assert (variant["asset_id"], variant["variant_label"]) == ("hero-b", "short copy")
    assert [(c["channel"], c["verdict"]) for c in variant["comparisons"]] == [
        ("email", "inconclusive"),
        ("web", "inconclusive"),
    ]
    _, hero = await worker.get("/v1/assets/hero")
    assert hero["variant_count"] == 1

    # Storage waste: hero-copy repeats hero's content in the same library
    async def waste() -> Any:
        status, body = await worker.get("/v1/libraries/libM/duplicates")
        return status == 200 and body["items"] and body

    redundant = await eventually(waste)
    [item] = redundant["items"]  # (assets on other partitions register in either order)
    assert (item["content_sha256"], item["copies"], item["wasted_bytes"]) == (sha(4), 2, 250_000)
    assert sorted(item["asset_ids"]) == ["hero", "hero-copy"]

    # Time series: zero-filled points of the same buckets
    status, days = await worker.get("/v1/assets/hero/series?resolution=1d&window=7d")
    assert status == 200 and len(days["points"]) == 7
    assert sorted(p["impressions"] for p in days["points"] if p["impressions"]) == [200, 800]
    assert days["points"][-1]["impressions"] + days["points"][-2]["impressions"] >= 800
    _, hours = await worker.get("/v1/assets/hero/series?resolution=1h&window=24h&channel=web")
    assert len(hours["points"]) == 24 and sum(p["impressions"] for p in hours["points"]) == 0
    _, hours = await worker.get("/v1/assets/hero/series")
    assert sum(p["impressions"] for p in hours["points"]) == 800
    _, fives = await worker.get("/v1/assets/promo/series?resolution=5m&window=1h&campaign=spring")
    assert len(fives["points"]) == 12 and sum(p["clicks"] for p in fives["points"]) == 20

    async def board() -> Any:
        status, body = await worker.get("/v1/libraries/libM/top?metric=ctr&window=7d")
        return status == 200 and len(body["items"]) == 2 and body

    top = await eventually(board)
    assert [(i["asset_id"], i["value"]) for i in top["items"]] == [("hero", 0.042), ("promo", 0.02)]

    # Campaign boards, kept by the same refresh: "later" is not registered, so not in them
    async def campaign() -> Any:
        status, body = await worker.get("/v1/campaigns/spring/metrics?window=lifetime")
        return status == 200 and body["assets_with_activity"] == 2 and body

    spring_all = await eventually(campaign)
    assert (spring_all["impressions"], spring_all["clicks"]) == (2000, 62)
    _, spring_top = await worker.get("/v1/campaigns/spring/top?window=7d")
    assert [(i["asset_id"], i["library_id"]) for i in spring_top["items"]] == [
        ("hero", "libM"),
        ("promo", "libM"),
    ]

    # Labels against the boards: on email hero (5 %) beats promo (2 %) and promo trails.
    # A board's pool is kept for a refresh interval: the labels follow within one.
    async def labels(asset: str) -> Any:
        _, body = await worker.get(f"/v1/assets/{asset}/metrics?window=7d")
        return [(x["channel"], x["label"], x["library_ctr"]) for x in body["labels"]]

    async def settled() -> Any:
        hero, promo = await labels("hero"), await labels("promo")
        return hero == [("email", "best", 0.02), ("web", "learning", None)] and (
            promo == [("email", "low", 0.05)]  # hero: no other asset of libM on web
        )

    await eventually(settled)
    _, rollup = await worker.get("/v1/libraries/libM/metrics?window=lifetime")
    assert (rollup["impressions"], rollup["assets_with_activity"]) == (2000, 2)
    _, stats = await worker.get("/v1/performance/stats")
    assert stats == {"applied": 4, "duplicates": 1, "late": 0}

    # What Prometheus scrapes, and readiness
    metrics = await worker.get_text("/metrics")
    perf_topic = settings.topic_asset_performance
    assert f'media_events_applied_total{{topic="{perf_topic}"}} 4.0' in metrics
    assert f'media_events_consumed_total{{topic="{perf_topic}"}} 5.0' in metrics
    assert f'media_consumer_lag{{partition="0",topic="{perf_topic}"}}' in metrics
    assert "media_redis_batch_seconds_count" in metrics
    assert f'media_event_age_seconds_count{{topic="{settings.topic_asset_registered}"}} 4.0' in (
        metrics
    )
    status, ready = await worker.get("/readyz")
    assert (status, ready) == (200, {"status": "ready"})

    for path, expected in [
        ("/v1/assets/hero/metrics?window=2h", 400),
        ("/v1/assets/hero/metrics?channel=fax", 400),
        ("/v1/assets/hero/metrics?channel=web&campaign=spring", 400),
        ("/v1/assets/nobody/metrics", 404),
        ("/v1/assets/hero/series?resolution=5m&window=24h", 400),
        ("/v1/assets/nobody/series", 404),
        ("/v1/campaigns/winter/metrics", 404),
        ("/v1/campaigns/spring/top?window=1h", 400),
        ("/v1/libraries/libM/top?metric=likes", 400),
        ("/v1/libraries/libM/top?window=1h", 400),
        ("/v1/libraries/libM/top?limit=0", 400),
        ("/v1/libraries/nolib/top", 404),
    ]:
        status, body = await worker.get(path)
        assert status == expected, (path, status, body)
    assert worker.stop() == 0
    lines = [line for line in worker.log().splitlines() if line.startswith("{")]
    assert lines and all(json.loads(line)["level"] for line in lines)
