"""The asset registry's rules: registration, lifecycle transitions and held events.

Every function here is pure: it takes the stored state of one asset and an event,
and returns the next state with the outcome to record. The store applies the
result atomically (compare-and-set on `rev`), so the rules never see a torn state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from service.domain.enums import (
    AssetStatus,
    Channel,
    DeadLetterReason,
    LifecycleAction,
    MediaFormat,
    MediaType,
)
from service.domain.events import AssetLifecycle, AssetRegistered
from service.domain.history import HistoryAction, HistoryEntry

# Which statuses each lifecycle action may be applied from. `used` and a repeated
# `published` record usage without changing the status.
ALLOWED_FROM: dict[LifecycleAction, frozenset[AssetStatus]] = {
    LifecycleAction.APPROVED: frozenset({AssetStatus.DRAFT}),
    LifecycleAction.PUBLISHED: frozenset({AssetStatus.APPROVED, AssetStatus.PUBLISHED}),
    LifecycleAction.ARCHIVED: frozenset({AssetStatus.PUBLISHED}),
    LifecycleAction.DELETED: frozenset(
        {AssetStatus.DRAFT, AssetStatus.APPROVED, AssetStatus.PUBLISHED, AssetStatus.ARCHIVED}
    ),
    LifecycleAction.USED: frozenset({AssetStatus.APPROVED, AssetStatus.PUBLISHED}),
}

STATUS_AFTER: dict[LifecycleAction, AssetStatus | None] = {
    LifecycleAction.APPROVED: AssetStatus.APPROVED,
    LifecycleAction.PUBLISHED: AssetStatus.PUBLISHED,
    LifecycleAction.ARCHIVED: AssetStatus.ARCHIVED,
    LifecycleAction.DELETED: AssetStatus.DELETED,
    LifecycleAction.USED: None,
}

RECORDS_USAGE = frozenset({LifecycleAction.PUBLISHED, LifecycleAction.USED})

DUE_NOW = datetime.fromtimestamp(0, UTC)

# The setting that bounds how many lifecycle events one unregistered asset may hold.
MAX_HELD_SETTING = "MEDIA_MAX_HELD_EVENTS_PER_ASSET"


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SourceRef(_Stored):
    """Where a message came from, with its original bytes for the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key_base64: str | None = None
    value_base64: str

    @property
    def dead_letter_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class Asset(_Stored):
    """A registered asset: the facts of its latest registration and its lifecycle."""

    asset_id: str
    library_id: str
    name: str
    description: str | None = None
    media_type: MediaType
    format: MediaFormat
    width: int
    height: int
    file_size_bytes: int
    content_sha256: str
    tags: list[str] = []
    categories: list[str] = []
    owner: str
    duration_seconds: float | None = None
    bitrate_kbps: int | None = None
    frame_rate: float | None = None
    color_count: int | None = None
    intended_channels: list[Channel] = []
    status: AssetStatus = AssetStatus.DRAFT
    registered_at: AwareDatetime
    updated_at: AwareDatetime
    status_changed_at: AwareDatetime
    usage_count: int = 0
    campaigns_used_in: list[str] = []
    last_used_at: AwareDatetime | None = None
    variant_of: str | None = None  # the original of its family (never a variant itself)
    variant_label: str | None = None

    @property
    def is_deleted(self) -> bool:
        return self.status is AssetStatus.DELETED


class Rejection(_Stored):
    """An event the registry refused, destined for the dead-letter topic."""

    reason_code: DeadLetterReason
    reason: str
    event_id: str
    asset_id: str
    source: SourceRef


class HeldLifecycle(_Stored):
    """A lifecycle event that arrived before its asset's registration."""

    event: AssetLifecycle
    source: SourceRef
    received_at: AwareDatetime


class AssetState(_Stored):
    """Everything stored for one asset id; `rev` orders every change to it."""

    asset_id: str
    rev: int = 0
    asset: Asset | None = None
    held: list[HeldLifecycle] = []
    # Libraries and content hashes the asset has left whose indexes may still list it;
    # the projector removes it there, then clears these lists.
    departed_libraries: list[str] = []
    departed_hashes: list[str] = []
    # Originals whose variant lists may still name the asset (its variant_of changed).
    departed_originals: list[str] = []
    # Dead letters decided by the held-event sweep but not yet acknowledged by Kafka.
    undelivered: list[Rejection] = []
    # How many history entries the asset has had: the last entry's seq.
    history_seq: int = 0


class Outcome(_Stored):
    """What became of one event; stored under its event_id so a redelivery is recognised."""

    result: Literal["applied", "held", "rejected"]
    source: SourceRef
    rejections: list[Rejection] = []


@dataclass(frozen=True)
class Decision:
    """The result of applying one event: the next state and the outcome of each event it settled."""

    state: AssetState
    outcome: Outcome
    settled: dict[str, Outcome] = field(default_factory=dict)
    changed: bool = True
    # The history entries of the changes this decision applied, oldest first.
    history: list[HistoryEntry] = field(default_factory=list)


