"""The read half of a partition batch's exactly-once step (service/store/metrics.py
numbers the whole step): one MULTI/EXEC transaction on the partition's keys.

Why a transaction and not a script: the read has no decision to make, and a script pays
twice for every value that passes through it (each argument becomes a Lua string, then a
Redis string again, and each reply a Lua string, then a reply again). The same reads
cost Redis about half the CPU in a transaction (docs/benchmarks.md). A transaction is
as atomic as a script: no other command runs between its reads, so the sums and buckets
read hold at the fence read with them. Every key carries the partition's hash tag, so on
a cluster the transaction runs on the one node that holds the partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.store.keys import Keys


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


# partition, buckets of the table of ids to read, (metric hash, asset_ids) to read
ReadStep = Callable[[int, Sequence[int], Sequence[tuple[str, Sequence[str]]]], Awaitable[StepRead]]


class StepReader:
    """Reads a step's fence, table size, buckets and sums of one partition at once."""

    def __init__(self, redis: Any, keys: Keys, topic: str) -> None:
        self._redis = redis
        self._keys = keys
        self._topic = topic

    async def __call__(
        self, partition: int, buckets: Sequence[int], wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> StepRead:
        keys = self._keys
        seen = keys.perf_seen(partition)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.perf_position(partition, self._topic))
            pipe.hget(keys.perf_counters(partition), "forgotten")
            pipe.hmget(seen, ["n", "c"])
            if buckets:
                pipe.hmget(seen, buckets)
            for key, assets in wanted:
                if assets:
                    pipe.hmget(key, assets)
            replies = await pipe.execute()
        position, forgotten, (n, c) = replies[0], replies[1], replies[2]
        values = iter(replies[4:] if buckets else replies[3:])
        return StepRead(
            position=-1 if position is None else int(position),
            forgotten=0 if forgotten is None else int(forgotten),
            buckets=1 if n is None else int(n),
            entries=0 if c is None else int(c),
            bucket_values=[v or "" for v in replies[3]] if buckets else [],
            sums=[[v or "" for v in next(values)] if assets else [] for _, assets in wanted],
        )
