"""A partition batch's exactly-once step in Redis: a read and a write, two round trips
on one connection (service/store/pinned.py). service/store/metrics.py numbers the whole
step; this module says what each round trip sends.

1. Read, in one round trip:
   - `MULTI`, the reads, `EXEC`: the partition's position, its `forgotten` count, the
     size of its table of ids (`n`, `c`), the buckets of that table asked for and the
     sums asked for, at one instant (no other command runs inside a transaction);
   - then `WATCH position counters` and the position and `forgotten` count again. Both
     the same as in the transaction: no writer came between the transaction and the
     WATCH (each writer moves one of them in the same atomic step as its other writes),
     so what was read still holds while the WATCH holds. Otherwise read again.
2. The worker decides and computes (metrics.py).
3. Write, in one round trip: `MULTI`, the new sums and their expiries (those not set
   yet, metrics.py), the table's new
   buckets, size and expiry, the dirty marks, the position, the counters, `EXEC`. Redis
   runs it only if neither watched key changed since the WATCH (`EXEC` answers nil
   otherwise: another worker wrote the partition, or an asset's lifetime sums were
   removed), so the write is the read's sums plus this batch, or nothing.

Why no Lua: a script pays twice for every value that passes through it (each argument
becomes a Lua string, then a Redis string again, and each reply a Lua string, then a
reply again); the same commands cost Redis about half as much in a transaction
(docs/benchmarks.md). Every key carries the partition's hash tag, so on a cluster both
transactions run on the one node that holds the partition, and during a slot migration
they are refused whole (TRYAGAIN, ASK) rather than split.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import TransientError
from service.store.keys import Keys
from service.store.pinned import Command, Pinned, raise_first_error


@dataclass(frozen=True, slots=True)
class StepRead:
    """What a step read: the fence, the size of the table of ids, the buckets asked and
    the sums asked ('' for a bucket or sum that does not exist)."""

    position: int  # the offset of the last event applied; -1 when none
    forgotten: int  # the partition's `forgotten` count
    buckets: int  # the table's `n` (1 when the table does not exist)
    entries: int  # the table's `c`
    bucket_values: list[str]  # of the buckets asked, in their order
    sums: list[list[str]]  # per hash asked, of its assets asked, in their order


@dataclass(frozen=True, slots=True)
class StepWrite:
    """What a step writes when its fence still holds."""

    last: int  # the batch's last offset: the new position
    applied: int
    copies: int
    late: int
    dirty: Sequence[str]  # assets whose sums changed (for the leaderboards)
    hashes: Sequence[tuple[str, int, Sequence[str]]]  # key, EXPIREAT (0: none), flat pairs
    buckets: Mapping[int, str]  # buckets of the table of ids rewritten
    table: tuple[int, int]  # the table's `n` and `c` after the step
    table_expires: int  # EXPIREAT of the table


# Reads of one step before it gives up for a while (a transient failure: the partition
# pauses and retries), when another writer keeps moving the fence between read and write.
MAX_READS = 20


def fence_moving(partition: int) -> TransientError:
    return TransientError(
        f"partition {partition}: another writer moved its position or its forgotten count "
        f"under {MAX_READS} reads in a row (a worker that still believes it owns the "
        "partition, or many of its assets deleted at once); retrying later"
    )


# the connection, partition, buckets of the table of ids to read, (hash, asset_ids) to read
ReadStep = Callable[
    [Pinned, int, Sequence[int], Sequence[tuple[str, Sequence[str]]]], Awaitable[StepRead]
]


class PerfStep:
    """The two round trips of a step, for one partition at a time."""

    def __init__(self, keys: Keys, topic: str) -> None:
        self._keys = keys
        self._topic = topic

    def position_key(self, partition: int) -> str:
        return self._keys.perf_position(partition, self._topic)

    async def read(
        self,
        conn: Pinned,
        partition: int,
        buckets: Sequence[int],
        wanted: Sequence[tuple[str, Sequence[str]]],
    ) -> StepRead:
        """Round trip 1: the transaction of reads, then the WATCH of the fence."""
        keys = self._keys
        position, counters = self.position_key(partition), keys.perf_counters(partition)
        seen = keys.perf_seen(partition)
        reads: list[Command] = [
            ("GET", position),
            ("HGET", counters, "forgotten"),
            ("HMGET", seen, "n", "c"),
        ]
        if buckets:
            reads.append(("HMGET", seen, *buckets))
        reads.extend(("HMGET", key, *assets) for key, assets in wanted if assets)
        commands = [("MULTI",), *reads, ("EXEC",), ("WATCH", position, counters)]
        commands += [("GET", position), ("HGET", counters, "forgotten")]
        for _ in range(MAX_READS):
            replies = await conn.run(commands)
            raise_first_error(replies)
            got = replies[len(reads) + 1]
            if got is None:  # a WATCH of an earlier read fired: that read is void anyway
                continue
            raise_first_error(got)
            if [got[0], got[1]] == replies[-2:]:
                break
        else:
            raise fence_moving(partition)
        pos, forgotten, (n, c) = got[0], got[1], got[2]
        values = iter(got[4:] if buckets else got[3:])
        return StepRead(
            position=-1 if pos is None else int(pos),
            forgotten=0 if forgotten is None else int(forgotten),
            buckets=1 if n is None else int(n),
            entries=0 if c is None else int(c),
            bucket_values=[v or "" for v in got[3]] if buckets else [],
            sums=[[v or "" for v in next(values)] if assets else [] for _, assets in wanted],
        )

    async def write(self, conn: Pinned, partition: int, step: StepWrite) -> bool:
        """Round trip 3: the transaction of writes. False when a watched key changed
        since the read (nothing was written)."""
        keys = self._keys
        seen = keys.perf_seen(partition)
        counters = keys.perf_counters(partition)
        commands: list[Command] = [("MULTI",)]
        for key, expires, pairs in step.hashes:
            if pairs:
                commands.append(("HSET", key, *pairs))
                if expires:
                    commands.append(("EXPIREAT", key, expires))
        if step.buckets:
            fields: list[Any] = ["n", step.table[0], "c", step.table[1]]
            for bucket, value in step.buckets.items():
                fields += (bucket, value)
            commands.append(("HSET", seen, *fields))
            commands.append(("EXPIREAT", seen, step.table_expires))
        if step.dirty:
            commands.append(("SADD", keys.perf_dirty(partition), *step.dirty))
        commands += [
            ("SET", self.position_key(partition), step.last),
            ("HINCRBY", counters, "applied", step.applied),
            ("HINCRBY", counters, "duplicates", step.copies),
            ("HINCRBY", counters, "late", step.late),
            ("EXEC",),
        ]
        replies = await conn.run(commands)  # (its EXEC ends the WATCH, whether it ran or not)
        raise_first_error(replies)
        done = replies[-1]
        if done is None:
            return False
        raise_first_error(done)
        return True
