"""When a suggestion may be sent again: the rules that keep downstream teams out of noise.

One state per (asset, type, channel). While a suggestion is open it is not sent
again unless its priority rises, or its evidence changed materially and a cooldown
passed since it was last sent. A dismissed one stays quiet for seven cooldowns; an
applied one for one cooldown (its replacement gets its own evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from service.domain.enums import Priority

PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
DISMISSED_COOLDOWNS = 7


class Status(StrEnum):
    OPEN = "open"
    APPLIED = "applied"
    DISMISSED = "dismissed"


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
) -> bool:
    if previous is None:
        return True
    if previous.status is Status.DISMISSED:
        closed = previous.closed_at or previous.sent_at
        return now >= closed + DISMISSED_COOLDOWNS * cooldown
    if previous.status is Status.APPLIED:
        closed = previous.closed_at or previous.sent_at
        return now >= closed + cooldown
    if PRIORITY_RANK[priority] > PRIORITY_RANK[previous.priority]:
        return True
    changed = materially_changed(previous.estimated_improvement_pct, estimated_improvement_pct)
    return changed and now >= previous.sent_at + cooldown
