from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from service.domain.events import (
    MAX_METRIC_DELTA,
    AssetLifecycle,
    AssetPerformance,
    AssetRegistered,
    SuggestionFeedback,
    normalise_labels,
)
from tests.unit.factories import T0, registration, registration_body


def test_tags_and_categories_are_normalised_and_deduplicated() -> None:
    event = registration(tags=[" Summer ", "summer", "Big  Sale"], categories=["A", "a"])
    assert event.tags == ["summer", "big sale"]
    assert event.categories == ["a"]


def test_normalise_keeps_first_seen_order() -> None:
    assert normalise_labels(["B", "a", "b", "A"]) == ["b", "a"]


@pytest.mark.parametrize(
    ("media_type", "fmt", "ok"),
    [
        ("image", "png", True),
        ("banner", "avif", True),
        ("video", "mp4", True),
        ("gif", "gif", True),
        ("gif", "mp4", True),
        ("video", "png", False),
        ("image", "mov", False),
        ("icon", "mkv", False),
    ],
)
def test_format_must_fit_media_type(media_type: str, fmt: str, ok: bool) -> None:
    body = registration_body(media_type=media_type, format=fmt)
    if ok:
        registration(**body)
    else:
        with pytest.raises(ValidationError, match="is not valid for media_type"):
            registration(**body)


@pytest.mark.parametrize(
    "override",
    [
        {"content_sha256": "A" * 64},
        {"content_sha256": "a" * 63},
        {"width": 0},
        {"file_size_bytes": 0},
        {"asset_id": ""},
        {"asset_id": "has space"},
        {"asset_id": "x" * 129},
        {"event_id": ""},
        {"occurred_at": "2026-03-01T12:00:00"},
        {"unknown_field": 1},
        {"tags": ["x" * 65]},
        {"tags": [" "]},
    ],
)
def test_registration_rejects(override: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        registration(**override)


def test_occurred_at_keeps_its_offset() -> None:
    event = registration(occurred_at="2026-03-01T14:00:00+02:00")
    assert event.occurred_at == T0


@pytest.mark.parametrize("action", ["published", "used"])
def test_campaign_required_for_usage(action: str) -> None:
    with pytest.raises(ValidationError, match="campaign_id is required"):
        AssetLifecycle(event_id="e", occurred_at=T0, asset_id="a", action=action)  # type: ignore[arg-type]


def test_feedback_new_asset_only_when_applied() -> None:
    with pytest.raises(ValidationError, match="only allowed when outcome is 'applied'"):
        SuggestionFeedback(
            event_id="e",
            occurred_at=T0,
            suggestion_id="s",
            asset_id="a",
            outcome="dismissed",  # type: ignore[arg-type]
            new_asset_id="b",
        )


def test_the_largest_metric_delta_keeps_lua_sums_exact() -> None:
    # Readers sum in Lua, in doubles: 100,000 events at the maximum stay exact.
    assert MAX_METRIC_DELTA * 100_000 < 2**53


@pytest.mark.parametrize("value", [MAX_METRIC_DELTA + 1, -1, "5", 5.0, True, None, 2**64], ids=repr)
def test_performance_counts_are_strict_and_bounded(value: object) -> None:
    body = {
        "event_id": "p1",
        "occurred_at": "2026-03-01T12:00:00Z",
        "asset_id": "a1",
        "campaign_id": "c1",
        "channel": "web",
    }
    assert AssetPerformance.model_validate_json(json.dumps({**body, "clicks": MAX_METRIC_DELTA}))
    with pytest.raises(ValidationError, match="clicks"):
        AssetPerformance.model_validate_json(json.dumps({**body, "clicks": value}))


@pytest.mark.parametrize("when", [5, 1.7e9, 0])
def test_occurred_at_must_be_text_not_seconds(when: object) -> None:
    body = json.dumps(registration_body("a1", occurred_at=when))
    with pytest.raises(ValidationError, match="RFC 3339"):
        AssetRegistered.model_validate_json(body)
