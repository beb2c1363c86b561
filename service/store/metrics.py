"""Redis store of the rolling performance metrics.

Writes, per batch of one partition (the exactly-once step), on one connection to the
node holding the partition (`pinned`); `perf_step` says what each round trip sends:

1. The worker adds the batch up per hash, asset and dimension (`perf_batch.merge`).
2. Read, one round trip: a MULTI/EXEC transaction reads the partition's position, its
   `forgotten` count (together: the fence), the size of its table of ids, the buckets of
   that table the batch's ids fall in (`seen_ids`), and the sums the batch adds to (one
   field per asset and hash); then the fence is WATCHed and read again (read again when
   it moved in between). A position that covers the batch, or lies below the one
   expected, answers here. Sums and buckets of the table of ids this worker wrote and
   still keeps (service/store/kept_sums.py) are not read again: they hold at the fence
   they were written at (the buckets, at the table's size too).
3. The worker looks the ids up in the buckets read (`seen_ids.record`); ids applied
   before count as copies and the batch is added up again without them. It adds the
   batch's counts to the sums read (`_new_sums`); a sum past 2^53 - 1 refuses the batch
   before anything is written.
4. Write, one round trip: a MULTI/EXEC transaction writes the new sums (and the
   expiry of each bucket hash, unless this worker set it since the fence last moved and
   the bucket is not about to expire: `_Expiring`), the table's new buckets, the dirty
   marks, the counters and the position, in one atomic step,
   only if neither watched key changed since step 2 (every other writer of the
   partition moves one of them); otherwise Redis writes nothing, the kept sums of the
   partition are dropped and step 2 runs again. The position moves with the sums or
   not at all; the consumer's offset (lag monitoring only) follows later.

Redis never adds nor searches: it reads fields and writes fields, so a batch costs it a
few microseconds per asset and hash whatever the number of counters behind them, and a
fraction of one per event id.

Reads: an asset's pointer gives the partition whose hashes hold its sums; a window is the
sum of the asset's sums in its buckets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import Any

from redis.exceptions import AskError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from service.domain.enums import Channel
from service.domain.events import MAX_METRIC_DELTA
from service.domain.metrics import Totals, WindowTotals
from service.domain.windows import Resolution, Window, window_buckets
from service.store.codecs import Counters, add_sums, decode_sums, window_totals
from service.store.kept_sums import Fence, KeptBuckets, KeptSums
from service.store.keys import Keys
from service.store.perf_batch import Entries, MergedBatch, PerfRow, merge
from service.store.perf_step import MAX_READS, PerfStep, ReadStep, StepWrite, fence_moving
from service.store.pinned import Pinned, pinned, raise_first_error
from service.store.scripts import Scripts
from service.store.seen_ids import (
    GENERATION_SECONDS,
    SEEN_SECONDS,
    SeenRead,
    buckets_to_read,
    grown_size,
    legacy_fingerprint,
    legacy_generation_starts,
    record,
)

__all__ = ["Applied", "ApplyStatus", "EventCounts", "MetricsStore", "PerfRow"]

# Assets per read transaction: a board refresh's chunk of 50 reads 24 hour buckets, 7
# days and the lifetime hash of each, and one transaction must not hold Redis for long.
READ_ASSETS_PER_CALL = 10
# Read transactions in flight at once for one read (each on a connection of its own).
READS_IN_FLIGHT = 8
# Tries of a read transaction whose slot is moving between cluster nodes (MOVED, ASK,
# TRYAGAIN), a pause of READ_RETRY_SECONDS times the try between them: a slot's keys
# move in milliseconds, and a reader would rather wait for them than fail.
READ_TRIES = 5
READ_RETRY_SECONDS = 0.02
_TABLE = "seen"  # the name the partition's table of ids is kept under (KeptBuckets)


class ApplyStatus(Enum):
    """What a step did with a batch (`MetricsStore.apply`)."""

    APPLIED = 1
    COVERED = 0  # applied before, as a whole
    STRADDLES = -1  # the position lies inside the batch
    BEHIND = -2  # Redis holds a position below the one this worker expects: it lost writes
    OVERFLOW = -3  # a sum of `asset_id` would pass 2^53 - 1


# The largest sum kept: readers and board scripts add in Lua, in doubles, exact up to here.
MAX_SUM = 2**53 - 1

# A bucket's EXPIREAT is left out of a step when this worker set it since the fence last
# moved under it and the bucket lives at least this much longer (a clock of the worker
# behind Redis's by more would let it expire, then come back without one).
EXPIRY_MARGIN_SECONDS = 600


@dataclass(frozen=True, slots=True)
class _Expiring:
    """Bucket hashes of a partition whose expiry this worker set, and the fence that
    held after its last write: while Redis still holds that fence, no other writer came
    between, and a hash that has an expiry keeps it (buckets are never deleted; only
    their expiry removes them)."""

    fence: Fence
    expires: dict[str, int]  # hash key -> its EXPIREAT


@dataclass(frozen=True, slots=True)
class _Read:
    """The sums a batch adds to and the buckets of ids it falls in, and the fence they
    hold at: read in step 2, or (sums only) kept from this worker's last write."""

    fence: Fence
    sums: dict[str, dict[str, str]]  # hash key -> asset_id -> its sums there ('' for none)
    seen: SeenRead


