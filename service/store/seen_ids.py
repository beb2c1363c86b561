"""The event ids a partition applied in the last day: one Redis hash per partition,
read and written inside the exactly-once step (service/store/metrics.py).

Why this layout: a set of ids costs Redis about 50 bytes per id (a hashtable entry per
member); packing many ids into one field value costs 13 bytes per id plus a share of
one field per bucket (about 17 bytes in all), and the step still reads and writes it
with one command each way.

Layout of `P:{ps:N.S}:seen` (a linear-hashing table):

- field `n`: the number of buckets N (1 when the hash does not exist); field `c`: the
  number of entries stored, live or stale;
- field `<i>` (decimal, 0 <= i < N): bucket i, entries of ENTRY_CHARS characters, each
  an id's fingerprint (FINGERPRINT_CHARS) then the generation of processing time it was
  applied in (2 characters), oldest first.

Every character is 7-bit ASCII, so the values pass through a client that decodes replies.
An id's bucket comes from the 28 bits of its fingerprint's first four characters
(`address`). The table grows a bucket at a time: bucket j is split off bucket
j - 2^floor(log2 j), whose entries move there when their address says so; no step
rewrites more than the buckets it touches and the ones it splits.

An entry is live for GENERATIONS generations of GENERATION_SECONDS (24 to 30 hours);
stale ones are dropped from the front of a bucket when the step rewrites it, and the
whole hash expires when its partition applies nothing for that long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import blake2b

from service.domain.windows import HOUR

# An id is remembered for 24 to 30 hours: per generation of processing time, checked
# over the generations of the last SEEN_SECONDS.
SEEN_SECONDS = 24 * HOUR
GENERATION_SECONDS = 6 * HOUR
GENERATIONS = SEEN_SECONDS // GENERATION_SECONDS + 1

# 11 characters of 7 bits: two ids of a partition share a fingerprint with a probability
# of about n / 2^77 for n ids remembered, never in practice.
FINGERPRINT_CHARS = 11
STAMP_CHARS = 2  # the generation, modulo 2^14 (it comes round again after 11 years)
ENTRY_CHARS = FINGERPRINT_CHARS + STAMP_CHARS
# Entries per bucket the table grows towards: fewer cost more bytes per id (a field per
# bucket), more cost more bytes per step (a step rewrites each bucket it adds to).
LOAD = 16
MAX_BUCKETS = 1 << 28  # the address has 28 bits
_SEVEN_BITS = bytes(b & 0x7F for b in range(256))


def fingerprint(event_id: str) -> tuple[str, int]:
    """The id's fingerprint and the 28-bit number its bucket is chosen by."""
    digest = blake2b(event_id.encode(), digest_size=FINGERPRINT_CHARS).digest()
    digest = digest.translate(_SEVEN_BITS)
    return digest.decode("ascii"), digest[0] | digest[1] << 7 | digest[2] << 14 | digest[3] << 21


def _number(entry: str) -> int:
    """The 28-bit number of a stored entry (as `fingerprint` gives it)."""
    return ord(entry[0]) | ord(entry[1]) << 7 | ord(entry[2]) << 14 | ord(entry[3]) << 21


def generation(now: int) -> int:
    return now // GENERATION_SECONDS


def stamp(generation: int) -> str:
    """The generation, modulo 2^14, as two characters."""
    return chr(generation & 0x7F) + chr(generation >> 7 & 0x7F)


def address(number: int, buckets: int) -> int:
    """The bucket of an id's number in a table of `buckets` buckets (linear hashing)."""
    low = 1 << (buckets.bit_length() - 1)
    at = number & (2 * low - 1)
    return at if at < buckets else at & (low - 1)


def split_source(bucket: int) -> int:
    """The bucket that `bucket` is split off when the table grows to hold it."""
    return bucket - (1 << (bucket.bit_length() - 1))


