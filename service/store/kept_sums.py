"""The sums a worker wrote, kept so that its next batches need not read them again.

While a worker owns a partition it is the only writer of the partition's sums, so what
it wrote last is what Redis holds, until another writer moves the partition's position
or its `forgotten` count (service/store/metrics.py): together, the fence. Each partition
keeps the fence its sums hold at. Redis refuses a write whose fence is not its own
(service/store/perf_step.py); the store then drops the partition's sums here and reads
them again. So a sum kept here is never trusted past a write it did not see, and the
only cost of keeping too little is a read.

Bounded: at most `size` sums over every partition, the least recently used dropped
first (a bucket that expired is never asked for again and goes that way too). Entries are
strings only, never tuples: a hundred thousand small containers would be walked by every
full pass of Python's garbage collector, which the worker then pays for at each
allocation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from itertools import count
from typing import NamedTuple


class Fence(NamedTuple):
    """Where a partition stood when its sums were read or written."""

    position: int
    forgotten: int


class KeptSums:
    def __init__(self, size: int) -> None:
        self._size = size
        self._fences: dict[int, Fence] = {}
        # A partition's sums are filed under its current epoch, a number no other partition
        # or drop ever had; dropping them is a new epoch (the old entries are never found
        # again and age out like unused ones).
        self._next_epoch = count()
        self._epochs: dict[int, str] = {}
        # "<epoch>|<hash key>|<asset_id>" -> sums, least recently used first
        self._sums: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sums)

    def fence(self, partition: int) -> Fence | None:
        return self._fences.get(partition)

    def get(self, partition: int, key: str, asset_id: str) -> str | None:
        """The asset's sums in the hash as this worker last wrote them, or None if not kept.
        (Being read does not count as a use: what a batch reads it writes, and `keep`
        makes that the newest.)"""
        epoch = self._epochs.get(partition)
        return None if epoch is None else self._sums.get(f"{epoch}|{key}|{asset_id}")

    def keep(
        self,
        partition: int,
        fence: Fence,
        sums: Iterable[tuple[str, Iterable[tuple[str, str]]]],
    ) -> None:
        """Sums (per hash key: (asset_id, sums) pairs) that hold at `fence`; sums kept
        before at another fence are dropped first."""
        if self._size <= 0:
            return
        if self._fences.get(partition) != fence or partition not in self._epochs:
            self.drop(partition)
            self._fences[partition] = fence
            self._epochs[partition] = str(next(self._next_epoch))
        kept, epoch = self._sums, self._epochs[partition]
        for key, pairs in sums:
            prefix = f"{epoch}|{key}|"
            for asset_id, value in pairs:
                entry = prefix + asset_id
                if entry in kept:
                    kept.move_to_end(entry)
                kept[entry] = value
        while len(kept) > self._size:
            kept.popitem(last=False)

    def move(self, partition: int, fence: Fence) -> None:
        """The partition's own write moved it to `fence`: what is kept still holds."""
        if partition in self._fences:
            self._fences[partition] = fence

    def clear(self) -> None:
        """Forget every partition's sums."""
        self._fences.clear()
        self._epochs.clear()
        self._sums.clear()

    def drop(self, partition: int) -> None:
        """Forget the partition's sums: another writer came between, or Redis lost writes."""
        self._fences.pop(partition, None)
        self._epochs.pop(partition, None)
