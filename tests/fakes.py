"""In-memory implementations of the handlers' ports (service/handlers/ports.py).

Each fake keeps the semantics of its Redis adapter and Lua script, the ones the handlers
rely on: compare-and-set on `rev`, projections ignored when not newer, the position
checks of the metrics step and of `position_advance.lua`, de-duplication of event ids,
the held-event schedule, counting a dead letter once per id, windows summed from the
buckets they cover, the dirty sets the board refresh drains, board entries moved with
their asset, a suggestion's slot holding only its last record. tests/contract/ runs the
same tests against a fake and against Redis. What the fakes leave out: time-to-live of
keys (seen hashes, buckets, markers) and the validation of every argument beyond what a
test could get wrong.

Their state is plain attributes, so a test can look at it or change it (Redis that lost
writes is a position set back by hand).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.domain import leaderboard as lb
from service.domain.enums import Channel, DeadLetterReason, SuggestionType
from service.domain.events import MAX_METRIC_DELTA
from service.domain.history import DEFAULT_HISTORY_MAX_PER_ASSET, HistoryEntry, newest_first
from service.domain.labels import Pool
from service.domain.libraries import LibraryInfo, wins
from service.domain.library import (
    LibraryEntry,
    LibraryStats,
    TextQuery,
    most_used,
    prefixes,
    wasted_bytes,
)
from service.domain.metrics import ZERO, Totals, WindowTotals, sum_totals
from service.domain.registry import AssetState, Outcome
from service.domain.windows import (
    LONGEST_WINDOW_SECONDS,
    RESOLUTIONS,
    Resolution,
    Window,
    window_buckets,
)
from service.store.codecs import library_stats, window_totals
from service.store.leaderboards import (
    REGISTRY,
    TOP_KEPT,
    WINDOWS,
    DirtySet,
    Placement,
    Rollup,
)
from service.store.metrics import MAX_SUM, Applied, ApplyStatus, PerfRow, position_status
from service.store.positions import Advance, Advanced
from service.store.registry import DuplicateEntry, HashPlacement, Loaded
from service.store.seen_ids import GENERATION_SECONDS, SEEN_SECONDS
from service.store.suggestions import SuggestionRecord, index_facets, index_member, slot

METRICS = ("impressions", "clicks", "engagements", "conversions", "shares", "comments")


class ScriptError(Exception):
    """What a Lua script's error reply is to the fakes (Redis raises ResponseError)."""


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the registry ----------------------------------------------------------------------


@dataclass
class _HashIndex:
    seq: int = 0
    order: dict[str, int] = field(default_factory=dict)  # asset -> order of first placement
    revs: dict[str, int] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)


