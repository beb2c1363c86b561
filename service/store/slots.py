"""Hash tags that spread a numbered family of keys evenly over a Redis Cluster.

Redis Cluster stores a key in slot CRC16(tag) mod 16384, where the tag is the part of
the key in braces. Tags like `ps:0` ... `ps:7` land on eight arbitrary slots: on a
three-primary cluster one primary may hold most of them. `spread_tag` gives member `i`
of a family a salted tag (`ps:3.117`) whose slot falls in a chosen range instead: the
ranges follow the bit-reversed order of `i` (0, 1/2, 1/4, 3/4, 1/8, ... of the slot
space), so the first N members of a family are evenly spread for every N, and a
cluster whose primaries own equal contiguous slot ranges (what
`redis-cli --cluster create` makes) gets an even share of them. The tag depends on the
member's number only, never on how many members there are: adding partitions moves no
key.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import count

SLOTS = 16384
_RANGE_BITS = 10  # the slot space is cut in 2^10 target ranges of 16 slots
_RANGE_SLOTS = SLOTS >> _RANGE_BITS


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


def key_slot(key: str) -> int:
    """The cluster slot of a key: of its tag (the first non-empty `{...}`) if it has one."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key.encode()) % SLOTS


def target_range(index: int) -> int:
    """The range (of 16 slots) member `index` of a family is placed in: the bit-reversed
    index, so consecutive members halve the gaps left by the ones before."""
    bits = index % (1 << _RANGE_BITS)
    reversed_bits = int(f"{bits:0{_RANGE_BITS}b}"[::-1], 2)
    return reversed_bits


@lru_cache(maxsize=4096)
def spread_tag(family: str, index: int) -> str:
    """`<family>:<index>.<salt>`, the first salt whose slot lies in the member's range.

    About a thousand tries on average (a few milliseconds), once per member per process.
    """
    wanted = target_range(index)
    for salt in count():
        tag = f"{family}:{index}.{salt}"
        if crc16(tag.encode()) % SLOTS // _RANGE_SLOTS == wanted:
            return tag
    raise AssertionError("unreachable: count() never ends")