def register(
    state: AssetState | None,
    event: AssetRegistered,
    source: SourceRef,
    *,
    original: str | None = None,
) -> Decision:
    """Create or update an asset from a registration, then release the events held for it.

    `original` is the original of the family `event.variant_of` belongs to, as the caller
    resolved it (`variants.original_of`); by default the asset `variant_of` names.
    """
    state = state or AssetState(asset_id=event.asset_id)
    current = state.asset
    if current is not None and current.is_deleted:
        rejection = _reject(
            event.event_id,
            event.asset_id,
            source,
            DeadLetterReason.ASSET_DELETED,
            f"asset '{event.asset_id}' was deleted at {current.status_changed_at.isoformat()}; "
            "a deleted asset cannot be registered again: register the content under a new asset_id",
        )
        outcome = Outcome(result="rejected", source=source, rejections=[rejection])
        return Decision(
            state=state, outcome=outcome, settled={event.event_id: outcome}, changed=False
        )

    asset = _asset_from_registration(current, event)
    if event.variant_of is not None and original is not None:
        asset = asset.model_copy(update={"variant_of": original})
    previous_original = None if current is None else current.variant_of
    departed_originals = _departed(state.departed_originals, previous_original, asset.variant_of)
    previous_library = None if current is None else current.library_id
    previous_hash = None if current is None else current.content_sha256
    departed_libraries = _departed(state.departed_libraries, previous_library, asset.library_id)
    departed_hashes = _departed(state.departed_hashes, previous_hash, asset.content_sha256)

    history = [
        HistoryEntry(
            seq=state.history_seq + 1,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            action=HistoryAction.REGISTERED if current is None else HistoryAction.UPDATED,
            from_status=None if current is None else current.status,
            to_status=asset.status,
            library_id=asset.library_id,
        )
    ]
    settled: dict[str, Outcome] = {}
    rejections: list[Rejection] = []
    for held in state.held:
        result = apply_lifecycle(asset, held.event, held.source)
        if isinstance(result, Rejection):
            rejections.append(result)
            settled[held.event.event_id] = Outcome(
                result="rejected", source=held.source, rejections=[result]
            )
        else:
            history.append(
                _transition(state.history_seq + len(history) + 1, asset, result, held.event)
            )
            asset = result
            settled[held.event.event_id] = Outcome(result="applied", source=held.source)

    outcome = Outcome(result="applied", source=source, rejections=rejections)
    settled[event.event_id] = outcome
    new_state = state.model_copy(
        update={
            "rev": state.rev + 1,
            "asset": asset,
            "held": [],
            "departed_libraries": departed_libraries,
            "departed_hashes": departed_hashes,
            "departed_originals": departed_originals,
            "history_seq": state.history_seq + len(history),
        }
    )
    return Decision(state=new_state, outcome=outcome, settled=settled, history=history)


def lifecycle(
    state: AssetState | None,
    event: AssetLifecycle,
    source: SourceRef,
    received_at: datetime,
    *,
    max_held: int,
) -> Decision:
    """Apply a lifecycle event, or hold it until the asset's registration arrives.

    At most `max_held` events are held per asset (each keeps its original bytes in the
    asset's state); one more is rejected, so that a producer that never registers an
    asset cannot grow its state without bound.
    """
    state = state or AssetState(asset_id=event.asset_id)
    if state.asset is None and len(state.held) >= max_held:
        rejection = _reject(
            event.event_id,
            event.asset_id,
            source,
            DeadLetterReason.TOO_MANY_HELD_EVENTS,
            f"asset '{event.asset_id}' is not registered and already has {len(state.held)} "
            f"lifecycle events waiting for its registration, the most {MAX_HELD_SETTING} "
            f"({max_held}) allows; register the asset (its held events then apply) or raise "
            f"{MAX_HELD_SETTING}, then replay this message",
        )
        outcome = Outcome(result="rejected", source=source, rejections=[rejection])
        return Decision(
            state=state, outcome=outcome, settled={event.event_id: outcome}, changed=False
        )
    if state.asset is None:
        held = HeldLifecycle(event=event, source=source, received_at=received_at)
        outcome = Outcome(result="held", source=source)
        new_state = state.model_copy(update={"rev": state.rev + 1, "held": [*state.held, held]})
        return Decision(state=new_state, outcome=outcome, settled={event.event_id: outcome})

    result = apply_lifecycle(state.asset, event, source)
    if isinstance(result, Rejection):
        outcome = Outcome(result="rejected", source=source, rejections=[result])
        return Decision(
            state=state, outcome=outcome, settled={event.event_id: outcome}, changed=False
        )
    outcome = Outcome(result="applied", source=source)
    entry = _transition(state.history_seq + 1, state.asset, result, event)
    new_state = state.model_copy(
        update={"rev": state.rev + 1, "asset": result, "history_seq": entry.seq}
    )
    return Decision(
        state=new_state, outcome=outcome, settled={event.event_id: outcome}, history=[entry]
    )