class FakeRegistryStore:
    """RegistryStore in memory: documents kept as JSON, as Redis keeps them."""

    def __init__(self, history_max: int = DEFAULT_HISTORY_MAX_PER_ASSET) -> None:
        self.history_max = history_max
        self.histories: dict[str, list[HistoryEntry]] = defaultdict(list)
        self.states: dict[str, tuple[int, str]] = {}  # asset -> (rev, AssetState JSON)
        self.seen: dict[str, dict[str, str]] = defaultdict(dict)  # asset -> event -> Outcome
        self.members: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.indexes: dict[str, set[str]] = defaultdict(set)  # "<library>/<index>" -> assets
        self.usage: dict[str, dict[str, int]] = defaultdict(dict)  # library -> asset -> count
        self.variant_sets: dict[str, set[str]] = defaultdict(set)  # original -> variants
        # library -> content -> [copies, their bytes]
        self.contents: dict[str, dict[str, list[int]]] = defaultdict(dict)
        self.hashes: dict[str, _HashIndex] = defaultdict(_HashIndex)
        self.schedule: dict[str, int] = {}  # asset -> deadline, epoch milliseconds

    # asset state

    async def load(self, asset_id: str, event_id: str | None = None) -> Loaded:
        stored = self.states.get(asset_id)
        seen = None if event_id is None else self.seen[asset_id].get(event_id)
        return Loaded(
            state=None if stored is None else AssetState.model_validate_json(stored[1]),
            seen=None if seen is None else Outcome.model_validate_json(seen),
        )

    async def commit(
        self,
        asset_id: str,
        expected_rev: int,
        state: AssetState | None,
        settled: Mapping[str, Outcome],
        history: Sequence[HistoryEntry] = (),
    ) -> bool:
        if state is not None and state.rev < expected_rev:
            raise ScriptError("ERR bad input: ARGV[2] new rev must be at least ARGV[1]")
        if history and state is None:
            raise ScriptError("ERR bad input: ARGV[6] history entries need a new state")
        current = self.states[asset_id][0] if asset_id in self.states else 0
        if current != expected_rev:
            return False
        if state is not None:
            self.states[asset_id] = (state.rev, state.model_dump_json())
        if history:
            kept = sorted([*self.histories[asset_id], *history], key=lambda e: e.seq)
            self.histories[asset_id] = kept[-self.history_max :]
        for event_id, outcome in settled.items():
            self.seen[asset_id][event_id] = outcome.model_dump_json()
        return True

    async def replace(self, state: AssetState) -> bool:
        return await self.commit(state.asset_id, state.rev, state, {})

    async def most_used(self, library_id: str, limit: int) -> list[tuple[str, int]]:
        return most_used(self.usage.get(library_id, {}), limit)

    async def redundant(
        self, library_id: str, offset: int, limit: int
    ) -> list[tuple[str, int, int]]:
        held = [
            (sha, n, wasted_bytes(n, b))
            for sha, (n, b) in self.contents.get(library_id, {}).items()
            if n > 1
        ]
        held.sort(key=lambda h: (h[2], h[0]), reverse=True)  # ZREVRANGE: ties by member
        return held[offset : offset + limit]

    async def library_page(
        self,
        library_id: str,
        *,
        tags: list[str],
        categories: list[str],
        status: str | None,
        cursor: str | None,
        limit: int,
        text: TextQuery | None = None,
    ) -> list[str]:
        names = ["assets", *(f"tag:{t}" for t in tags), *(f"category:{c}" for c in categories)]
        if status is not None:
            names.append(f"status:{status}")
        if text is not None:
            names += [f"word:{w}" for w in text.whole]
            if text.prefix is not None:
                names.append(f"prefix:{text.prefix}")
        found = set.intersection(*(self.indexes.get(f"{library_id}/{n}", set()) for n in names))
        return sorted(a for a in found if cursor is None or a > cursor)[:limit]

    async def history(self, asset_id: str, *, before: int | None, limit: int) -> list[HistoryEntry]:
        return newest_first(self.histories.get(asset_id, []), before, limit)

    async def forget(self, asset_id: str, expected_rev: int) -> bool:
        if expected_rev < 1:
            raise ScriptError("ERR bad input: ARGV[1] expected rev must be an integer in [1, 2^53)")
        stored = self.states.get(asset_id)
        if stored is None or stored[0] != expected_rev:
            return False
        state = AssetState.model_validate_json(stored[1])
        if state.asset is not None:
            raise ScriptError("ERR not forgettable: the asset is registered")
        if state.held:
            raise ScriptError("ERR not forgettable: lifecycle events are held for it")
        del self.states[asset_id]
        return True

    # projections

    async def project_library(
        self, library_id: str, asset_id: str, rev: int, entry: LibraryEntry | None
    ) -> bool:
        members = self.members[library_id]
        old = members.get(asset_id)
        if old is not None and old["rev"] >= rev:
            return False
        new: dict[str, Any] = {"rev": rev}
        if entry is not None:
            new["entry"] = entry.model_dump(mode="json")
        if old is not None and "entry" in old:
            self._move(library_id, asset_id, old["entry"], -1)
        if "entry" in new:
            self._move(library_id, asset_id, new["entry"], 1)
        members[asset_id] = new
        return True

    def _move(self, library_id: str, asset_id: str, entry: dict[str, Any], sign: int) -> None:
        stats = self.stats[library_id]
        stats["assets"] += sign
        stats["bytes"] += sign * entry["file_size_bytes"]
        stats[f"media_type:{entry['media_type']}"] += sign
        stats[f"status:{entry['status']}"] += sign
        sha = entry.get("content_sha256")
        if sha is not None:
            counts = self.contents[library_id].setdefault(sha, [0, 0])
            counts[0] += sign
            counts[1] += sign * entry["file_size_bytes"]
            if counts[0] <= 0:
                del self.contents[library_id][sha]
        usage = self.usage[library_id]
        usage.pop(asset_id, None)
        if sign > 0 and entry.get("usage_count", 0) > 0:
            usage[asset_id] = entry["usage_count"]
        names = ["assets", f"status:{entry['status']}"]
        names += [f"tag:{t}" for t in entry["tags"]]
        names += [f"category:{c}" for c in entry["categories"]]
        for word in entry.get("words", []):
            names.append(f"word:{word}")
            names += [f"prefix:{prefix}" for prefix in prefixes(word)]
        for name in names:
            index = self.indexes[f"{library_id}/{name}"]
            if sign > 0:
                index.add(asset_id)
            else:
                index.discard(asset_id)

    async def project_variant(self, original_id: str, asset_id: str, present: bool) -> None:
        if present:
            self.variant_sets[original_id].add(asset_id)
        else:
            self.variant_sets[original_id].discard(asset_id)

    async def variants(self, original_id: str) -> list[str]:
        return sorted(self.variant_sets.get(original_id, set()))

    async def variant_count(self, original_id: str) -> int:
        return len(self.variant_sets.get(original_id, set()))

    async def project_hash(
        self, content_sha256: str, asset_id: str, rev: int, library_id: str | None
    ) -> HashPlacement:
        index = self.hashes[content_sha256]
        if index.revs.get(asset_id, -1) > rev:
            return HashPlacement(applied=False, announced=False, earlier=[])
        index.revs[asset_id] = rev
        if library_id is None:
            index.order.pop(asset_id, None)
            index.libraries.pop(asset_id, None)
            index.announced.discard(asset_id)
            return HashPlacement(applied=True, announced=False, earlier=[])
        if asset_id not in index.order:
            index.seq += 1
            index.order[asset_id] = index.seq
        index.libraries[asset_id] = library_id
        mine = index.order[asset_id]
        earlier = sorted((n, a) for a, n in index.order.items() if n < mine)
        return HashPlacement(
            applied=True,
            announced=asset_id in index.announced,
            earlier=[DuplicateEntry(a, index.libraries[a]) for _, a in earlier],
        )

    async def mark_announced(self, content_sha256: str, asset_id: str) -> None:
        self.hashes[content_sha256].announced.add(asset_id)

    # held lifecycle events

    async def schedule_held(self, asset_id: str, deadline: datetime) -> None:
        self.schedule[asset_id] = _millis(deadline)

    async def unschedule_held(self, asset_id: str, due_by: datetime | None = None) -> None:
        deadline = self.schedule.get(asset_id)
        if deadline is not None and (due_by is None or deadline <= _millis(due_by)):
            del self.schedule[asset_id]

    async def due_held(self, now: datetime, limit: int) -> list[str]:
        cutoff = _millis(now)
        due = sorted((at, a) for a, at in self.schedule.items() if at <= cutoff)
        return [a for _, a in due[:limit]]

    # reads, as RegistryStore offers them

    async def library_stats(self, library_id: str) -> LibraryStats | None:
        counters = self.stats.get(library_id)
        return None if not counters else library_stats(library_id, counters)

    async def assets(self, asset_ids: list[str]) -> list[AssetState]:
        """The states of the known assets among `asset_ids`, in their order."""
        stored = [self.states.get(asset_id) for asset_id in asset_ids]
        return [AssetState.model_validate_json(doc) for _, doc in filter(None, stored)]

    async def duplicates(self, content_sha256: str) -> list[DuplicateEntry]:
        """Every asset holding the content, in order of first placement."""
        index = self.hashes.get(content_sha256)
        if index is None:
            return []
        ordered = sorted((n, a) for a, n in index.order.items())
        return [DuplicateEntry(asset_id=a, library_id=index.libraries[a]) for _, a in ordered]


