"""Creating and describing the service's Kafka topics.

Brokers in production usually refuse automatic topic creation; the service
creates what it needs at start-up (and `service topics create` does it on demand),
with the configured partition count and replication factor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.config import Settings
from service.errors import TopicError
from service.streaming.kafka_client import client_options

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36

# Dead letters are kept longer than the broker default so that people have time to act.
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000
# After creating topics, how long to wait for every partition of them to have a leader. A
# consumer whose group assigns partitions before its metadata shows them is assigned none
# of them until its next metadata refresh (five minutes by default): seen on a broker
# that had just started.
LEADERS_WAIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int | None
    replication_factor: int | None
    error: str | None = None


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **client_options(settings),
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=30_000,
    )


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics; returns the names created. Existing topics are left alone."""
    admin = _admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in settings.all_topics if t not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=(
                    {"retention.ms": str(DEAD_LETTER_RETENTION_MS)}
                    if topic == settings.topic_dead_letter
                    else {}
                ),
            )
            for topic in missing
        ]
        response = await admin.create_topics(new_topics)
        created = []
        for topic, code, message in _topic_errors(response):
            if code == 0:
                created.append(topic)
            elif code != TOPIC_ALREADY_EXISTS:  # another worker created it first
                raise TopicError(f"cannot create topic {topic!r}: error {code} {message or ''}")
        for topic in created:
            log.info(
                "created topic %s (%d partitions, replication %d)",
                topic,
                settings.topic_partitions,
                settings.topic_replication_factor,
            )
        await wait_for_leaders(admin, missing, LEADERS_WAIT_SECONDS)
        return created
    finally:
        await admin.close()


async def wait_for_leaders(admin: Any, topics: list[str], seconds: float) -> None:
    """Return once every partition of `topics` has a leader; TopicError after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        waiting = sorted(
            topic["topic"]
            for topic in await admin.describe_topics(topics)
            if topic.get("error_code")
            or not topic.get("partitions")
            or any(p.get("error_code") or p.get("leader", -1) < 0 for p in topic["partitions"])
        )
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise TopicError(
                f"topics {waiting} were created but not every partition of them has a "
                f"leader after {seconds:.0f}s: check the brokers' health (kafka-topics.sh "
                f"--describe shows each partition's leader)"
            )
        await asyncio.sleep(0.2)


async def describe_topics(settings: Settings) -> list[TopicInfo]:
    admin = _admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics(settings.all_topics)
    finally:
        await admin.close()
    infos = []
    for topic in described:
        partitions = topic.get("partitions") or []
        error = topic.get("error_code", 0)
        infos.append(
            TopicInfo(
                name=topic["topic"],
                partitions=len(partitions) if not error else None,
                replication_factor=len(partitions[0]["replicas"]) if partitions else None,
                error=None if not error else f"error {error}",
            )
        )
    return infos


async def check_partitions(settings: Settings) -> list[str]:
    """Topics whose partition count differs from the setting, as messages to act on.

    The performance metrics keep one position per partition and the leaderboard
    refresh visits every partition, so the setting must match the topic.
    """
    problems = []
    for info in await describe_topics(settings):
        if info.error is None and info.partitions != settings.topic_partitions:
            problems.append(
                f"topic {info.name} has {info.partitions} partitions but "
                f"MEDIA_TOPIC_PARTITIONS is {settings.topic_partitions}: set it to "
                f"{info.partitions}"
            )
    return problems


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    rows = []
    for row in response.topic_errors:
        topic, code = row[0], row[1]
        message = row[2] if len(row) > 2 else None
        rows.append((topic, code, message))
    return rows
