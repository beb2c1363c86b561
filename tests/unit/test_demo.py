"""The demo traffic must stay valid against the contracts, except its deliberate mistakes."""

from __future__ import annotations

from service.config import Settings
from service.demo import DemoPlan, records
from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetLifecycle, AssetPerformance, AssetRegistered, Event
from service.errors import DecodeError


def test_demo_records_decode_except_the_broken_ones() -> None:
    settings = Settings()
    models: dict[str, type[Event]] = {
        settings.topic_asset_registered: AssetRegistered,
        settings.topic_asset_lifecycle: AssetLifecycle,
        settings.topic_asset_performance: AssetPerformance,
    }
    plan = DemoPlan(assets=50)
    failures = []
    for offset, record in enumerate(records(settings, plan)):
        message = RawMessage(record.topic, 0, offset, record.key, record.value)
        try:
            decode(models[record.topic], message, max_bytes=settings.max_message_bytes)
        except DecodeError as error:
            failures.append(error.code.value)
    assert sorted(failures) == sorted(
        [
            "invalid_json",
            "invalid_utf8",
            "schema_violation",
            "unsupported_schema_version",
            "invalid_json",
            "key_mismatch",
        ]
    )