# --- metrics -----------------------------------------------------------------------------


class FakeMetricsStore:
    """The write side of MetricsStore in memory: its step's checks, in their order,
    event by event (the store adds a batch up first; the sums are the same)."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}
        self.counters: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.seen: dict[int, dict[str, int]] = defaultdict(dict)  # id -> forgotten at, s
        self.lifetime: dict[tuple[int, str], dict[str, list[int]]] = defaultdict(dict)
        self.buckets: dict[tuple[int, str, str, int], dict[str, list[int]]] = defaultdict(dict)
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.resets: list[list[int] | None] = []  # the partitions of each reset (None: all)
        self.pointers: dict[str, int] = {}
        self.calls: list[tuple[int, int, int, int]] = []  # (partition, first, last, events)

    async def position(self, partition: int) -> int:
        return self.positions.get(partition, -1)

    async def point(self, partition: int, asset_ids: Sequence[str]) -> None:
        for asset_id in asset_ids:
            self.pointers[asset_id] = partition

    def reset(self, partitions: Iterable[int] | None = None) -> None:
        self.resets.append(None if partitions is None else list(partitions))

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
        self.calls.append((partition, first, last, len(rows)))
        now_s = int(now)
        _validate(first, last, rows, expected)
        # 2. Position.
        position = self.positions.get(partition, -1)
        met = position_status(position, first, last, expected)
        if met is not None:
            return Applied(met, position)
        # 3. Ids, and copies within the batch.
        seen = self.seen[partition]
        fresh, duplicates, batch_ids = [], 0, set()
        for row in rows:
            event_id = row[0]
            if event_id in batch_ids or seen.get(event_id, 0) > now_s:
                duplicates += 1
            else:
                batch_ids.add(event_id)
                fresh.append(row)
        # 4. Add, and refuse a sum past the limit before any write.
        late_before = now_s - LONGEST_WINDOW_SECONDS
        adds: list[tuple[dict[str, list[int]], str, str, Sequence[int]]] = []
        late = 0
        for row in fresh:
            asset_id, channel, campaign, t = row[1:5]
            targets = [self.lifetime[(partition, asset_id)]]
            if t < late_before:
                late += 1
            else:
                for r in RESOLUTIONS:
                    start = t - t % r.seconds
                    if start + r.seconds + r.retention > now_s:
                        targets.append(self.buckets[(partition, asset_id, r.name, start)])
            if any(row[5:]):
                for target in targets:
                    adds.append((target, asset_id, f"ch:{channel}", row[5:]))
                    adds.append((target, asset_id, f"cp:{campaign}", row[5:]))
        sums: dict[tuple[int, str, int], int] = defaultdict(int)
        for target, asset_id, dimension, deltas in adds:
            for m, delta in enumerate(deltas):
                sums[(id(target), dimension, m)] += delta
                stored = target.get(dimension, [0] * 6)[m]
                if stored + sums[(id(target), dimension, m)] > MAX_SUM:
                    return Applied(ApplyStatus.OVERFLOW, asset_id=asset_id)
        # 5. Write.
        for target, _, dimension, deltas in adds:
            counts = target.setdefault(dimension, [0] * 6)
            for m, delta in enumerate(deltas):
                counts[m] += delta
        generation = now_s - now_s % GENERATION_SECONDS
        for row in fresh:
            seen[row[0]] = generation + GENERATION_SECONDS + SEEN_SECONDS
            self.dirty[partition].add(row[1])
        self.positions[partition] = last
        counters = self.counters[partition]
        counters["applied"] += len(fresh)
        counters["duplicates"] += duplicates
        counters["late"] += late
        return Applied(ApplyStatus.APPLIED, last, len(fresh), duplicates, late)

    # reads, as MetricsStore offers them

    async def forget(self, asset_id: str, partition: int) -> None:
        self.lifetime.pop((partition, asset_id), None)
        self.pointers.pop(asset_id, None)

    async def partition_of(self, asset_id: str) -> int | None:
        return self.pointers.get(asset_id)

    async def partitions_of(self, asset_ids: Sequence[str]) -> list[int | None]:
        return [self.pointers.get(asset_id) for asset_id in asset_ids]

    async def counted_assets(self, partition: int, resolution: Resolution, start: int) -> set[str]:
        # Buckets never expire here: the refresher asks only for those it knows are live.
        return {
            asset_id
            for (p, asset_id, name, s), counts in self.buckets.items()
            if (p, name, s) == (partition, resolution.name, start) and counts
        }

    async def totals_by_window(
        self, placed: Sequence[tuple[str, int]], windows: Sequence[Window], now: float
    ) -> list[dict[Window, WindowTotals]]:
        empty: dict[str, list[int]] = {}
        result: list[dict[Window, WindowTotals]] = []
        for asset_id, partition in placed:
            sums: dict[Window, WindowTotals] = {}
            for window in windows:
                if window is Window.LIFETIME:
                    hashes = [self.lifetime.get((partition, asset_id), empty)]
                else:
                    resolution, starts = window_buckets(window, now)
                    hashes = [
                        self.buckets.get((partition, asset_id, resolution.name, start), empty)
                        for start in starts
                    ]
                sums[window] = window_totals(hashes)
            result.append(sums)
        return result

    async def window_totals(self, asset_id: str, window: Window, now: float) -> WindowTotals | None:
        partition = self.pointers.get(asset_id)
        if partition is None:
            return None
        [totals] = await self.totals_by_window([(asset_id, partition)], [window], now)
        return totals[window]

    async def totals(
        self,
        asset_id: str,
        window: Window,
        now: float,
        *,
        channel: Channel | None = None,
        campaign: str | None = None,
    ) -> Totals | None:
        totals = await self.window_totals(asset_id, window, now)
        if totals is None:
            return None
        if campaign is not None:
            return totals.campaign(campaign)
        return totals.total if channel is None else totals.channel(channel)

    async def series(
        self, asset_id: str, resolution: Resolution, starts: Sequence[int]
    ) -> list[WindowTotals] | None:
        partition = self.pointers.get(asset_id)
        if partition is None:
            return None
        empty: dict[str, list[int]] = {}
        return [
            window_totals([self.buckets.get((partition, asset_id, resolution.name, s), empty)])
            for s in starts
        ]

    def lifetime_of(self, asset_id: str, field_name: str) -> int:
        """One lifetime counter of an asset (e.g. "ch:web:impressions"), 0 when absent."""
        partition = self.pointers.get(asset_id)
        if partition is None:
            return 0
        dimension, _, metric = field_name.rpartition(":")
        counts = self.lifetime.get((partition, asset_id), {}).get(dimension)
        return 0 if counts is None else counts[METRICS.index(metric)]


def _validate(first: int, last: int, rows: Sequence[PerfRow], expected: int) -> None:
    """`check_rows` and the offsets: bad input is an error, before anything is written."""

    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not (integer(first) and integer(last) and 0 <= first <= last):
        raise ScriptError(f"ERR bad input: offsets {first!r}..{last!r}")
    if not (integer(expected) and expected >= -1):
        raise ScriptError(f"ERR bad input: expected position {expected!r}")
    for i, row in enumerate(rows, 1):
        if len(row) != 11:
            raise ScriptError(f"ERR bad input: event {i} must be an array of 11 values")
        if not all(isinstance(v, str) and v for v in row[:4]):
            raise ScriptError(f"ERR bad input: event {i} has an empty or non-string field")
        if not integer(row[4]):
            raise ScriptError(f"ERR bad input: event {i} time must be an integer")
        for delta in row[5:]:
            if not (integer(delta) and 0 <= delta <= MAX_METRIC_DELTA):
                raise ScriptError(f"ERR bad input: event {i} delta {delta!r} out of range")


# --- positions, dead-letter counters, the producer --------------------------------------


class FakePositions:
    """PositionStore in memory: position_advance.lua's answers."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, int], int] = {}

    async def get(self, topic: str, partition: int) -> int:
        return self.positions.get((topic, partition), -1)

    async def advance(self, topic: str, partition: int, expected: int, offset: int) -> Advanced:
        if expected < -1 or offset < 0:
            raise ScriptError("ERR bad input: expected and offset must be integers >= -1 and >= 0")
        position = self.positions.get((topic, partition), -1)
        if position < expected:
            return Advanced(Advance.BEHIND, position)
        if offset <= position:
            return Advanced(Advance.COVERED, position)
        self.positions[(topic, partition)] = offset
        return Advanced(Advance.MOVED, offset)