def apply_lifecycle(asset: Asset, event: AssetLifecycle, source: SourceRef) -> Asset | Rejection:
    """The transition rule: the next asset, or why the action is not allowed now."""
    if asset.is_deleted:
        return _reject(
            event.event_id,
            asset.asset_id,
            source,
            DeadLetterReason.ASSET_DELETED,
            f"cannot apply '{event.action}' to asset '{asset.asset_id}': it was deleted at "
            f"{asset.status_changed_at.isoformat()}",
        )
    allowed = ALLOWED_FROM[event.action]
    if asset.status not in allowed:
        expected = ", ".join(sorted(allowed))
        return _reject(
            event.event_id,
            asset.asset_id,
            source,
            DeadLetterReason.INVALID_TRANSITION,
            f"cannot apply '{event.action}' to asset '{asset.asset_id}' in status "
            f"'{asset.status}': '{event.action}' is allowed only from {expected}",
        )

    update: dict[str, object] = {"updated_at": max(asset.updated_at, event.occurred_at)}
    next_status = STATUS_AFTER[event.action]
    if next_status is not None and next_status is not asset.status:
        update["status"] = next_status
        update["status_changed_at"] = event.occurred_at
    if event.action in RECORDS_USAGE:
        assert event.campaign_id is not None  # guaranteed by the contract
        update["usage_count"] = asset.usage_count + 1
        if event.campaign_id not in asset.campaigns_used_in:
            update["campaigns_used_in"] = [*asset.campaigns_used_in, event.campaign_id]
        if asset.last_used_at is None or event.occurred_at > asset.last_used_at:
            update["last_used_at"] = event.occurred_at
    return asset.model_copy(update=update)


def _transition(seq: int, before: Asset, after: Asset, event: AssetLifecycle) -> HistoryEntry:
    """The history entry of a lifecycle event applied to `before`, giving `after`."""
    return HistoryEntry(
        seq=seq,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        action=HistoryAction(event.action.value),
        from_status=before.status,
        to_status=after.status,
        campaign_id=event.campaign_id,
        actor=event.actor,
    )


def expire_held(
    state: AssetState, now: datetime, hold_for: timedelta
) -> tuple[AssetState, list[Rejection]]:
    """Give up on held events whose registration has not arrived within `hold_for`.

    The expired events move to `undelivered`, the outbox the sweep empties once
    Kafka has acknowledged their dead letters.
    """
    if state.asset is not None or not state.held:
        return state, []
    expired = [h for h in state.held if h.received_at + hold_for <= now]
    if not expired:
        return state, []
    hours = hold_for.total_seconds() / 3600
    rejections = [
        _reject(
            h.event.event_id,
            state.asset_id,
            h.source,
            DeadLetterReason.REGISTRATION_TIMEOUT,
            f"no registration for asset '{state.asset_id}' arrived within {hours:g} h of this "
            f"'{h.event.action}' event (received {h.received_at.isoformat()}); register the "
            "asset, then replay this message",
        )
        for h in expired
    ]
    kept = [h for h in state.held if h not in expired]
    update = {"rev": state.rev + 1, "held": kept, "undelivered": [*state.undelivered, *rejections]}
    return state.model_copy(update=update), rejections


def can_forget(state: AssetState) -> bool:
    """Whether nothing is left of an asset that never registered: no held event and no
    dead letter to send. Its state can then be deleted; a later event starts afresh."""
    return state.asset is None and not state.held and not state.undelivered


def next_deadline(state: AssetState, hold_for: timedelta) -> datetime | None:
    """When the sweep should next look at this asset, if ever.

    Undelivered dead letters are due at once; otherwise the oldest held event of an
    unregistered asset is due when it expires.
    """
    if state.undelivered:
        return DUE_NOW
    if state.asset is not None or not state.held:
        return None
    return min(h.received_at for h in state.held) + hold_for


def _asset_from_registration(current: Asset | None, event: AssetRegistered) -> Asset:
    facts = event.model_dump(exclude={"event_id", "occurred_at", "schema_version"}, mode="python")
    if current is None:
        return Asset(
            **facts,
            registered_at=event.occurred_at,
            updated_at=event.occurred_at,
            status_changed_at=event.occurred_at,
        )
    return current.model_copy(
        update={**facts, "updated_at": max(current.updated_at, event.occurred_at)}
    )


def _departed(already: Iterable[str], previous: str | None, current: str | None) -> list[str]:
    """Places left so far plus the previous one, never the current one."""
    result = [place for place in already if place != current]
    if previous is not None and previous != current and previous not in result:
        result.append(previous)
    return result


def _reject(
    event_id: str, asset_id: str, source: SourceRef, code: DeadLetterReason, reason: str
) -> Rejection:
    return Rejection(
        reason_code=code, reason=reason, event_id=event_id, asset_id=asset_id, source=source
    )
