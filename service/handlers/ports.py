"""The ports of the stream handlers: exactly what they ask of Redis, and their clock.

Each Protocol names the methods a handler calls, with the semantics the handler relies
on. The Redis adapters of service/store/ satisfy them structurally (nothing inherits
from them); tests/fakes.py holds in-memory implementations, and tests/contract/ runs
the same tests against both, so a fake cannot drift from the Lua scripts unnoticed.
The producer port is `Producer` in service/handlers/emit.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from service.domain.enums import Channel, DeadLetterReason, SuggestionType
from service.domain.history import HistoryEntry
from service.domain.libraries import LibraryInfo
from service.domain.library import LibraryEntry
from service.domain.metrics import Totals, WindowTotals
from service.domain.registry import Asset, AssetState, Outcome
from service.domain.windows import Resolution, Window
from service.store.leaderboards import DirtySet, Placement
from service.store.metrics import Applied, PerfRow
from service.store.positions import Advanced
from service.store.registry import HashPlacement, Loaded
from service.store.suggestions import SuggestionRecord

Clock = Callable[[], datetime]
"""The wall clock: an aware datetime (UTC)."""

OnChange = Callable[[list[str]], Awaitable[None]]
"""Told the ids of assets whose library, status or existence may have changed."""

OnRegistered = Callable[[Asset], Awaitable[object]]
"""Told each asset a registration applied (the file rules of the suggestions)."""


def utc_now() -> datetime:
    """The wall clock of a running worker."""
    return datetime.now(UTC)


async def ignore_change(asset_ids: list[str]) -> None:
    """An OnChange for a handler whose changes nobody follows."""


async def ignore_registered(asset: Asset) -> None:
    """An OnRegistered for a handler whose registrations nobody follows."""


class LibraryWrites(Protocol):
    """The libraries' facts as LibraryHandler uses them (service/store/libraries.py)."""

    async def update(self, info: LibraryInfo) -> bool:
        """Store `info` if it is later than the stored version (newest updated_at, then
        event_id); True when it was."""

    async def remember(self, library_id: str) -> None:
        """List the library (idempotent)."""


class RegistryWrites(Protocol):
    """The asset registry as RegistryHandler uses it (service/store/registry.py)."""

    async def load(self, asset_id: str, event_id: str | None = None) -> Loaded:
        """The state (None when unknown) and the recorded outcome of `event_id`, if seen."""

    async def commit(
        self,
        asset_id: str,
        expected_rev: int,
        state: AssetState | None,
        settled: Mapping[str, Outcome],
        history: Sequence[HistoryEntry] = (),
    ) -> bool:
        """Compare-and-set: write `state` (None: keep it), its new history entries (kept
        newest first, bounded per asset) and the outcomes if the stored rev (0 when unknown)
        is still `expected_rev`; False, writing nothing, otherwise."""

    async def replace(self, state: AssetState) -> bool:
        """Rewrite the state at its own rev (compare-and-set at `state.rev`)."""

    async def forget(self, asset_id: str, expected_rev: int) -> bool:
        """Compare-and-delete the state of an unregistered asset holding nothing; the seen
        outcomes stay. False when the rev moved on or the state is gone; an error for a
        registered asset or one with held events."""

    async def project_library(
        self, library_id: str, asset_id: str, rev: int, entry: LibraryEntry | None
    ) -> bool:
        """Move the asset's entry (None: out of the library); ignored (False) unless `rev`
        is newer than the stored one."""

    async def project_variant(self, original_id: str, asset_id: str, present: bool) -> None:
        """List the asset among the original's variants (present) or take it off;
        idempotent."""

    async def project_hash(
        self, content_sha256: str, asset_id: str, rev: int, library_id: str | None
    ) -> HashPlacement:
        """Place the asset in the content's index (None: remove it) and name the assets
        placed before it; ignored (applied False) when `rev` is older than the stored one."""

    async def mark_announced(self, content_sha256: str, asset_id: str) -> None:
        """Remember that the asset's duplicates-detected event was acknowledged."""

    async def schedule_held(self, asset_id: str, deadline: datetime) -> None:
        """Set (or move) the moment the sweep should next look at the asset."""

    async def unschedule_held(self, asset_id: str, due_by: datetime | None = None) -> None:
        """Take the asset off the schedule; with `due_by`, only if its deadline passed by then."""

    async def due_held(self, now: datetime, limit: int) -> list[str]:
        """Up to `limit` assets whose deadline is at or before `now`, earliest first."""


class MetricsWrites(Protocol):
    """The metrics write side as PerformanceHandler uses it (service/store/metrics.py)."""

    async def position(self, partition: int) -> int:
        """The offset of the partition's last applied event, or -1."""

    async def apply(
        self,
        partition: int,
        first: int,
        last: int,
        rows: Sequence[PerfRow],
        now: float,
        *,
        expected: int = -1,
    ) -> Applied:
        """One atomic step (`MetricsStore.apply`): BEHIND when the position is below `expected`,
        COVERED when it covers `last`, STRADDLES when it lies in [first, last), OVERFLOW
        when a lifetime counter would pass its limit; otherwise APPLIED, each event id
        counted once, the position moved to `last`."""

    async def point(self, partition: int, asset_ids: Sequence[str]) -> None:
        """Record which partition holds each asset's metrics (idempotent)."""

    def reset(self, partitions: Iterable[int] | None = None) -> None:
        """Forget what is known of the partitions (all when None) from earlier steps."""