class FakeDeadLetterCounters:
    """DeadLetterCounters in memory: each dead-letter id counts once."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.markers: set[str] = set()

    async def count(self, reason: DeadLetterReason, dead_letter_id: str) -> bool:
        if dead_letter_id in self.markers:
            return False
        self.markers.add(dead_letter_id)
        self.counts[reason.value] += 1
        return True

    async def totals(self) -> dict[str, int]:
        return {reason.value: self.counts.get(reason.value, 0) for reason in DeadLetterReason}


class FakeProducer:
    """The producer port: keeps what it sent; `failure`, when set, is raised instead."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.failure: Exception | None = None

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON values sent to one topic, in order."""
        return [json.loads(value) for t, _, value in self.sent if t == topic]


# --- leaderboards and suggestions --------------------------------------------------------


class FakeLeaderboardStore:
    """LeaderboardStore in memory. The dirty sets of the metrics partitions are the ones
    `FakeMetricsStore.apply` fills (the metrics step adds to them), when it is given."""

    def __init__(self, metrics: FakeMetricsStore | None = None) -> None:
        self.boards: dict[tuple[str, Window, Channel | None], dict[str, Totals]] = defaultdict(dict)
        self.library_of: dict[str, str] = {}  # asset -> library whose boards hold it
        # (campaign, window) -> asset -> its totals in the campaign; asset -> its campaigns
        self.campaign_boards: dict[tuple[str, Window], dict[str, Totals]] = defaultdict(dict)
        self.campaigns_of: dict[str, set[str]] = defaultdict(set)
        self.libraries: set[str] = set()  # every library that ever had a board
        self.registry_dirty: set[str] = set()
        self.perf_dirty: dict[int, set[str]] = (
            defaultdict(set) if metrics is None else metrics.dirty
        )
        self.moved: set[str] = set()
        self.swept: int | None = None
        # claimed, not yet done: per dirty set
        self.claimed: dict[DirtySet, set[str]] = defaultdict(set)

    def _dirty(self, which: DirtySet) -> set[str]:
        if which == REGISTRY:
            return self.registry_dirty
        if which == WINDOWS:
            return self.moved
        return self.perf_dirty[which]

    def queued(self) -> set[str]:
        """Every asset a refresh has yet to do: marked or claimed, in any set."""
        assets = self.registry_dirty | self.moved
        return assets.union(*self.perf_dirty.values(), *self.claimed.values())

    async def swept_hour(self) -> int | None:
        return self.swept

    async def set_swept_hour(self, hour: int) -> None:
        self.swept = hour

    async def mark_dirty(self, asset_ids: Sequence[str]) -> None:
        self.registry_dirty.update(asset_ids)

    async def mark_moved(self, asset_ids: Sequence[str]) -> None:
        self.moved.update(asset_ids)

    async def claim(self, which: DirtySet, count: int) -> list[str]:
        # SRANDMEMBER / SPOP with a count: distinct members, in no promised order.
        unfinished = self.claimed[which]
        if unfinished:
            return sorted(unfinished)[:count]
        dirty = self._dirty(which)
        taken = sorted(dirty)[:count]
        dirty.difference_update(taken)
        unfinished.update(taken)
        return taken

    async def done(self, which: DirtySet, asset_ids: Sequence[str]) -> None:
        self.claimed[which].difference_update(asset_ids)

    async def placed(self, asset_ids: Sequence[str]) -> list[str | None]:
        return [self.library_of.get(asset_id) for asset_id in asset_ids]

    async def place(
        self, asset_id: str, library_id: str | None, previous: str | None, boards: Placement
    ) -> None:
        campaigns = {} if library_id is None else lb.campaign_entries(boards)
        for campaign in self.campaigns_of[asset_id] | set(campaigns):
            for window in lb.LEADERBOARD_WINDOWS:
                totals = campaigns.get(campaign, {}).get(window)
                board = self.campaign_boards[(campaign, window)]
                if totals is None:
                    board.pop(asset_id, None)
                else:
                    board[asset_id] = totals
        self.campaigns_of[asset_id] = set(campaigns)
        if previous is not None and previous != library_id:
            for window in lb.LEADERBOARD_WINDOWS:
                for channel in lb.BOARD_CHANNELS:
                    self.boards[(previous, window, channel)].pop(asset_id, None)
        if library_id is None:
            self.library_of.pop(asset_id, None)
            return
        for window in lb.LEADERBOARD_WINDOWS:
            window_totals = boards.get(window, WindowTotals())
            for channel in lb.BOARD_CHANNELS:
                board = self.boards[(library_id, window, channel)]
                totals = lb.board_totals(window_totals, channel)
                if totals == ZERO:
                    board.pop(asset_id, None)
                else:
                    board[asset_id] = totals
        self.library_of[asset_id] = library_id
        self.libraries.add(library_id)

    async def entries(
        self, library_id: str, window: Window, channel: Channel | None
    ) -> list[lb.Entry]:
        board = self.boards.get((library_id, window, channel), {})
        return [lb.Entry(asset_id, totals) for asset_id, totals in board.items()]

    async def entry(
        self, library_id: str, window: Window, channel: Channel | None, asset_id: str
    ) -> Totals | None:
        return self.boards.get((library_id, window, channel), {}).get(asset_id)

    async def pool(
        self, library_id: str, window: Window, channel: Channel | None, min_impressions: int
    ) -> Pool:
        # Not kept between calls: the Redis store's keeping is its own test's business.
        return Pool.of(self.boards.get((library_id, window, channel), {}).values(), min_impressions)

    async def top(
        self,
        library_id: str,
        window: Window,
        channel: Channel | None,
        metric: lb.RankMetric,
        min_impressions: int,
    ) -> list[lb.Entry]:
        entries = await self.entries(library_id, window, channel)
        return lb.rank(entries, metric, min_impressions=min_impressions, limit=TOP_KEPT)

    async def rollup(self, library_id: str, window: Window, channel: Channel | None) -> Rollup:
        board = self.boards.get((library_id, window, channel), {})
        return Rollup(sum_totals(board.values()), len(board))

    async def entries_of(
        self, library_id: str, window: Window, channel: Channel | None, asset_ids: Sequence[str]
    ) -> dict[str, Totals]:
        board = self.boards.get((library_id, window, channel), {})
        return {a: board[a] for a in asset_ids if a in board}

    async def campaign_entries(self, campaign_id: str, window: Window) -> list[lb.Entry]:
        board = self.campaign_boards.get((campaign_id, window), {})
        return [lb.Entry(asset_id, totals) for asset_id, totals in board.items()]

    async def ranked_assets(self, window: Window) -> set[str]:
        assets: set[str] = set()
        for library_id in self.libraries:
            assets.update(self.boards.get((library_id, window, None), {}))
        return assets


def _by_score(scores: Mapping[str, float]) -> list[str]:
    """A sorted set's members, lowest score first, ties in member order (ZRANGE)."""
    return [member for _, member in sorted((score, m) for m, score in scores.items())]


