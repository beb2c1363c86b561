"""Operator commands: check the configuration, and replay dead letters after a fix."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr, ValidationError

from service.config import Settings, variable
from service.domain.events import MAX_DEAD_LETTER_KEY_BYTES, DeadLetter
from service.handlers.emit import fit_reason
from service.observability import redact
from service.store.client import connect
from service.store.client import describe as describe_redis
from service.store.client import explain as explain_redis
from service.store.requirements import RequirementsReport, check_redis_requirements
from service.streaming.kafka_client import client_options
from service.streaming.kafka_client import describe as describe_kafka
from service.streaming.kafka_client import diagnose as diagnose_kafka
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
        lines.append(f"{variable(name)}={shown}")
    return lines


async def check_config(settings: Settings, out: Print) -> bool:
    """Print the configuration and whether Kafka, its topics and Redis are usable."""
    for line in effective_configuration(settings):
        out(line)
    ok = True
    out(f"kafka: security {describe_kafka(settings)}")
    out(f"redis: security {describe_redis(settings)}")
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
        reason = await diagnose_kafka(settings)
        if reason == "connected":
            reason = redact(repr(exc))
        out(f"kafka: FAILED to use {settings.kafka_bootstrap_servers}: {reason}")
        ok = False
    redis = connect(settings)
    try:
        info = await asyncio.wait_for(redis.info("server"), timeout=5)
        out(f"redis: OK (Redis {info.get('redis_version', '?')})")
        report = await asyncio.wait_for(check_redis_requirements(redis, settings), timeout=10)
        ok = _print_requirements(report, out) and ok
    except Exception as exc:
        hint = explain_redis(exc, settings)
        out(f"redis: FAILED: {redact(repr(exc))}" + (f"; {hint}" if hint else ""))
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
    unavailable: int = 0  # cut in the dead letter, and the original is gone from its topic


FETCH_TIMEOUT_SECONDS = 30.0


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

    A dead letter whose value (or key) was cut to fit cannot be replayed from its own
    bytes: the original is read back from its source topic, partition and offset and
    replayed only if its SHA-256 is the one the dead letter recorded. When the topic
    no longer holds it, the dead letter is skipped with one line saying why (also in a
    dry run, which reads the originals too).
    """
    report = ReplayReport()
    letters = await _read_all(settings, report)
    producer = None
    originals = _Originals(settings)
    if not dry_run:
        producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
        await producer.start()
    try:
        for letter in _unique(letters):
            if not wanted.matches(letter) or (
                limit is not None and sum(report.selected.values()) >= limit
            ):
                report.skipped += 1
                continue
            key = None if letter.key_base64 is None else base64.b64decode(letter.key_base64)
            value = base64.b64decode(letter.value_base64)
            origin = ""
            if letter.value_truncated or letter.key_truncated:
                fetched = await originals.fetch(letter)
                if isinstance(fetched, str):
                    report.unavailable += 1
                    out(f"skipping {letter.event_id} ({letter.reason_code.value}): {fetched}")
                    continue
                key, value = fetched
                origin = (
                    f" (original of {len(value)} bytes read back from "
                    f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset})"
                )
            report.selected[letter.reason_code.value] += 1
            verb = "would replay" if dry_run else "replaying"
            out(
                f"{verb} {letter.event_id} ({letter.reason_code.value}) -> "
                f"{letter.source_topic}{origin}"
            )
            if producer is not None:
                await producer.send_and_wait(
                    letter.source_topic,
                    value,
                    key=key,
                    headers=[(REPLAY_HEADER, letter.event_id.encode())],
                )
    finally:
        await originals.close()
        if producer is not None:
            await producer.stop()
    total = sum(report.selected.values())
    out(
        f"{'would replay' if dry_run else 'replayed'} {total} dead letter(s) "
        f"{dict(report.selected)}; {report.skipped} not selected, {report.unreadable} unreadable, "
        f"{report.unavailable} whose cut original is no longer in its topic"
    )
    return report


class _Originals:
    """Reads single records back from the source topics, by their coordinates."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def fetch(self, letter: DeadLetter) -> tuple[bytes | None, bytes] | str:
        """The original key and value of a dead letter, or why they cannot be had."""
        where = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
        cut = (
            f"its value was cut to {len(base64.b64decode(letter.value_base64))} of "
            f"{letter.value_size_bytes} bytes"
            if letter.value_truncated
            else f"its key was cut to {MAX_DEAD_LETTER_KEY_BYTES} of {letter.key_size_bytes} bytes"
        )
        try:
            record = await asyncio.wait_for(self._read(letter), timeout=FETCH_TIMEOUT_SECONDS)
        except TimeoutError:
            return (
                f"{cut} and reading {where} back took over {FETCH_TIMEOUT_SECONDS:.0f} s; try again"
            )
        except Exception as exc:
            return (
                f"{cut} and reading {where} back failed ({exc!r}); check the topic, then try again"
            )
        if isinstance(record, str):
            return f"{cut} and {record}; it cannot be replayed: ask its producer to send it again"
        value = record.value or b""
        if letter.value_sha256 is None or hashlib.sha256(value).hexdigest() != letter.value_sha256:
            return (
                f"{cut} and the record now at {where} is not the original (its SHA-256 differs: "
                "was the topic deleted and created again?); ask its producer to send it again"
            )
        if letter.key_truncated and (
            record.key is None or hashlib.sha256(record.key).hexdigest() != letter.key_sha256
        ):
            return f"{cut} and the key of the record now at {where} is not the original's"
        return record.key, value

    async def _read(self, letter: DeadLetter) -> Any:
        """The record at the letter's coordinates, or a sentence saying it is gone."""
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **client_options(self._settings),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await self._consumer.start()
        consumer = self._consumer
        tp = TopicPartition(letter.source_topic, letter.source_partition)
        offset = letter.source_offset
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if offset < start:
            return (
                f"offset {offset} is no longer retained ({tp.topic}[{tp.partition}] starts at "
                f"{start} now: retention or a deletion removed it)"
            )
        if offset >= end:
            return (
                f"{tp.topic}[{tp.partition}] ends at offset {end}, before {offset} "
                "(was the topic deleted and created again?)"
            )
        consumer.seek(tp, offset)
        while True:
            batches = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
            for record in batches.get(tp, []):
                if record.offset == offset:
                    return record
                return (
                    f"{tp.topic}[{tp.partition}] no longer holds offset {offset} "
                    "(compacted away, or part of an aborted transaction)"
                )

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def _read_all(settings: Settings, report: ReplayReport) -> list[DeadLetter]:
    topic = settings.topic_dead_letter
    info = next(i for i in await describe_topics(settings) if i.name == topic)
    if info.partitions is None:
        return []  # the topic does not exist: nothing was ever dead-lettered
    tps = [TopicPartition(topic, p) for p in range(info.partitions)]
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
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
                    letter = _letter(record.value or b"")
                    if letter is None:
                        report.unreadable += 1
                    else:
                        letters.append(letter)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return letters
    finally:
        await consumer.stop()


def _letter(raw: bytes) -> DeadLetter | None:
    """A dead letter, also one written before the contract bounded its reason and ids."""
    try:
        return DeadLetter.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            return None
        data["reason"] = fit_reason(str(data.get("reason") or ""))
        data.pop("original_event_id", None)
        data.pop("asset_id", None)
        return DeadLetter.model_validate(data)
    except (ValueError, RecursionError):  # ValidationError and JSONDecodeError included
        return None


def _unique(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    return list({letter.event_id: letter for letter in letters}.values())