class Positions(Protocol):
    """Positions of the per-message input partitions (service/store/positions.py)."""

    async def get(self, topic: str, partition: int) -> int:
        """The partition's position, or -1."""

    async def advance(self, topic: str, partition: int, expected: int, offset: int) -> Advanced:
        """BEHIND when the position is below `expected`, COVERED when it is at or past
        `offset`, otherwise MOVED to `offset`; with the position after the call."""


class DeadLetterCounts(Protocol):
    """Per-reason dead-letter counters (service/store/dead_letters.py)."""

    async def count(self, reason: DeadLetterReason, dead_letter_id: str) -> bool:
        """Count one dead letter; False, counting nothing, for an id counted before."""


class SuggestionRecords(Protocol):
    """Sent suggestions as SuggestionEngine uses them (service/store/suggestions.py)."""

    async def get(
        self, asset_id: str, suggestion_type: SuggestionType, channel: Channel | None
    ) -> SuggestionRecord | None:
        """The last record of the asset's (type, channel) slot, or None."""

    async def put(self, record: SuggestionRecord) -> None:
        """Write the record into its slot (replacing the one before), name its asset by its
        suggestion id and list it in its library by time sent."""

    async def by_id(self, suggestion_id: str) -> SuggestionRecord | None:
        """The record of a suggestion id, in its slot or retired; None when unknown."""

    async def for_asset(self, asset_id: str) -> list[SuggestionRecord]:
        """The record of each of the asset's slots."""

    async def retire(self, record: SuggestionRecord) -> None:
        """Keep a record its slot no longer holds, found by id."""

    async def link_variant(
        self, new_asset_id: str, suggestion_id: str, original_id: str | None = None
    ) -> None:
        """Remember that the new asset is the variant an applied suggestion asked for
        (and list it among `original_id`'s variants when given)."""

    async def variant_of(self, asset_id: str) -> str | None:
        """The suggestion id the asset is a variant of, or None."""

    async def record_realised(self, record: SuggestionRecord) -> None:
        """Put the record, and list it among its type's realised suggestions."""


class PerformanceRules(Protocol):
    """The performance rules as LeaderboardRefresher calls them (SuggestionEngine)."""

    async def on_totals(
        self, asset: Asset, totals: Mapping[Window, Mapping[Channel, Totals]]
    ) -> object:
        """Evaluate the asset's rules from its totals per window and channel; called for
        every recomputed asset, archived and deleted ones included (their open
        suggestions expire)."""


class BoardWrites(Protocol):
    """The leaderboards as LeaderboardRefresher keeps them (service/store/leaderboards.py)."""

    async def swept_hour(self) -> int | None:
        """The last hour (epoch hours) at which every ranked asset was queued, or None."""

    async def set_swept_hour(self, hour: int) -> None:
        """Remember the hour of the last sweep."""

    async def mark_dirty(self, asset_ids: Sequence[str]) -> None:
        """Queue assets in the registry's dirty set."""

    async def mark_moved(self, asset_ids: Sequence[str]) -> None:
        """Queue assets in the dirty set of moved windows."""

    async def claim(self, which: DirtySet, count: int) -> list[str]:
        """Claim up to `count` distinct assets of one dirty set: they leave it, so that a
        mark set while they are being refreshed stays there. A claim not released by
        `done` is given out again first."""

    async def done(self, which: DirtySet, asset_ids: Sequence[str]) -> None:
        """Release refreshed assets from their claim."""

    async def placed(self, asset_ids: Sequence[str]) -> list[str | None]:
        """The library whose boards hold each asset's entries (None: none)."""

    async def place(
        self, asset_id: str, library_id: str | None, previous: str | None, boards: Placement
    ) -> None:
        """Remove the asset's entries from `previous` when it is not `library_id`; write
        (or, at zero, remove) its entry in every board of `library_id` (None: in none)."""

    async def ranked_assets(self, window: Window) -> set[str]:
        """Every asset with an entry in a board of the window for all channels."""


class RefreshLease(Protocol):
    """Who refreshes the boards now (service/store/leases.py)."""

    async def hold(self, token: str, seconds: float) -> bool:
        """Take the lease when free, or extend it when `token` holds it; False when
        another token holds it."""

    async def release(self, token: str) -> None:
        """Give the lease up, if `token` holds it."""


class MetricsReads(Protocol):
    """The metrics as LeaderboardRefresher uses them (service/store/metrics.py): the reads,
    and forgetting a deleted asset's counters that never expire."""

    async def partitions_of(self, asset_ids: Sequence[str]) -> list[int | None]:
        """The partition holding each asset's metrics (None: no event of it applied)."""

    async def totals_by_window(
        self, placed: Sequence[tuple[str, int]], windows: Sequence[Window], now: float
    ) -> list[dict[Window, WindowTotals]]:
        """For each (asset, its partition), its sums over each window at `now`."""

    async def forget(self, asset_id: str, partition: int) -> None:
        """Remove the asset's lifetime counters and its pointer (idempotent); its buckets
        expire on their own."""

    async def counted_assets(self, partition: int, resolution: Resolution, start: int) -> set[str]:
        """The assets with counts in one bucket of the partition (none once it expired)."""


class AssetReads(Protocol):
    """The registry read as LeaderboardRefresher uses it (service/store/registry.py)."""

    async def assets(self, asset_ids: list[str]) -> list[AssetState]:
        """The states of the known assets among `asset_ids` (unknown ones are left out)."""