def grown_size(buckets: int, entries: int, ids: int) -> int:
    """The table's size after a step of `ids` new ids: enough buckets for every entry at
    LOAD a bucket, growing at most twice over in one step and never past MAX_BUCKETS (a
    step rewrites each bucket it splits)."""
    wanted = max(buckets, -(-(entries + ids) // LOAD))
    return min(wanted, 2 * buckets, MAX_BUCKETS)


def buckets_to_read(buckets: int, grow_to: int, numbers: Sequence[int]) -> list[int]:
    """The buckets a step reads, in the order `SeenRead.of_reply` takes their values: the
    ones the growth to `grow_to` splits, then each id's bucket in the table as it stands."""
    fields = [split_source(new) for new in range(buckets, grow_to)]
    fields.extend(address(number, buckets) for number in numbers)
    return fields


@dataclass(frozen=True, slots=True)
class SeenRead:
    """What a step read of the table: its size, and the buckets it needs (the ones it
    splits, and each id's bucket before the splits)."""

    buckets: int
    entries: int
    grow_to: int  # the size after the step (`grown_size`), which the read was made for
    values: dict[int, str]  # bucket -> its value ('' when it has none)

    @classmethod
    def of_reply(
        cls, buckets: int, entries: int, grow_to: int, values: Sequence[str], numbers: Sequence[int]
    ) -> SeenRead:
        """From the values of `buckets_to_read(buckets, grow_to, numbers)`, in order."""
        split = grow_to - buckets
        if len(values) != split + len(numbers):
            raise ValueError(f"{len(values)} buckets for {split} splits and {len(numbers)} ids")
        by_bucket = {
            split_source(new): value
            for new, value in zip(range(buckets, grow_to), values[:split], strict=True)
        }
        for number, value in zip(numbers, values[split:], strict=True):
            by_bucket[address(number, buckets)] = value
        return cls(buckets, entries, grow_to, by_bucket)


@dataclass(slots=True)
class SeenUpdate:
    """What a step writes to the table, and which of its ids were applied before."""

    known: list[int] = field(default_factory=list)  # indexes into the step's ids
    written: dict[int, str] = field(default_factory=dict)  # bucket -> its new value
    buckets: int = 1
    entries: int = 0


def record(
    read: SeenRead, fingerprints: Sequence[str], numbers: Sequence[int], now: int
) -> SeenUpdate:
    """Grow the table to `read.grow_to`, then look each id up: a live entry makes it
    known, otherwise it is added to its bucket. Pure: the caller writes the result."""
    current = generation(now)
    own_stamp = stamp(current)
    live = frozenset(stamp(current - age) for age in range(GENERATIONS))
    values = dict(read.values)
    update = SeenUpdate(buckets=read.grow_to, entries=read.entries)
    written = update.written
    for new in range(read.buckets, read.grow_to):
        source = split_source(new)
        mask = 2 * (1 << (new.bit_length() - 1)) - 1
        stay: list[str] = []
        move: list[str] = []
        value = values.get(source, "")
        for at in range(0, len(value), ENTRY_CHARS):
            entry = value[at : at + ENTRY_CHARS]
            if entry[FINGERPRINT_CHARS:] not in live:
                update.entries -= 1
            elif _number(entry) & mask == new:
                move.append(entry)
            else:
                stay.append(entry)
        values[source] = written[source] = "".join(stay)
        values[new] = written[new] = "".join(move)
    # `address` for this size, unrolled: the loop below runs once per event.
    size = read.grow_to
    low = 1 << (size.bit_length() - 1)
    wide, narrow = 2 * low - 1, low - 1
    for index, fp in enumerate(fingerprints):
        bucket = numbers[index] & wide
        if bucket >= size:
            bucket &= narrow
        value = values.get(bucket, "")
        if value and value[FINGERPRINT_CHARS:ENTRY_CHARS] not in live and bucket not in written:
            value = values[bucket] = written[bucket] = _without_stale_front(value, live, update)
        found = value.find(fp)
        if found != -1 and (
            found % ENTRY_CHARS
            or value[found + FINGERPRINT_CHARS : found + ENTRY_CHARS] not in live
        ):
            found = _live_entry(value, fp, found + 1, live)
        if found != -1:
            update.known.append(index)
            continue
        values[bucket] = written[bucket] = value + fp + own_stamp
        update.entries += 1
    # `c` only steers the growth: a count that went wrong (a hand edit) must not stop
    # the step, which refuses a negative one.
    update.entries = max(update.entries, 0)
    return update


def _live_entry(value: str, fp: str, start: int, live: frozenset[str]) -> int:
    """Where `fp` is a live entry of the bucket from `start` on, or -1 (the first match
    was inside two entries, or stale)."""
    found = value.find(fp, start)
    while found != -1:
        if (
            found % ENTRY_CHARS == 0
            and value[found + FINGERPRINT_CHARS : found + ENTRY_CHARS] in live
        ):
            return found
        found = value.find(fp, found + 1)
    return -1


def _without_stale_front(value: str, live: frozenset[str], update: SeenUpdate) -> str:
    """The bucket without the stale entries at its front (entries are appended in time
    order, so that is where they gather; a stale one further in is skipped by lookups)."""
    at = 0
    while at < len(value) and value[at + FINGERPRINT_CHARS : at + ENTRY_CHARS] not in live:
        at += ENTRY_CHARS
    update.entries -= at // ENTRY_CHARS
    return value[at:]


# --- the id sets of earlier versions (`P:{ps:N.S}:ids:<start>`, 12-byte BLAKE2b
# fingerprints per generation): read, never written, until the last of them expires


def legacy_fingerprint(event_id: str) -> bytes:
    return blake2b(event_id.encode(), digest_size=12).digest()


def legacy_generation_starts(now: int) -> list[int]:
    """The starts of the generations whose id sets can still hold a live id at `now`."""
    current = now - now % GENERATION_SECONDS
    return [current - i * GENERATION_SECONDS for i in range(GENERATIONS - 1, -1, -1)]
