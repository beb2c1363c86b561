"""Operator commands against the real Kafka and Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.agents.emit import DeadLetters
from service.config import Settings
from service.domain.decoding import DecodeError, RawMessage, decode
from service.domain.events import AssetLifecycle
from service.operations import REPLAY_HEADER, ReplayFilter, check_config, replay_dead_letters
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.scripts import Scripts
from service.topics import ensure_topics
from tests.conftest import KafkaPort, read_topic

pytestmark = pytest.mark.integration


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
    assert await read_topic(settings.kafka_bootstrap_servers, life, 0, 1) == []

    wanted = ReplayFilter(reasons={"invalid_json"}, source_topics={life})
    report = await replay_dead_letters(settings, wanted, lines.append, dry_run=False)
    assert dict(report.selected) == {"invalid_json": 1} and report.skipped == 2
    [replayed] = await read_topic(settings.kafka_bootstrap_servers, life, 1, 5)
    assert (replayed.key, replayed.value) == (b"a1", b'{"event_id": "x"')
    assert dict(replayed.headers)[REPLAY_HEADER] == f"dead-letter/{life}/1/7".encode()

    # It still fails: dead-lettered again under its new coordinates, not lost.
    again = RawMessage(life, replayed.partition, replayed.offset, replayed.key, replayed.value)
    with pytest.raises(DecodeError) as caught:
        decode(AssetLifecycle, again, max_bytes=4096)
    await dead.decode_failure(again, caught.value)
    letters = await read_topic(settings.kafka_bootstrap_servers, settings.topic_dead_letter, 7, 5)
    ids = {json.loads(r.value)["event_id"] for r in letters}
    assert f"dead-letter/{life}/{replayed.partition}/{replayed.offset}" in ids
    assert len(ids) == 4
