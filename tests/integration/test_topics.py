from __future__ import annotations

import pytest
from aiokafka.errors import KafkaError

from service.config import Settings
from service.streaming.kafka_client import client_options
from service.topics import describe_topics, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.secure]


async def test_topics_are_created_once_with_the_configured_partitions(settings: Settings) -> None:
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(settings.all_topics)
    assert await ensure_topics(settings) == []
    infos = {info.name: info for info in await describe_topics(settings)}
    assert set(infos) == set(settings.all_topics)
    for info in infos.values():
        assert info.error is None
        assert info.partitions == settings.topic_partitions
        assert info.replication_factor == 1


async def test_broker_does_not_create_topics_on_its_own(settings: Settings) -> None:
    """The stack's broker runs with auto.create.topics.enable=false, like production."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_options(settings), request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(f"{settings.app_id}.never-declared", b"x")
    finally:
        await producer.stop()
    infos = await describe_topics(settings)
    assert all(info.error is not None for info in infos)


async def test_a_partition_count_that_differs_from_the_setting_is_reported(
    settings: Settings,
) -> None:
    from service.topics import check_partitions

    await ensure_topics(settings)
    assert await check_partitions(settings) == []
    wrong = settings.model_copy(update={"topic_partitions": settings.topic_partitions + 4})
    problems = await check_partitions(wrong)
    assert len(problems) == len(settings.all_topics)
    assert f"set it to {settings.topic_partitions}" in problems[0]
