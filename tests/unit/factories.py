"""Small builders of valid events for the unit tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from service.domain.decoding import RawMessage
from service.domain.events import AssetLifecycle, AssetRegistered
from service.domain.registry import SourceRef

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_ids = count(1)
_offsets = count(0)


def sha(n: int) -> str:
    return f"{n:064x}"


def registration_body(asset_id: str = "a1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": f"reg-{next(_ids)}",
        "occurred_at": T0.isoformat(),
        "schema_version": 1,
        "asset_id": asset_id,
        "library_id": "lib-1",
        "name": "hero.png",
        "media_type": "image",
        "format": "png",
        "width": 1200,
        "height": 628,
        "file_size_bytes": 250_000,
        "content_sha256": sha(1),
        "tags": ["Summer", "sale"],
        "categories": ["campaign"],
        "owner": "design@example.com",
    }
    body.update(overrides)
    return body


def manual_suggestion_body(event_id: str) -> dict[str, Any]:
    """A valid `POST /v1/assets/{id}/suggestions` body, made now."""
    return {
        "event_id": event_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": "remove_bg",
        "priority": "low",
        "description": "Cut the product out for the marketplace listing.",
        "estimated_improvement_pct": 0,
    }


def registration(asset_id: str = "a1", **overrides: Any) -> AssetRegistered:
    return AssetRegistered.model_validate(registration_body(asset_id, **overrides))


def lifecycle(
    action: str, asset_id: str = "a1", minutes: int = 1, campaign_id: str | None = None
) -> AssetLifecycle:
    if campaign_id is None and action in ("published", "used"):
        campaign_id = "c1"
    return AssetLifecycle(
        event_id=f"life-{next(_ids)}",
        occurred_at=T0 + timedelta(minutes=minutes),
        asset_id=asset_id,
        action=action,  # type: ignore[arg-type]
        campaign_id=campaign_id,
    )


def source(topic: str = "media.asset-registered") -> SourceRef:
    return SourceRef(topic=topic, partition=0, offset=next(_offsets), value_base64="e30=")


def raw(value: bytes | dict[str, Any], key: bytes | None = b"a1") -> RawMessage:
    if isinstance(value, dict):
        value = json.dumps(value).encode()
    return RawMessage(topic="t", partition=2, offset=41, key=key, value=value)
