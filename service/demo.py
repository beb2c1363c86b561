"""Synthetic but realistic traffic, so that a newcomer sees the service work within a minute.

Several libraries are named (all but the last: a library known only from its assets)
and register assets (some sharing content within and across libraries, some variants
of earlier assets), the assets go through their lifecycle (some lifecycle events arrive
before their registration) and earn impressions and clicks on their channels, and a few
broken messages show the dead-letter topic at work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from service.config import Settings
from service.domain.enums import FORMATS_BY_MEDIA_TYPE, Channel, MediaType
from service.streaming.kafka_client import client_options

LIBRARY_NAMES = ["brand", "social", "email", "web", "retail", "events"]
VARIANT_LABELS = ["short copy", "blue CTA", "square crop", "no text overlay", "warm palette"]
SUBJECTS = ["hero", "product", "team", "launch", "holiday", "webinar", "logo", "promo"]
TAGS = ["summer", "winter", "sale", "brand", "product", "people", "outdoor", "studio"]
CATEGORIES = ["campaign", "evergreen", "seasonal", "social-proof", "announcement"]
SIZES = {
    MediaType.ICON: (64, 64, 4_000, 40_000),
    MediaType.THUMBNAIL: (320, 180, 15_000, 120_000),
    MediaType.BANNER: (728, 90, 40_000, 400_000),
    MediaType.IMAGE: (1920, 1080, 150_000, 7_000_000),
    MediaType.INFOGRAPHIC: (800, 2000, 300_000, 3_000_000),
    MediaType.GIF: (480, 270, 200_000, 6_000_000),
    MediaType.VIDEO: (1920, 1080, 5_000_000, 80_000_000),
}


@dataclass(frozen=True)
class DemoPlan:
    libraries: int = 4
    assets: int = 200
    rate: float = 200.0
    seed: int = 7
    duplicate_share: float = 0.1
    early_lifecycle_share: float = 0.05
    invalid_messages: int = 7
    performance_per_asset: int = 8
    variant_share: float = 0.15


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


def records(settings: Settings, plan: DemoPlan) -> Iterator[Record]:
    """The demo's messages in the order they are produced (deterministic for a seed)."""
    rng = random.Random(plan.seed)
    run = f"{plan.seed}-{int(time.time())}"
    libraries = [f"lib-{LIBRARY_NAMES[i % len(LIBRARY_NAMES)]}-{i}" for i in range(plan.libraries)]
    now = datetime.now(UTC)
    seq = 0

    def event_id() -> str:
        nonlocal seq
        seq += 1
        return f"demo-{run}-{seq}"

    def ts(offset_s: float) -> str:
        return (now - timedelta(hours=6) + timedelta(seconds=offset_s)).isoformat()

    def lifecycle(asset_id: str, action: str, at: float, campaign: str | None = None) -> Record:
        body: dict[str, Any] = {
            "event_id": event_id(),
            "occurred_at": ts(at),
            "schema_version": 1,
            "asset_id": asset_id,
            "action": action,
            "actor": rng.choice(["ana", "bo", "chen", "dara"]),
        }
        if campaign:
            body["campaign_id"] = campaign
        return _record(settings.topic_asset_lifecycle, asset_id, body)

    for number, library_id in enumerate(libraries[:-1]):  # the last one stays unnamed
        kind = library_id.split("-")[1]
        facts = {
            "event_id": event_id(),
            "occurred_at": ts(-60 + number),
            "schema_version": 1,
            "library_id": library_id,
            "name": f"{kind.capitalize()} library",
            "description": f"Approved {kind} creatives",
            "owner": f"{kind}@example.com",
        }
        yield _record(settings.topic_library_updated, library_id, facts)

    contents: list[tuple[str, str]] = []  # (content, the library it was first uploaded to)
    registered: list[tuple[str, str]] = []  # (asset, library) of the assets so far
    for n in range(plan.assets):
        asset_id = f"asset-{run}-{n:05d}"
        media_type = rng.choice(list(MediaType))
        width, height, low, high = SIZES[media_type]
        library_id = rng.choice(libraries)
        if contents and rng.random() < plan.duplicate_share:
            # the same file uploaded again: to its own library (storage wasted) or another
            content, first_library = rng.choice(contents)
            if rng.random() < 0.5:
                library_id = first_library
        else:
            content = hashlib.sha256(f"{run}-{n}".encode()).hexdigest()
            contents.append((content, library_id))
        file_format = _format(rng, media_type)
        channels = rng.sample(CHANNELS_BY_MEDIA_TYPE[media_type], 2)
        variant_of = None
        if registered and rng.random() < plan.variant_share:
            variant_of, library_id = rng.choice(registered)  # another take, same library
        registered.append((asset_id, library_id))
        registration = {
            "event_id": event_id(),
            "occurred_at": ts(n),
            "schema_version": 1,
            "asset_id": asset_id,
            "library_id": library_id,
            "name": f"{rng.choice(SUBJECTS)}-{n}.{file_format}",
            "media_type": media_type.value,
            "format": file_format,
            "width": width,
            "height": height,
            "file_size_bytes": rng.randint(low, high),
            "content_sha256": content,
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
            "categories": rng.sample(CATEGORIES, 1),
            "owner": rng.choice(["design@example.com", "social@example.com"]),
            "intended_channels": channels,
        }
        if media_type in (MediaType.VIDEO, MediaType.GIF):
            registration["duration_seconds"] = round(rng.uniform(2, 60), 1)
        if variant_of is not None:
            registration["variant_of"] = variant_of
            registration["variant_label"] = rng.choice(VARIANT_LABELS)
        campaign = f"campaign-{rng.randint(1, 12)}"
        early = rng.random() < plan.early_lifecycle_share
        if early:  # the lifecycle topic is ahead of the registration topic
            yield lifecycle(asset_id, "approved", n + 1)
        yield _record(settings.topic_asset_registered, asset_id, registration)
        roll = rng.random()
        if not early and roll < 0.8:
            yield lifecycle(asset_id, "approved", n + 1)
        if roll < 0.6:
            yield lifecycle(asset_id, "published", n + 2, campaign)
        if roll < 0.4:
            yield lifecycle(asset_id, "used", n + 3, f"campaign-{rng.randint(1, 12)}")
        if roll < 0.05:
            yield lifecycle(asset_id, "archived", n + 4)
        elif roll > 0.95:
            yield lifecycle(asset_id, "deleted", n + 4)
        if 0.9 < roll <= 0.95:
            yield lifecycle(asset_id, "archived", n + 4)  # a draft cannot be archived
        # Engagement: each asset has its own appeal, and a few channels and campaigns.
        appeal = rng.lognormvariate(-4.2, 0.6)  # a CTR around 1.5 %
        for _ in range(plan.performance_per_asset):
            impressions = rng.randint(50, 2_000)
            clicks = sum(1 for _ in range(impressions // 10) if rng.random() < appeal * 10)
            body = {
                "event_id": event_id(),
                "occurred_at": (now - timedelta(seconds=rng.uniform(0, 10 * 86_400))).isoformat(),
                "asset_id": asset_id,
                "campaign_id": campaign,
                "channel": rng.choice(channels),
                "impressions": impressions,
                "clicks": clicks,
                "engagements": clicks + rng.randint(0, clicks + 2),
                "conversions": sum(1 for _ in range(clicks) if rng.random() < 0.08),
                "shares": rng.randint(0, 2),
                "comments": rng.randint(0, 1),
            }
            yield _record(settings.topic_asset_performance, asset_id, body)

    yield from _broken(settings, run, plan.invalid_messages)


def _broken(settings: Settings, run: str, count: int) -> Iterator[Record]:
    registered = settings.topic_asset_registered
    samples = [
        Record(registered, b"asset-bad-1", b'{"event_id": "x", "asset_id": '),
        Record(registered, b"asset-bad-2", b"\xff\xfe not utf-8"),
        Record(
            registered,
            b"asset-bad-3",
            json.dumps(
                {
                    "event_id": f"demo-{run}-bad-3",
                    "occurred_at": "2026-01-01T00:00:00+00:00",
                    "schema_version": 1,
                    "asset_id": "asset-bad-3",
                    "library_id": "lib-brand-0",
                    "name": "broken.png",
                    "media_type": "image",
                    "format": "png",
                    "width": -5,
                    "height": 10,
                    "file_size_bytes": 10,
                    "content_sha256": "not-a-hash",
                    "owner": "x",
                }
            ).encode(),
        ),
        Record(
            settings.topic_asset_lifecycle,
            b"asset-bad-4",
            json.dumps(
                {
                    "event_id": f"demo-{run}-bad-4",
                    "occurred_at": "2026-01-01T00:00:00+00:00",
                    "schema_version": 2,
                    "asset_id": "asset-bad-4",
                    "action": "approved",
                }
            ).encode(),
        ),
        Record(settings.topic_asset_lifecycle, b"asset-bad-5", b"[1, 2, 3]"),
        Record(
            settings.topic_library_updated,
            b"lib-brand-0",
            json.dumps(
                {
                    "event_id": f"demo-{run}-bad-7",
                    "occurred_at": "2026-01-01T00:00:00+00:00",
                    "library_id": "lib-brand-0",
                    "name": "Brand library",
                }
            ).encode(),
        ),
        Record(
            settings.topic_asset_lifecycle,
            b"some-other-key",
            json.dumps(
                {
                    "event_id": f"demo-{run}-bad-6",
                    "occurred_at": "2026-01-01T00:00:00+00:00",
                    "asset_id": "asset-bad-6",
                    "action": "approved",
                }
            ).encode(),
        ),
    ]
    yield from samples[:count]


# Where each kind of asset is meant to go: a banner is made for display slots and pages,
# not for search image assets; an icon for pages and emails.
CHANNELS_BY_MEDIA_TYPE: dict[MediaType, list[str]] = {
    MediaType.IMAGE: [c.value for c in Channel],
    MediaType.INFOGRAPHIC: ["web", "social", "email"],
    MediaType.THUMBNAIL: ["web", "video", "social", "email"],
    MediaType.BANNER: ["display", "web", "email"],
    MediaType.ICON: ["web", "email", "other"],
    MediaType.GIF: ["social", "email", "web", "display"],
    MediaType.VIDEO: ["social", "web", "video", "display"],
}

# What marketing libraries hold, roughly: photos as JPEG, graphics as PNG, some WebP;
# icons as SVG or PNG; videos as MP4, some MOV from cameras and editing tools.
FORMAT_SHARES: dict[MediaType, list[tuple[str, int]]] = {
    MediaType.IMAGE: [("jpeg", 60), ("png", 25), ("webp", 15)],
    MediaType.INFOGRAPHIC: [("png", 70), ("jpeg", 30)],
    MediaType.THUMBNAIL: [("jpeg", 70), ("webp", 30)],
    MediaType.BANNER: [("png", 50), ("jpeg", 40), ("gif", 10)],
    MediaType.ICON: [("svg", 60), ("png", 40)],
    MediaType.GIF: [("gif", 100)],
    MediaType.VIDEO: [("mp4", 80), ("mov", 15), ("webm", 5)],
}


def _format(rng: random.Random, media_type: MediaType) -> str:
    shares = FORMAT_SHARES[media_type]
    chosen: str = rng.choices([f for f, _ in shares], weights=[w for _, w in shares])[0]
    assert chosen in FORMATS_BY_MEDIA_TYPE[media_type]
    return chosen


def _record(topic: str, key: str, body: dict[str, Any]) -> Record:
    return Record(topic, key.encode(), json.dumps(body).encode())


async def run_demo(settings: Settings, plan: DemoPlan) -> int:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5)
    await producer.start()
    sent: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for n, record in enumerate(records(settings, plan)):
            await producer.send(record.topic, record.value, key=record.key)
            sent[record.topic] += 1
            delay = started + (n + 1) / plan.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()
    base = f"http://{settings.web_host}:{settings.web_port}"
    print(f"produced {sum(sent.values())} messages in {time.monotonic() - started:.1f}s:")
    for topic, count in sorted(sent.items()):
        print(f"  {topic}: {count}")
    print("Read them back (README lists every route):")
    for path in DEMO_PATHS:
        print(f"  curl '{base}{path}'")
    return 0


# One request per kind of answer, on what the demo produced (asset ids differ per run:
# take one from the library listing).
DEMO_PATHS = [
    "/v1/libraries",
    "/v1/libraries/lib-brand-0",
    "/v1/libraries/lib-brand-0/stats",
    "/v1/libraries/lib-brand-0/assets?limit=5&q=hero",
    "/v1/libraries/lib-brand-0/top?metric=ctr&window=7d",
    "/v1/libraries/lib-brand-0/top?metric=usage",
    "/v1/libraries/lib-brand-0/metrics?window=7d",
    "/v1/libraries/lib-brand-0/duplicates",
    "/v1/libraries/lib-brand-0/suggestions?limit=5",
    "/v1/campaigns/campaign-1/metrics?window=7d",
    "/v1/campaigns/campaign-1/top?window=7d&min_impressions=0",
    "/v1/dead-letters/stats",
    "/v1/performance/stats",
]
