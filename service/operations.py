"""Operator commands: check the configuration, and replay dead letters after a fix."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr, ValidationError

from service.config import ENV_PREFIX, Settings
from service.domain.events import DeadLetter
from service.observability import redact
from service.store.client import connect
from service.store.requirements import RequirementsReport, check_redis_requirements
from service.topics import check_partitions, describe_topics

REPLAY_HEADER = "media-replay-of"

Print = Callable[[str], None]


def effective_configuration(settings: Settings) -> list[str]:
    """`MEDIA_NAME=value` lines, secrets masked, credentials in URLs too."""
    lines = []
    for name in sorted(Settings.model_fields):
        value = getattr(settings, name)
        shown = "********" if isinstance(value, SecretStr) else redact(str(value))
        if value is None:
            shown = "(unset)"
        lines.append(f"{ENV_PREFIX}{name.upper()}={shown}")
    return lines


async def check_config(settings: Settings, out: Print) -> bool:
    """Print the configuration and whether Kafka, its topics and Redis are usable."""
    for line in effective_configuration(settings):
        out(line)
    ok = True
    try:
        infos = await asyncio.wait_for(describe_topics(settings), timeout=15)
        missing = [i.name for i in infos if i.error is not None]
        out(f"kafka: OK ({settings.kafka_bootstrap_servers})")
        if missing:
            created = "created at start-up" if settings.create_topics else "NOT created"
            out(f"kafka: topics missing ({created} by a worker): {', '.join(missing)}")
            ok = ok and settings.create_topics
        for problem in await check_partitions(settings):
            out(f"kafka: {problem}")
            ok = False
    except Exception as exc:
        out(f"kafka: FAILED to reach {settings.kafka_bootstrap_servers}: {exc!r}")
        ok = False
    redis = connect(settings)
    try:
        info = await asyncio.wait_for(redis.info("server"), timeout=5)
        out(f"redis: OK (Redis {info.get('redis_version', '?')})")
        report = await asyncio.wait_for(check_redis_requirements(redis, settings), timeout=10)
        ok = _print_requirements(report, out) and ok
    except Exception as exc:
        out(f"redis: FAILED: {redact(repr(exc))}")
        ok = False
    finally:
        await redis.aclose()
    out("configuration OK" if ok else "configuration has problems (see above)")
    return ok


def _print_requirements(report: RequirementsReport, out: Print) -> bool:
    """Print what Redis is configured to do; False when the service would refuse it."""
    out(f"redis: eviction policy {report.eviction_policy}")
    out(f"redis: persistence {report.persistence}")
    for message in report.warnings:
        out(f"redis: warning: {message}")
    for message in report.refusals:
        out(f"redis: REFUSED: {message}")
    out(f"redis: requirements {report.verdict}")
    return not report.refused


@dataclass
class ReplayFilter:
    reasons: set[str] = field(default_factory=set)
    source_topics: set[str] = field(default_factory=set)

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason_code.value not in self.reasons:
            return False
        return not self.source_topics or letter.source_topic in self.source_topics


@dataclass
class ReplayReport:
    selected: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    unreadable: int = 0


async def replay_dead_letters(
    settings: Settings,
    wanted: ReplayFilter,
    out: Print,
    *,
    dry_run: bool,
    limit: int | None = None,
) -> ReplayReport:
    """Produce the original bytes of matching dead letters back to their source topics.

    Reads the dead-letter topic from its start to its end as of now (no consumer group,
    nothing committed). Each dead letter is replayed once per run even if the topic
    holds copies of it. A replayed message that fails again is dead-lettered again, with
    its new coordinates: nothing is lost.
    """
    report = ReplayReport()
    letters = await _read_all(settings, report)
    producer = None
    if not dry_run:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        await producer.start()
    try:
        for letter in _unique(letters):
            if not wanted.matches(letter) or (
                limit is not None and sum(report.selected.values()) >= limit
            ):
                report.skipped += 1
                continue
            report.selected[letter.reason_code.value] += 1
            verb = "would replay" if dry_run else "replaying"
            out(f"{verb} {letter.event_id} ({letter.reason_code.value}) -> {letter.source_topic}")
            if producer is not None:
                await producer.send_and_wait(
                    letter.source_topic,
                    base64.b64decode(letter.value_base64),
                    key=None if letter.key_base64 is None else base64.b64decode(letter.key_base64),
                    headers=[(REPLAY_HEADER, letter.event_id.encode())],
                )
    finally:
        if producer is not None:
            await producer.stop()
    total = sum(report.selected.values())
    out(
        f"{'would replay' if dry_run else 'replayed'} {total} dead letter(s) "
        f"{dict(report.selected)}; {report.skipped} not selected, {report.unreadable} unreadable"
    )
    return report


async def _read_all(settings: Settings, report: ReplayReport) -> list[DeadLetter]:
    topic = settings.topic_dead_letter
    info = next(i for i in await describe_topics(settings) if i.name == topic)
    if info.partitions is None:
        return []  # the topic does not exist: nothing was ever dead-lettered
    tps = [TopicPartition(topic, p) for p in range(info.partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    try:
                        letters.append(DeadLetter.model_validate_json(record.value or b""))
                    except ValidationError:
                        report.unreadable += 1
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return letters
    finally:
        await consumer.stop()


def _unique(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    return list({letter.event_id: letter for letter in letters}.values())
