from __future__ import annotations

from datetime import timedelta

import pytest

from service.domain import registry as rules
from service.domain.enums import AssetStatus, DeadLetterReason, LifecycleAction
from service.domain.library import library_entry
from service.domain.registry import Asset, AssetState, Rejection
from tests.unit.factories import T0, lifecycle, registration, sha, source

HOLD = timedelta(hours=24)
MAX_HELD = 100


def registered(**overrides: object) -> AssetState:
    return rules.register(None, registration(**overrides), source()).state


def with_status(status: AssetStatus) -> Asset:
    asset = registered().asset
    assert asset is not None
    return asset.model_copy(update={"status": status})


# --- transitions -------------------------------------------------------------------

VALID = {
    (AssetStatus.DRAFT, LifecycleAction.APPROVED): AssetStatus.APPROVED,
    (AssetStatus.APPROVED, LifecycleAction.PUBLISHED): AssetStatus.PUBLISHED,
    (AssetStatus.PUBLISHED, LifecycleAction.PUBLISHED): AssetStatus.PUBLISHED,
    (AssetStatus.PUBLISHED, LifecycleAction.ARCHIVED): AssetStatus.ARCHIVED,
    (AssetStatus.APPROVED, LifecycleAction.USED): AssetStatus.APPROVED,
    (AssetStatus.PUBLISHED, LifecycleAction.USED): AssetStatus.PUBLISHED,
    **{
        (status, LifecycleAction.DELETED): AssetStatus.DELETED
        for status in AssetStatus
        if status is not AssetStatus.DELETED
    },
}


@pytest.mark.parametrize("status", list(AssetStatus))
@pytest.mark.parametrize("action", list(LifecycleAction))
def test_transition_table(status: AssetStatus, action: LifecycleAction) -> None:
    result = rules.apply_lifecycle(with_status(status), lifecycle(action.value), source())
    expected = VALID.get((status, action))
    if expected is None:
        assert isinstance(result, Rejection)
        code = (
            DeadLetterReason.ASSET_DELETED
            if status is AssetStatus.DELETED
            else DeadLetterReason.INVALID_TRANSITION
        )
        assert result.reason_code is code
        assert f"'{action.value}'" in result.reason
    else:
        assert isinstance(result, Asset)
        assert result.status is expected


def test_invalid_transition_reason_says_what_is_allowed() -> None:
    result = rules.apply_lifecycle(with_status(AssetStatus.DRAFT), lifecycle("archived"), source())
    assert isinstance(result, Rejection)
    assert "in status 'draft'" in result.reason
    assert "allowed only from published" in result.reason


def test_usage_is_recorded_by_published_and_used() -> None:
    asset = with_status(AssetStatus.APPROVED)
    for minutes, (action, campaign) in enumerate(
        [("published", "c1"), ("used", "c2"), ("used", "c1")], start=1
    ):
        result = rules.apply_lifecycle(
            asset, lifecycle(action, minutes=minutes, campaign_id=campaign), source()
        )
        assert isinstance(result, Asset)
        asset = result
    assert asset.usage_count == 3
    assert asset.campaigns_used_in == ["c1", "c2"]
    assert asset.last_used_at == T0 + timedelta(minutes=3)


def test_last_used_at_never_goes_back() -> None:
    asset = with_status(AssetStatus.APPROVED)
    late = rules.apply_lifecycle(asset, lifecycle("used", minutes=10), source())
    assert isinstance(late, Asset)
    early = rules.apply_lifecycle(late, lifecycle("used", minutes=5), source())
    assert isinstance(early, Asset)
    assert early.last_used_at == T0 + timedelta(minutes=10)
    assert early.usage_count == 2


# --- registration ------------------------------------------------------------------


def test_first_registration_creates_a_draft() -> None:
    decision = rules.register(None, registration(), source())
    assert decision.state.rev == 1
    assert decision.state.asset is not None
    assert decision.state.asset.status is AssetStatus.DRAFT
    assert decision.outcome.result == "applied"


def test_reregistration_updates_and_remembers_where_it_was() -> None:
    state = registered()
    moved = rules.register(
        state, registration(library_id="lib-2", content_sha256=sha(2), tags=["new"]), source()
    ).state
    assert moved.rev == 2
    assert moved.asset is not None
    assert moved.asset.library_id == "lib-2"
    assert moved.asset.tags == ["new"]
    assert moved.departed_libraries == ["lib-1"]
    assert moved.departed_hashes == [sha(1)]
    back = rules.register(moved, registration(library_id="lib-1"), source()).state
    assert back.departed_libraries == ["lib-2"]
    assert back.departed_hashes == [sha(2)]


def test_reregistration_keeps_lifecycle_and_usage() -> None:
    state = registered()
    state = rules.lifecycle(state, lifecycle("approved"), source(), T0, max_held=MAX_HELD).state
    state = rules.register(state, registration(name="renamed.png"), source()).state
    assert state.asset is not None
    assert state.asset.status is AssetStatus.APPROVED
    assert state.asset.name == "renamed.png"


def test_deleted_asset_cannot_register_again() -> None:
    state = rules.lifecycle(
        registered(), lifecycle("deleted"), source(), T0, max_held=MAX_HELD
    ).state
    decision = rules.register(state, registration(), source())
    assert not decision.changed
    assert decision.outcome.result == "rejected"
    assert decision.outcome.rejections[0].reason_code is DeadLetterReason.ASSET_DELETED