class FakeSuggestionStore:
    """SuggestionStore in memory: records kept as JSON in their (type, channel) slot."""

    def __init__(self) -> None:
        self.slots: dict[str, dict[str, str]] = defaultdict(dict)  # asset -> slot -> JSON
        self.asset_of: dict[str, str] = {}  # suggestion id -> asset
        # library -> suggestion id -> (index member, its facets)
        self.by_library: dict[str, dict[str, tuple[str, list[tuple[str, str]]]]] = defaultdict(dict)
        self.variants: dict[str, str] = {}  # new asset -> suggestion id
        self.originals: dict[str, str] = {}  # new asset -> the original it is listed under
        self.realised_by_type: dict[str, dict[str, float]] = defaultdict(dict)
        self.closed: dict[str, str] = {}  # suggestion id -> JSON of a retired record

    async def get(
        self, asset_id: str, suggestion_type: SuggestionType, channel: Channel | None
    ) -> SuggestionRecord | None:
        raw = self.slots.get(asset_id, {}).get(slot(suggestion_type, channel))
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def put(self, record: SuggestionRecord) -> None:
        s = record.suggestion
        self.slots[s.asset_id][record.slot] = record.model_dump_json()
        self.asset_of[s.suggestion_id] = s.asset_id
        self._index(record)

    def _index(self, record: SuggestionRecord) -> None:
        s = record.suggestion
        self.by_library[s.library_id][s.suggestion_id] = (
            index_member(record),
            index_facets(record),
        )

    async def retire(self, record: SuggestionRecord) -> None:
        self.closed[record.suggestion.suggestion_id] = record.model_dump_json()
        self._index(record)

    async def link_variant(
        self, new_asset_id: str, suggestion_id: str, original_id: str | None = None
    ) -> None:
        self.variants[new_asset_id] = suggestion_id
        if original_id is not None:
            self.originals[new_asset_id] = original_id

    async def variant_of(self, asset_id: str) -> str | None:
        return self.variants.get(asset_id)

    async def record_realised(self, record: SuggestionRecord) -> None:
        await self.put(record)
        s = record.suggestion
        self.realised_by_type[s.type.value][s.suggestion_id] = s.created_at.timestamp()

    # reads, as SuggestionStore offers them

    async def realised(self, suggestion_type: SuggestionType) -> list[SuggestionRecord]:
        ids = _by_score(self.realised_by_type.get(suggestion_type.value, {}))
        records = [await self.by_id(i) for i in ids]
        return [r for r in records if r is not None and r.realised_improvement_pct is not None]

    async def for_asset(self, asset_id: str) -> list[SuggestionRecord]:
        raw = self.slots.get(asset_id, {})
        return [SuggestionRecord.model_validate_json(v) for v in raw.values()]

    async def by_id(self, suggestion_id: str) -> SuggestionRecord | None:
        asset_id = self.asset_of.get(suggestion_id)
        if asset_id is None:
            return None
        for record in await self.for_asset(asset_id):
            if record.suggestion.suggestion_id == suggestion_id:
                return record
        raw = self.closed.get(suggestion_id)
        return None if raw is None else SuggestionRecord.model_validate_json(raw)

    async def library_page(
        self,
        library_id: str,
        *,
        filters: dict[str, str],
        cursor: str | None,
        limit: int,
    ) -> tuple[list[SuggestionRecord], str | None]:
        wanted = set(filters.items())
        members = sorted(
            member
            for member, facets in self.by_library.get(library_id, {}).values()
            if wanted <= set(facets) and (cursor is None or member > cursor)
        )[:limit]
        records = [await self.by_id(m.split(":", 1)[1]) for m in members]
        next_cursor = members[-1] if len(members) == limit else None
        return [r for r in records if r is not None], next_cursor


