"""The demo traffic must stay valid against the contracts, except its deliberate mistakes."""

from __future__ import annotations

from service.config import Settings
from service.demo import DemoPlan, records
from service.domain.decoding import RawMessage, decode
from service.domain.events import (
    AssetLifecycle,
    AssetPerformance,
    AssetRegistered,
    Event,
    LibraryUpdated,
)
from service.errors import DecodeError


def test_demo_records_decode_except_the_broken_ones() -> None:
    settings = Settings()
    models: dict[str, type[Event]] = {
        settings.topic_asset_registered: AssetRegistered,
        settings.topic_asset_lifecycle: AssetLifecycle,
        settings.topic_asset_performance: AssetPerformance,
        settings.topic_library_updated: LibraryUpdated,
    }
    plan = DemoPlan(assets=50)
    failures = []
    for offset, record in enumerate(records(settings, plan)):
        message = RawMessage(record.topic, 0, offset, record.key, record.value)
        try:
            key = "library_id" if record.topic == settings.topic_library_updated else "asset_id"
            decode(
                models[record.topic], message, max_bytes=settings.max_message_bytes, key_field=key
            )
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
            "schema_violation",
        ]
    )


def test_the_demo_names_libraries_and_registers_variants() -> None:
    settings = Settings()
    produced = list(records(settings, DemoPlan(assets=100)))
    named = [r for r in produced if r.topic == settings.topic_library_updated]
    assert len(named) == DemoPlan().libraries - 1 + 1  # all but the last, and a broken one
    variants = [
        AssetRegistered.model_validate_json(r.value)
        for r in produced
        if r.topic == settings.topic_asset_registered and b'"variant_of"' in r.value
    ]
    assert len(variants) >= 5
    assert all(v.variant_of != v.asset_id and v.variant_label for v in variants)