# --- held lifecycle events ---------------------------------------------------------


def test_lifecycle_before_registration_is_held_then_applied_in_order() -> None:
    first = rules.lifecycle(None, lifecycle("approved", minutes=1), source(), T0, max_held=MAX_HELD)
    assert first.outcome.result == "held"
    second = rules.lifecycle(
        first.state, lifecycle("published", minutes=2), source(), T0, max_held=MAX_HELD
    )
    bad = rules.lifecycle(
        second.state, lifecycle("approved", minutes=3), source(), T0, max_held=MAX_HELD
    )
    assert len(bad.state.held) == 3

    decision = rules.register(bad.state, registration(), source())
    asset = decision.state.asset
    assert asset is not None
    assert asset.status is AssetStatus.PUBLISHED
    assert asset.usage_count == 1
    assert decision.state.held == []
    [rejection] = decision.outcome.rejections
    assert rejection.reason_code is DeadLetterReason.INVALID_TRANSITION
    assert [o.result for o in decision.settled.values()] == [
        "applied",
        "applied",
        "rejected",
        "applied",
    ]


def test_held_events_expire_after_the_hold_time() -> None:
    state = rules.lifecycle(None, lifecycle("approved"), source(), T0, max_held=MAX_HELD).state
    state = rules.lifecycle(
        state, lifecycle("deleted"), source(), T0 + timedelta(hours=2), max_held=MAX_HELD
    ).state
    assert rules.next_deadline(state, HOLD) == T0 + HOLD

    unchanged, none = rules.expire_held(state, T0 + HOLD - timedelta(seconds=1), HOLD)
    assert none == [] and unchanged is state

    expired_state, expired = rules.expire_held(state, T0 + HOLD, HOLD)
    assert [r.reason_code for r in expired] == [DeadLetterReason.REGISTRATION_TIMEOUT]
    assert "within 24 h" in expired[0].reason
    assert len(expired_state.held) == 1
    assert expired_state.undelivered == expired
    assert expired_state.rev == state.rev + 1
    assert rules.next_deadline(expired_state, HOLD) == rules.DUE_NOW
    emptied = expired_state.model_copy(update={"undelivered": []})
    assert rules.next_deadline(emptied, HOLD) == T0 + timedelta(hours=2) + HOLD


def test_registered_asset_has_no_deadline() -> None:
    assert rules.next_deadline(registered(), HOLD) is None


def hold(count: int, cap: int) -> AssetState:
    state: AssetState | None = None
    for minute in range(count):
        decision = rules.lifecycle(
            state, lifecycle("approved", minutes=minute), source(), T0, max_held=cap
        )
        assert decision.outcome.result == "held"
        state = decision.state
    assert state is not None
    return state


def test_held_events_are_capped_per_asset_and_the_reason_names_the_setting() -> None:
    full = hold(3, cap=3)
    event = lifecycle("published", minutes=9)
    decision = rules.lifecycle(full, event, source(), T0, max_held=3)
    assert not decision.changed and decision.state is full
    assert decision.outcome.result == "rejected"
    assert decision.settled == {event.event_id: decision.outcome}
    [rejection] = decision.outcome.rejections
    assert rejection.reason_code is DeadLetterReason.TOO_MANY_HELD_EVENTS
    assert rejection.event_id == event.event_id and rejection.asset_id == "a1"
    assert "already has 3 lifecycle events waiting for its registration" in rejection.reason
    assert "MEDIA_MAX_HELD_EVENTS_PER_ASSET (3)" in rejection.reason
    assert "replay this message" in rejection.reason


def test_the_cap_counts_what_is_held_now() -> None:
    one_left = hold(2, cap=3)
    assert rules.lifecycle(
        one_left, lifecycle("used"), source(), T0, max_held=3
    ).outcome.result == ("held")
    # once expired (or applied), held events no longer count against the cap
    expired, _ = rules.expire_held(hold(3, cap=3), T0 + HOLD, HOLD)
    emptied = expired.model_copy(update={"undelivered": []})
    again = rules.lifecycle(emptied, lifecycle("approved"), source(), T0 + HOLD, max_held=3)
    assert again.outcome.result == "held"


def test_the_cap_does_not_apply_to_a_registered_asset() -> None:
    state = registered()
    for minute in range(3):
        decision = rules.lifecycle(
            state, lifecycle("used", minutes=minute), source(), T0, max_held=1
        )
        assert decision.outcome.result in ("applied", "rejected")
        assert all(
            r.reason_code is not DeadLetterReason.TOO_MANY_HELD_EVENTS
            for r in decision.outcome.rejections
        )
        state = decision.state


def test_only_an_unregistered_asset_with_nothing_left_can_be_forgotten() -> None:
    held = hold(2, cap=10)
    assert not rules.can_forget(held)
    expired, rejections = rules.expire_held(held, T0 + HOLD, HOLD)
    assert len(rejections) == 2 and expired.held == []
    assert not rules.can_forget(expired)  # its dead letters are not sent yet
    assert rules.can_forget(expired.model_copy(update={"undelivered": []}))
    assert not rules.can_forget(registered())


# --- library view ------------------------------------------------------------------


def test_library_entry() -> None:
    asset = with_status(AssetStatus.PUBLISHED)
    entry = library_entry(asset)
    assert entry is not None and entry.status is AssetStatus.PUBLISHED
    assert library_entry(with_status(AssetStatus.DELETED)) is None
