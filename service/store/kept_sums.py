"""Fields a worker wrote, kept so that its next batches need not read them again.

While a worker owns a partition it is the only writer of the partition's sums and of its
table of ids, so what it wrote last is what Redis holds, until another writer moves the
partition's position or its `forgotten` count (service/store/metrics.py): together, the
fence. Each partition keeps the fence its fields hold at. Redis refuses a write whose
fence is not its own (service/store/perf_step.py); the store then drops the partition's
fields here and reads them again. So a field kept here is never trusted past a write it
did not see, and the only cost of keeping too little is a read.

The store keeps two of these: the sums (per hash key: asset -> sums) and the buckets of
the tables of ids (per table key: bucket -> entries), each with a bound of its own.

Bounded: at most `size` fields over every partition. A partition's fields are filed per
hash, and the hashes least recently written go first (a bucket hash that expired is never
written again and goes that way); a hash that alone holds more than is left loses its
oldest fields first. Per hash rather than per field because a step writes hundreds of
fields of a few dozen hashes: a plain `dict.update` per hash costs a fraction of
moving each field to the end of one order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from itertools import islice
from typing import Generic, NamedTuple, TypeVar

F = TypeVar("F", bound=Hashable)

_NOTHING: Mapping[object, str] = {}


class Fence(NamedTuple):
    """Where a partition stood when its fields were read or written."""

    position: int
    forgotten: int


class KeptFields(Generic[F]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._fences: dict[int, Fence] = {}
        # partition -> hash key -> field -> value
        self._hashes: dict[int, dict[str, dict[F, str]]] = {}
        self._order: OrderedDict[tuple[int, str], None] = OrderedDict()  # oldest write first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def fence(self, partition: int) -> Fence | None:
        return self._fences.get(partition)

    def fields(self, partition: int, key: str) -> Mapping[F, str]:
        """The hash's fields as this worker last wrote them (empty when none are kept).
        Read only; reading is not a use (what a batch reads it writes, and `keep` makes
        that the newest)."""
        held = self._hashes.get(partition, {}).get(key)
        return _NOTHING if held is None else held  # type: ignore[return-value]

    def get(self, partition: int, key: str, field: F) -> str | None:
        return self.fields(partition, key).get(field)

    def keep(
        self,
        partition: int,
        fence: Fence,
        hashes: Iterable[tuple[str, Iterable[tuple[F, str]]]],
    ) -> None:
        """Fields (per hash key: (field, value) pairs) that hold at `fence`; fields kept
        before at another fence are dropped first."""
        if self._size <= 0:
            return
        if self._fences.get(partition) != fence:
            self.drop(partition)
            self._fences[partition] = fence
        mine = self._hashes.setdefault(partition, {})
        order = self._order
        for key, pairs in hashes:
            held = mine.get(key)
            if held is None:
                held = mine[key] = {}
                order[(partition, key)] = None
            else:
                order.move_to_end((partition, key))
            before = len(held)
            held.update(pairs)
            self._count += len(held) - before
        self._evict()

    def _evict(self) -> None:
        order = self._order
        while self._count > self._size:
            partition, key = next(iter(order))
            held = self._hashes[partition][key]
            excess = self._count - self._size
            if len(held) > excess:  # the oldest fields of the oldest hash are enough
                for field in list(islice(held, excess)):
                    del held[field]
                self._count -= excess
                return
            del order[(partition, key)]
            del self._hashes[partition][key]
            self._count -= len(held)

    def move(self, partition: int, fence: Fence) -> None:
        """The partition's own write moved it to `fence`: what is kept still holds."""
        if partition in self._fences:
            self._fences[partition] = fence

    def clear(self) -> None:
        """Forget every partition's fields."""
        self._fences.clear()
        self._hashes.clear()
        self._order.clear()
        self._count = 0

    def drop(self, partition: int) -> None:
        """Forget the partition's fields: another writer came between, or Redis lost
        writes."""
        self._fences.pop(partition, None)
        for key, held in self._hashes.pop(partition, {}).items():
            del self._order[(partition, key)]
            self._count -= len(held)


KeptSums = KeptFields[str]  # hash key -> asset_id -> sums
KeptBuckets = KeptFields[int]  # table key -> bucket -> entries