# --- libraries ---------------------------------------------------------------------------


class FakeLibraryStore:
    """LibraryStore in memory: the later version of a library's facts wins; the list holds
    every library with facts or, through the registry fake, with a projected asset."""

    def __init__(self, registry: FakeRegistryStore | None = None) -> None:
        self.registry = registry or FakeRegistryStore()
        self.infos: dict[str, str] = {}  # library -> LibraryInfo JSON
        self.listed: set[str] = set()

    async def update(self, info: LibraryInfo) -> bool:
        stored = self.infos.get(info.library_id)
        if not wins(info, None if stored is None else LibraryInfo.model_validate_json(stored)):
            return False
        self.infos[info.library_id] = info.model_dump_json()
        return True

    async def remember(self, library_id: str) -> None:
        self.listed.add(library_id)

    def _known(self) -> list[str]:
        return sorted(self.listed | set(self.registry.members))

    async def page(self, cursor: str | None, limit: int) -> list[str]:
        return [i for i in self._known() if cursor is None or i > cursor][:limit]

    async def details(
        self, library_ids: Sequence[str]
    ) -> list[tuple[LibraryInfo | None, LibraryStats | None]]:
        result: list[tuple[LibraryInfo | None, LibraryStats | None]] = []
        for library_id in library_ids:
            doc = self.infos.get(library_id)
            info = None if doc is None else LibraryInfo.model_validate_json(doc)
            result.append((info, await self.registry.library_stats(library_id)))
        return result
