"""An asset's history: one entry for every registration change and lifecycle transition
the registry applied to it.

Entries are numbered per asset (`seq`: 1, 2, ... in the order they were applied), so a
reader pages through them newest first by `seq`, and the store keeps only the newest
`MEDIA_HISTORY_MAX_PER_ASSET`. An entry is made only by a decision that changed the
asset and is written with that decision's compare-and-set, so a re-sent event adds none.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from service.domain.enums import AssetStatus, LifecycleAction

DEFAULT_HISTORY_MAX_PER_ASSET = 200
HISTORY_MAX_SETTING = "MEDIA_HISTORY_MAX_PER_ASSET"


class HistoryAction(StrEnum):
    """What happened: the asset's first registration, a later registration that changed
    its facts, or a lifecycle action."""

    REGISTERED = "registered"
    UPDATED = "updated"
    APPROVED = LifecycleAction.APPROVED.value
    PUBLISHED = LifecycleAction.PUBLISHED.value
    ARCHIVED = LifecycleAction.ARCHIVED.value
    DELETED = LifecycleAction.DELETED.value
    USED = LifecycleAction.USED.value


class HistoryEntry(BaseModel):
    """One applied change of an asset."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    seq: int
    event_id: str
    occurred_at: AwareDatetime
    action: HistoryAction
    from_status: AssetStatus | None
    to_status: AssetStatus
    campaign_id: str | None = None
    actor: str | None = None
    library_id: str | None = None


def newest_first(entries: list[HistoryEntry], cursor: int | None, limit: int) -> list[HistoryEntry]:
    """A page of `entries` (any order) newest first, strictly older than `cursor` (a seq)."""
    older = [e for e in entries if cursor is None or e.seq < cursor]
    older.sort(key=lambda e: e.seq, reverse=True)
    return older[:limit]