@dataclass(frozen=True, slots=True)
class EventCounts:
    """Performance events over every partition: applied, skipped as copies, and late
    (older than the longest window, counted in lifetime only)."""

    applied: int
    duplicates: int
    late: int


@dataclass(frozen=True, slots=True)
class Applied:
    """What one call did, and the partition's position when it did not apply the batch."""

    status: ApplyStatus
    position: int = -1
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    asset_id: str | None = None


def position_status(position: int, first: int, last: int, expected: int) -> ApplyStatus | None:
    """What a batch of offsets `first`..`last` meets at the partition's `position`, when
    this worker expected it at `expected` or beyond: BEHIND, COVERED or STRADDLES; None
    when the batch can apply."""
    if position < expected:
        return ApplyStatus.BEHIND
    if last <= position:
        return ApplyStatus.COVERED
    if first <= position:
        return ApplyStatus.STRADDLES
    return None


def check_offsets(first: int, last: int, expected: int) -> None:
    """Offsets no consumer hands over are an error before anything is written."""
    if not (type(first) is int and type(last) is int and 0 <= first <= last):
        raise ValueError(f"bad input: offsets {first!r}..{last!r}")
    if not (type(expected) is int and expected >= -1):
        raise ValueError(f"bad input: expected position {expected!r}")


def check_rows(rows: Sequence[PerfRow]) -> None:
    """Bad rows are an error before anything is written, naming the event."""
    for i, row in enumerate(rows, 1):
        if len(row) != 11:
            raise ValueError(f"bad input: event {i} must have 11 values, got {len(row)}")
        for f in range(4):
            value = row[f]
            if type(value) is not str or not value:
                raise ValueError(f"bad input: event {i} field {f + 1} must be a non-empty string")
        deltas = row[5:]
        if type(row[4]) is not int or any(type(d) is not int for d in deltas):
            raise ValueError(f"bad input: event {i} time and counts must be integers")
        if min(deltas) < 0 or max(deltas) > MAX_METRIC_DELTA:
            raise ValueError(
                f"bad input: event {i} counts must be in [0, {MAX_METRIC_DELTA}], got {deltas}"
            )


