from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.enums import Priority
from service.domain.suggestion_state import SentState, Status, materially_changed, should_send

T0 = datetime(2026, 5, 1, tzinfo=UTC)
DAY = timedelta(hours=24)


def sent(
    status: Status = Status.OPEN,
    priority: Priority = Priority.MEDIUM,
    pct: float = 40.0,
    closed: datetime | None = None,
) -> SentState:
    return SentState("sug-1", status, priority, pct, T0, closed)


def test_first_time_is_sent() -> None:
    assert should_send(None, Priority.LOW, 10, T0, DAY)


@pytest.mark.parametrize(
    ("priority", "pct", "after", "expected"),
    [
        (Priority.MEDIUM, 40, timedelta(hours=1), False),  # same evidence, open
        (Priority.MEDIUM, 40, 2 * DAY, False),  # still nothing new
        (Priority.MEDIUM, 60, timedelta(hours=1), False),  # changed, but within cooldown
        (Priority.MEDIUM, 60, DAY, True),  # changed and cooled down
        (Priority.MEDIUM, 44, 2 * DAY, False),  # a small move is not material
        (Priority.HIGH, 40, timedelta(minutes=5), True),  # priority rose: at once
        (Priority.LOW, 10, 2 * DAY, True),  # lower priority but material change, cooled
    ],
)
def test_open_suggestions_stay_quiet_unless_something_matters(
    priority: Priority, pct: float, after: timedelta, expected: bool
) -> None:
    assert should_send(sent(), priority, pct, T0 + after, DAY) is expected


def test_dismissed_waits_seven_cooldowns_and_applied_one() -> None:
    dismissed = sent(Status.DISMISSED, closed=T0 + DAY)
    assert not should_send(dismissed, Priority.HIGH, 90, T0 + 7 * DAY, DAY)
    assert should_send(dismissed, Priority.HIGH, 90, T0 + 8 * DAY, DAY)
    applied = sent(Status.APPLIED, closed=T0)
    assert not should_send(applied, Priority.MEDIUM, 40, T0 + timedelta(hours=23), DAY)
    assert should_send(applied, Priority.MEDIUM, 40, T0 + DAY, DAY)


def test_material_change() -> None:
    assert not materially_changed(40, 44.9)
    assert materially_changed(40, 50)
    assert not materially_changed(2, 6)  # under 5 points
    assert materially_changed(2, 7)


def test_another_suggestion_for_an_open_slot_is_sent_at_once() -> None:
    """The trigger changed (the file was replaced): the new suggestion supersedes the
    open one without waiting for a cooldown or a higher priority."""
    assert should_send(sent(), Priority.LOW, 0, T0, DAY, "sug-2")
    assert not should_send(sent(), Priority.LOW, 0, T0, DAY, "sug-1")
    dismissed = sent(Status.DISMISSED, closed=T0)
    assert not should_send(dismissed, Priority.HIGH, 90, T0 + DAY, DAY, "sug-2")
