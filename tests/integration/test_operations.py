"""Operator commands against the real Kafka and Redis."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from service.config import Settings
from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle
from service.errors import DecodeError
from service.handlers.emit import DeadLetters
from service.observability import Instruments
from service.operations import REPLAY_HEADER, ReplayFilter, check_config, replay_dead_letters
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.scripts import Scripts
from service.streaming.kafka_client import client_options
from service.topics import ensure_topics
from tests.conftest import KafkaPort, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.secure]


async def test_check_config_reports_and_masks(settings: Settings) -> None:
    await ensure_topics(settings)
    lines: list[str] = []
    assert await check_config(settings, lines.append)
    assert "kafka: OK" in "\n".join(lines) and any(line.startswith("redis: OK") for line in lines)
    assert "MEDIA_REDIS_URL=********" in lines

    broken = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    lines = []
    assert not await check_config(broken, lines.append)
    assert any(line.startswith("kafka: FAILED") for line in lines)


async def test_replay_sends_the_original_bytes_back_and_a_new_failure_is_kept(
    settings: Settings, redis: Any, producer: KafkaPort
) -> None:
    await ensure_topics(settings)
    keys = Keys(settings.redis_key_prefix)
    dead = DeadLetters(
        producer,
        settings.topic_dead_letter,
        DeadLetterCounters(redis, keys, Scripts.register(redis), 3600),
        Instruments.create().dead_letters,
    )
    life, reg = settings.topic_asset_lifecycle, settings.topic_asset_registered
    broken = [
        RawMessage(life, 1, 7, b"a1", b'{"event_id": "x"'),
        RawMessage(life, 2, 8, b"a2", b"\xff"),
        RawMessage(reg, 0, 9, None, b"[]"),
    ]
    for message in broken:
        with pytest.raises(DecodeError) as caught:
            decode(AssetLifecycle, message, max_bytes=4096)
        await dead.decode_failure(message, caught.value)
        await dead.decode_failure(message, caught.value)  # a copy after a crash
    lines: list[str] = []
    dry = await replay_dead_letters(settings, ReplayFilter(), lines.append, dry_run=True)
    assert sum(dry.selected.values()) == 3  # copies count once
    assert await read_topic(settings, life, 0, 1) == []

    wanted = ReplayFilter(reasons={"invalid_json"}, source_topics={life})
    report = await replay_dead_letters(settings, wanted, lines.append, dry_run=False)
    assert dict(report.selected) == {"invalid_json": 1} and report.skipped == 2
    [replayed] = await read_topic(settings, life, 1, 5)
    assert (replayed.key, replayed.value) == (b"a1", b'{"event_id": "x"')
    assert dict(replayed.headers)[REPLAY_HEADER] == f"dead-letter/{life}/1/7".encode()

    # It still fails: dead-lettered again under its new coordinates, not lost.
    again = RawMessage(life, replayed.partition, replayed.offset, replayed.key, replayed.value)
    with pytest.raises(DecodeError) as caught:
        decode(AssetLifecycle, again, max_bytes=4096)
    await dead.decode_failure(again, caught.value)
    letters = await read_topic(settings, settings.topic_dead_letter, 7, 5)
    ids = {json.loads(r.value)["event_id"] for r in letters}
    assert f"dead-letter/{life}/{replayed.partition}/{replayed.offset}" in ids
    assert len(ids) == 4


async def test_a_cut_dead_letter_is_replayed_from_its_source_or_skipped_with_why(
    settings: Settings, redis: Any, producer: KafkaPort
) -> None:
    await ensure_topics(settings)
    keys = Keys(settings.redis_key_prefix)
    dead = DeadLetters(
        producer,
        settings.topic_dead_letter,
        DeadLetterCounters(redis, keys, Scripts.register(redis), 3600),
        Instruments.create().dead_letters,
        max_original_bytes=100,
    )
    life = settings.topic_asset_lifecycle
    big_key = b"k" * 3000  # longer than the 1024 bytes a dead letter keeps of a key

    async def produce(partition: int, key: bytes, value: bytes) -> RawMessage:
        sent = await producer.producer.send_and_wait(life, value, key=key, partition=partition)
        return RawMessage(life, sent.partition, sent.offset, key, value)

    async def dead_letter(message: RawMessage) -> None:
        with pytest.raises(DecodeError) as caught:
            decode(AssetLifecycle, message, max_bytes=1 << 20)
        await dead.decode_failure(message, caught.value)

    kept = await produce(0, big_key, b'{"event_id": "' + b"x" * 5000)  # still in its topic
    gone = await produce(1, b"a2", b"[" + b"1," * 3000 + b"1]")
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:  # as retention would: the record is no longer in the topic
        await admin.delete_records({TopicPartition(life, 1): RecordsToDelete(gone.offset + 1)})
    finally:
        await admin.close()
    never = RawMessage(life, 2, 500, b"a3", b"\xff" * 500)  # beyond the partition's end
    for message in (kept, gone, never):
        await dead_letter(message)

    letters = await read_topic(settings, settings.topic_dead_letter, 3, 5)
    by_id = {json.loads(r.value)["event_id"]: json.loads(r.value) for r in letters}
    first = by_id[f"dead-letter/{life}/0/{kept.offset}"]
    assert first["value_truncated"] is True and first["key_truncated"] is True
    assert first["value_size_bytes"] == len(kept.value or b"")
    assert first["value_sha256"] == hashlib.sha256(kept.value or b"").hexdigest()
    assert len(base64.b64decode(first["value_base64"])) == 100
    assert len(base64.b64decode(first["key_base64"])) == 1024 and first["key_size_bytes"] == 3000
    assert "k" * 100 not in first["reason"]

    lines: list[str] = []
    dry = await replay_dead_letters(settings, ReplayFilter(), lines.append, dry_run=True)
    assert (sum(dry.selected.values()), dry.unavailable) == (1, 2)
    skipped = [line for line in lines if line.startswith("skipping")]
    assert len(skipped) == 2
    assert any("no longer retained" in line and f"/1/{gone.offset}" in line for line in skipped)
    assert any("ends at offset" in line and "/2/500" in line for line in skipped)
    assert all("cut to 100 of" in line for line in skipped)

    report = await replay_dead_letters(settings, ReplayFilter(), lines.append, dry_run=False)
    assert (sum(report.selected.values()), report.unavailable) == (1, 2)
    records = await read_topic(settings, life, 3, 5)
    [replayed] = [r for r in records if REPLAY_HEADER in dict(r.headers)]
    assert (replayed.key, replayed.value) == (big_key, kept.value)
    assert dict(replayed.headers)[REPLAY_HEADER] == f"dead-letter/{life}/0/{kept.offset}".encode()