class MetricsStore:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        scripts: Scripts,
        topic: str,
        *,
        kept_sums: int = 0,
        kept_id_buckets: int = 0,
        known_expiry: bool = False,
        read_step: ReadStep | None = None,
    ) -> None:
        """`kept_sums`, `kept_id_buckets`: how many sums and buckets of the tables of ids
        a worker keeps from its writes (0: read each time);
        `known_expiry`: leave out the EXPIREAT of a bucket this worker set it on (only on a
        Redis read as `noeviction`: an evicted bucket would come back without one);
        `read_step`: step 2's read (`PerfStep.read` unless given)."""
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._topic = topic
        self._kept = KeptSums(kept_sums)
        self._kept_buckets = KeptBuckets(kept_id_buckets)
        self._step = PerfStep(keys, topic)
        self._read_step = read_step or self._step.read
        # partition -> its table of ids' size (`n`, `c`) as this worker last read or wrote it
        self._tables: dict[int, tuple[int, int]] = {}
        self._no_legacy_ids: set[int] = set()  # partitions with no id set of an earlier version
        self._known_expiry = known_expiry
        self._expiring: dict[int, _Expiring] = {}

    def reset(self, partitions: Iterable[int] | None = None) -> None:
        """Forget what this worker knows of the partitions (every one when None): they
        moved to another worker and back, or Redis lost writes. Kept sums and known
        expiries hold at a fence; another writer could in principle have written the
        partition up to that very fence again."""
        if partitions is None:
            self._kept.clear()
            self._kept_buckets.clear()
            self._expiring.clear()
            self._tables.clear()
            return
        for partition in partitions:
            self._drop_kept(partition)
            self._expiring.pop(partition, None)
            self._tables.pop(partition, None)

    def _drop_kept(self, partition: int) -> None:
        """Forget the partition's kept sums and buckets of ids: Redis holds another fence."""
        self._kept.drop(partition)
        self._kept_buckets.drop(partition)

    async def position(self, partition: int) -> int:
        """Offset of the last event of the partition applied, or -1."""
        value = await self._redis.get(self._keys.perf_position(partition, self._topic))
        return -1 if value is None else int(value)

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
        """Apply a batch (offsets `first`..`last`) if the position is still `expected` or
        beyond; the module docstring numbers the steps. BEHIND: Redis holds a position
        below `expected` (it lost writes; the caller seeks back); COVERED: applied
        before; STRADDLES: the position lies inside the batch (the caller drops the
        events at or below it and calls again); OVERFLOW: a lifetime sum of `asset_id`
        would pass 2^53 - 1."""
        check_offsets(first, last, expected)
        check_rows(rows)
        now_s = int(now)
        known: set[str] = set()
        if partition not in self._no_legacy_ids:
            known = await self._legacy_known(partition, rows, now_s)
        batch = merge(rows, now_s, known)
        hashes = self._hashes(partition, batch)
        for _ in range(MAX_READS):
            async with pinned(self._redis, self._step.position_key(partition)) as conn:
                read = await self._read_sums(conn, partition, hashes, batch.numbers)
                position = read.fence.position
                met = position_status(position, first, last, expected)
                if met is not None:
                    return Applied(met, position)
                seen = record(read.seen, batch.fingerprints, batch.numbers, now_s)
                if seen.known:
                    # Fewer events: the sums and buckets read still cover every one left,
                    # and `seen` added only the others.
                    known.update(batch.event_ids[i] for i in seen.known)
                    batch = merge(rows, now_s, known)
                    hashes = self._hashes(partition, batch)
                written = _new_sums(hashes, read)
                if isinstance(written, str):
                    return Applied(ApplyStatus.OVERFLOW, asset_id=written)
                expiring = self._expiring_at(partition, read.fence, now_s)
                done = await self._step.write(
                    conn,
                    partition,
                    StepWrite(
                        last=last,
                        applied=len(batch.event_ids),
                        copies=batch.copies,
                        late=batch.late,
                        dirty=list(batch.lifetime),
                        hashes=_unset_expiries(written, expiring),
                        buckets=seen.written,
                        table=(seen.buckets, seen.entries),
                        table_expires=now_s
                        - now_s % GENERATION_SECONDS
                        + GENERATION_SECONDS
                        + SEEN_SECONDS,
                    ),
                )
            if done:
                self._tables[partition] = (seen.buckets, seen.entries)
                fence = Fence(last, read.fence.forgotten)
                if self._known_expiry:
                    expiring.update((key, expires) for key, expires, _ in written if expires)
                    self._expiring[partition] = _Expiring(fence, expiring)
                self._kept.move(partition, fence)
                self._kept.keep(partition, fence, ((k, _pairs(p)) for k, _, p in written))
                self._kept_buckets.move(partition, fence)
                # The buckets read, as this step rewrote them.
                buckets = chain(read.seen.values.items(), seen.written.items())
                self._kept_buckets.keep(partition, fence, [(_TABLE, buckets)])
                return Applied(
                    ApplyStatus.APPLIED, last, len(batch.event_ids), batch.copies, batch.late
                )
            self._drop_kept(partition)  # another writer came between: read again
        raise fence_moving(partition)

    def _expiring_at(self, partition: int, fence: Fence, now: int) -> dict[str, int]:
        """The partition's buckets whose expiry this worker set and that live beyond the
        margin, when Redis still holds the fence of this worker's last write (read in
        this step, and WATCHed until its write); otherwise none."""
        known = self._expiring.get(partition)
        if known is None or known.fence != fence:
            return {}
        soonest = now + EXPIRY_MARGIN_SECONDS
        return {key: at for key, at in known.expires.items() if at > soonest}

    async def _legacy_known(self, partition: int, rows: Sequence[PerfRow], now: int) -> set[str]:
        """The batch's ids found in the id sets earlier versions wrote (per generation,
        `Keys.perf_ids`), while any of them lives; once none does, the partition is not
        asked again (nothing writes them any more). Outside the step: they only expire."""
        keys = [self._keys.perf_ids(partition, s) for s in legacy_generation_starts(now)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            present = [key for key, n in zip(keys, await pipe.execute(), strict=True) if n]
        if not present:
            self._no_legacy_ids.add(partition)
            return set()
        ids = list(dict.fromkeys(row[0] for row in rows))
        prints = [legacy_fingerprint(event_id) for event_id in ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in present:
                pipe.smismember(key, prints)
            hits = await pipe.execute()
        return {event_id for found in hits for event_id, hit in zip(ids, found, strict=True) if hit}

    def _hashes(self, partition: int, batch: MergedBatch) -> list[tuple[str, int, Entries]]:
        """The batch's hashes: key, EXPIREAT (0: never) and what it adds there; the
        lifetime hash first."""
        keys = self._keys
        hashes = [(keys.perf_lifetime(partition), 0, batch.lifetime)]
        for (resolution, start), (expires, entries) in batch.buckets.items():
            hashes.append((keys.perf_bucket(partition, resolution, start), expires, entries))
        return hashes

    async def _read_sums(
        self,
        conn: Pinned,
        partition: int,
        hashes: list[tuple[str, int, Entries]],
        numbers: list[int],
    ) -> _Read:
        """The sums the batch adds to (kept ones at the partition's kept fence, the others
        read) and the buckets its ids fall in (step 2); when Redis's fence is not the kept
        one, every sum is read."""
        kept, fence = self._kept, self._kept.fence(partition)
        sums: dict[str, dict[str, str]] = {}
        missing: list[tuple[str, list[str]]] = []
        for key, _, entries in hashes:
            held = kept.fields(partition, key)  # (none without a fence)
            if not held:
                sums[key] = {}
                missing.append((key, list(entries)))
                continue
            sums[key] = {asset_id: held[asset_id] for asset_id in entries if asset_id in held}
            lacking = [asset_id for asset_id in entries if asset_id not in held]
            if lacking:
                missing.append((key, lacking))
        kept_buckets = self._kept_buckets
        read_at, read, seen, held_used = await self._call_sums(
            conn, partition, missing, numbers, kept_buckets.fields(partition, _TABLE)
        )
        stale_buckets = held_used and read_at != kept_buckets.fence(partition)
        if (fence is not None and read_at != fence) or stale_buckets:
            self._drop_kept(partition)
            read_at, sums, seen, _ = await self._call_sums(
                conn, partition, [(key, list(entries)) for key, _, entries in hashes], numbers, {}
            )
        else:
            for key, values in read.items():
                sums[key].update(values)
        # Not kept yet: what the batch writes is kept once the write applies (`apply`).
        return _Read(read_at, sums, seen)

    async def _call_sums(
        self,
        conn: Pinned,
        partition: int,
        wanted: list[tuple[str, list[str]]],
        numbers: list[int],
        held: Mapping[int, str],
    ) -> tuple[Fence, dict[str, dict[str, str]], SeenRead, bool]:
        """Step 2's read. Which buckets of ids to read depends on the table's size: it is
        taken from this worker's last step (read alone first on the partition's first step
        here), and read again with the rest; when Redis holds a size that needs other
        buckets (another writer's step came between), read again. Buckets in `held`
        (kept from this worker's last write) are not read, unless Redis holds a table of
        another size (another writer, or it expired); the last value returned says
        whether any was used, and the caller checks their fence then."""
        table = self._tables.get(partition)
        if table is None:
            first = await self._read_step(conn, partition, [], [])
            table = (first.buckets, first.entries)
        grow_to = grown_size(*table, len(numbers))
        fields = buckets_to_read(table[0], grow_to, numbers)
        for _ in range(MAX_READS):
            asked = [b for b in dict.fromkeys(fields) if b not in held] if held else fields
            read = await self._read_step(conn, partition, asked, wanted)
            size = (read.buckets, read.entries)
            grow_to = grown_size(*size, len(numbers))
            needed = buckets_to_read(read.buckets, grow_to, numbers)
            if needed == fields and (not held or size == table):
                break
            fields, table, held = needed, size, {}
        else:
            raise fence_moving(partition)
        self._tables[partition] = (read.buckets, read.entries)
        if held:
            values = {b: held[b] for b in fields if b in held}
            values.update(zip(asked, read.bucket_values, strict=True))
            seen = SeenRead(read.buckets, read.entries, grow_to, values)
        else:
            seen = SeenRead.of_reply(
                read.buckets, read.entries, grow_to, read.bucket_values, numbers
            )
        sums = {
            key: dict(zip(assets, values, strict=True))
            for (key, assets), values in zip(wanted, read.sums, strict=True)
        }
        return Fence(read.position, read.forgotten), sums, seen, bool(held)

    async def point(self, partition: int, asset_ids: Sequence[str]) -> None:
        """Record which partition holds each asset's metrics (idempotent)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.set(self._keys.perf_partition_of(asset_id), partition)
            await pipe.execute()

    async def forget(self, asset_id: str, partition: int) -> None:
        """Remove a deleted asset's lifetime sums, then its pointer
        (each idempotent: a crash between leaves the pointer, and the asset's next refresh
        finishes)."""
        await self._scripts.perf_forget(
            keys=[self._keys.perf_lifetime(partition), self._keys.perf_counters(partition)],
            args=[asset_id],
        )
        await self._redis.delete(self._keys.perf_partition_of(asset_id))

    async def partition_of(self, asset_id: str) -> int | None:
        value = await self._redis.get(self._keys.perf_partition_of(asset_id))
        return None if value is None else int(value)

    async def totals(
        self,
        asset_id: str,
        window: Window,
        now: float,
        *,
        channel: Channel | None = None,
        campaign: str | None = None,
    ) -> Totals | None:
        """The asset's sums over a window (of one channel or one campaign when given), or
        None when no event of it was ever applied."""
        totals = await self.window_totals(asset_id, window, now)
        if totals is None:
            return None
        if campaign is not None:
            return totals.campaign(campaign)
        return totals.total if channel is None else totals.channel(channel)

    async def window_totals(self, asset_id: str, window: Window, now: float) -> WindowTotals | None:
        """The asset's sums over a window per channel and campaign, or None when no event
        of it was ever applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return None
        [totals] = await self.totals_by_window([(asset_id, partition)], [window], now)
        return totals[window]

    async def totals_by_window(
        self, placed: Sequence[tuple[str, int]], windows: Sequence[Window], now: float
    ) -> list[dict[Window, WindowTotals]]:
        """For each (asset, partition holding its metrics), its sums over each window, read
        in two round trips: the asset's dimensions in each hash of the windows, then its
        counters in the hashes where it has some."""
        plan = [
            (index, window, self._window_keys(partition, window, now))
            for index, (_, partition) in enumerate(placed)
            for window in windows
        ]
        read = await self._read([(placed[i][0], keys) for i, _, keys in plan])
        result: list[dict[Window, WindowTotals]] = [{} for _ in placed]
        for (index, window, _), entries in zip(plan, read, strict=True):
            result[index][window] = window_totals(entries)
        return result

    async def daily(self, asset_id: str, now: float) -> list[WindowTotals]:
        """The asset's sums per UTC day over the last 30 days, newest first (index 0: the
        day holding `now`); empty when no event of it was ever applied."""
        resolution, starts = window_buckets(Window.MONTH, now)
        buckets = await self.series(asset_id, resolution, starts)
        return [] if buckets is None else buckets

    async def series(
        self, asset_id: str, resolution: Resolution, starts: Sequence[int]
    ) -> list[WindowTotals] | None:
        """The asset's sums in each bucket of `resolution` starting at `starts` (in that
        order; an expired or empty bucket sums to 0), or None when no event of it was ever
        applied."""
        partition = await self.partition_of(asset_id)
        if partition is None:
            return None
        keys = [self._keys.perf_bucket(partition, resolution.name, s) for s in starts]
        [entries] = await self._read([(asset_id, keys)])
        return [window_totals([entry]) for entry in entries]

    async def _read(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> list[list[Counters]]:
        """For each (asset, hashes of its partition), the asset's counters in each hash.

        Assets asking for the same hashes are read together in one transaction (one
        `HMGET` per hash, a snapshot of them all), at most READ_ASSETS_PER_CALL a
        transaction (so that it holds Redis briefly), up to READS_IN_FLIGHT at once: a
        round trip per few groups instead of a command per hash and asset."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, (_, keys) in enumerate(wanted):
            if keys:
                groups.setdefault(tuple(keys), []).append(index)
        calls = [
            (keys, indexes[start : start + READ_ASSETS_PER_CALL])
            for keys, indexes in groups.items()
            for start in range(0, len(indexes), READ_ASSETS_PER_CALL)
        ]
        replies: list[list[list[str | None]]] = []
        for start in range(0, len(calls), READS_IN_FLIGHT):
            replies += await asyncio.gather(
                *(
                    self._read_snapshot(keys, [wanted[i][0] for i in part])
                    for keys, part in calls[start : start + READS_IN_FLIGHT]
                )
            )
        result: list[list[Counters]] = [[] for _ in wanted]
        for (_, part), by_hash in zip(calls, replies, strict=True):
            for a, index in enumerate(part):
                result[index] = [decode_sums(values[a]) for values in by_hash]
        return result

    async def _read_snapshot(
        self, keys: Sequence[str], assets: list[str]
    ) -> list[list[str | None]]:
        """Per hash of `keys` (hashes of one partition, so one slot), the assets' sums
        there, read in one MULTI/EXEC: a snapshot that no step's write falls inside."""
        commands = [("MULTI",), *(("HMGET", key, *assets) for key in keys), ("EXEC",)]
        attempt = 1
        while True:
            try:
                async with pinned(self._redis, keys[0]) as conn:
                    replies = await conn.run(commands)
                    raise_first_error(replies)
                values: list[list[str | None]] = replies[-1]
                raise_first_error(values)
                return values
            except (AskError, TryAgainError):  # MOVED is an AskError; the slot map is updated
                if attempt == READ_TRIES:
                    raise
            except RedisConnectionError:
                # Once: a pooled connection the server closed while idle (a read can be
                # sent again; a Redis that is away fails the second time too).
                if attempt > 1:
                    raise
            await asyncio.sleep(READ_RETRY_SECONDS * attempt)
            attempt += 1

    def _window_keys(self, partition: int, window: Window, now: float) -> list[str]:
        """The hashes whose entries make up the window at `now`."""
        if window is Window.LIFETIME:
            return [self._keys.perf_lifetime(partition)]
        resolution, starts = window_buckets(window, now)
        return [self._keys.perf_bucket(partition, resolution.name, s) for s in starts]

    async def counted_assets(self, partition: int, resolution: Resolution, start: int) -> set[str]:
        """The assets with counts in one bucket of the partition (none once it expired).
        Read with HSCAN, a page at a time, so that a large bucket never holds Redis: each
        field is an asset."""
        key = self._keys.perf_bucket(partition, resolution.name, start)
        return {name async for name, _ in self._redis.hscan_iter(key, count=1_000)}

    async def partitions_of(self, asset_ids: Sequence[str]) -> list[int | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for asset_id in asset_ids:
                pipe.get(self._keys.perf_partition_of(asset_id))
            values = await pipe.execute()
        return [None if v is None else int(v) for v in values]

    async def counters(self, partitions: int) -> EventCounts:
        """Applied, duplicate and late events over every partition."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(partitions):
                pipe.hgetall(self._keys.perf_counters(partition))
            replies = await pipe.execute()
        return EventCounts(
            applied=sum(int(r.get("applied", 0)) for r in replies),
            duplicates=sum(int(r.get("duplicates", 0)) for r in replies),
            late=sum(int(r.get("late", 0)) for r in replies),
        )


def _new_sums(
    hashes: list[tuple[str, int, Entries]], read: _Read
) -> list[tuple[str, int, list[str]]] | str:
    """For each hash with counts to add: its key, EXPIREAT and `asset_id, new sums, ...`;
    or the first asset a sum of which would pass MAX_SUM."""
    written: list[tuple[str, int, list[str]]] = []
    for key, expires, entries in hashes:
        pairs: list[str] = []
        stored_in = read.sums[key]  # the batch's assets, or more (before copies were dropped)
        for asset_id, adds in entries.items():
            if not adds:
                continue  # events that count nothing: the asset is marked dirty only
            sums, largest = add_sums(stored_in[asset_id], adds)
            if largest > MAX_SUM:
                return asset_id
            pairs += (asset_id, sums)
        if pairs:
            written.append((key, expires, pairs))
    return written


def _unset_expiries(
    written: list[tuple[str, int, list[str]]], expiring: dict[str, int]
) -> list[tuple[str, int, list[str]]]:
    """`written` with EXPIREAT 0 (none sent) for the hashes that already have it."""
    if not expiring:
        return written
    return [
        (key, 0 if expiring.get(key) == expires else expires, pairs)
        for key, expires, pairs in written
    ]


def _pairs(flat: list[str]) -> Iterator[tuple[str, str]]:
    """(asset_id, sums) from `asset_id, sums, ...`."""
    it = iter(flat)
    return zip(it, it, strict=True)
