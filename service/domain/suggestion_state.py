"""When a suggestion may be sent again: the rules that keep downstream teams out of noise.

One state per (asset, type, channel). While a suggestion is open it is not sent
again unless its priority rises, or its evidence changed materially and a cooldown
passed since it was last sent. A dismissed one stays quiet for seven cooldowns; an
applied or expired one for one cooldown (its replacement gets its own evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from service.domain.enums import Priority, SuggestionState

PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
DISMISSED_COOLDOWNS = 7


class Status(StrEnum):
    OPEN = "open"
    APPLIED = "applied"
    DISMISSED = "dismissed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


def next_event_state(previous: Status | None, same_suggestion: bool) -> SuggestionState:
    """The state an event sent for a draft announces: `updated` when it revises a
    suggestion still open, `open` otherwise (new, or opened again after it closed)."""
    if previous is Status.OPEN and same_suggestion:
        return SuggestionState.UPDATED
    return SuggestionState.OPEN


@dataclass(frozen=True, slots=True)
class SentState:
    """What was last sent for one (asset, type, channel), and what became of it."""

    suggestion_id: str
    status: Status
    priority: Priority
    estimated_improvement_pct: float
    sent_at: datetime
    closed_at: datetime | None = None


def materially_changed(before: float, after: float) -> bool:
    """The estimate moved by at least 5 points and a quarter of itself."""
    return abs(after - before) >= max(5.0, 0.25 * abs(before))


def should_send(
    previous: SentState | None,
    priority: Priority,
    estimated_improvement_pct: float,
    now: datetime,
    cooldown: timedelta,
    suggestion_id: str | None = None,
) -> bool:
    """Whether a draft is sent, given what was last sent for its (type, channel). A draft
    with another `suggestion_id` than an open one (its trigger changed: e.g. the file was
    replaced) is sent at once, superseding it."""
    if previous is None:
        return True
    if previous.status is Status.DISMISSED:
        closed = previous.closed_at or previous.sent_at
        return now >= closed + DISMISSED_COOLDOWNS * cooldown
    if previous.status in (Status.APPLIED, Status.EXPIRED, Status.SUPERSEDED):
        closed = previous.closed_at or previous.sent_at
        return now >= closed + cooldown
    if suggestion_id is not None and suggestion_id != previous.suggestion_id:
        return True
    if PRIORITY_RANK[priority] > PRIORITY_RANK[previous.priority]:
        return True
    changed = materially_changed(previous.estimated_improvement_pct, estimated_improvement_pct)
    return changed and now >= previous.sent_at + cooldown
