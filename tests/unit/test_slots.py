"""Cluster slots of the keys, and the spread of the partitions' hash tags over them."""

from __future__ import annotations

import math

import pytest

from service.config import Settings
from service.store.keys import Keys
from service.store.slots import SLOTS, crc16, key_slot, spread_tag


def test_crc16_is_redis_clusters() -> None:
    # The check value of CRC-16/XMODEM, and slots given in the Redis Cluster specification.
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    # An empty first tag: the whole key is hashed.
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % SLOTS


def test_every_key_of_a_partition_shares_its_slot() -> None:
    keys = Keys("media")
    for partition in range(16):
        slots = {
            key_slot(k)
            for k in (
                keys.perf_position(partition, "t"),
                keys.perf_counters(partition),
                keys.perf_dirty(partition),
                keys.perf_ids(partition, 0),
                keys.perf_seen(partition),
                keys.perf_lifetime(partition),
                keys.perf_bucket(partition, "d1", 86400),
            )
        }
        assert len(slots) == 1


def shares(partitions: int, primaries: int) -> list[int]:
    """Partitions per primary when the primaries own equal contiguous slot ranges."""
    counts = [0] * primaries
    for partition in range(partitions):
        slot = key_slot("{" + spread_tag("ps", partition) + "}")
        counts[slot * primaries // SLOTS] += 1
    return counts


@pytest.mark.parametrize("partitions", [8, 16, 32, 64, 128])
def test_a_power_of_two_of_partitions_gives_each_primary_its_share_rounded_up(
    partitions: int,
) -> None:
    # The sizing rule in docs/redis-keys.md.
    for primaries in range(2, 17):
        counts = shares(partitions, primaries)
        assert max(counts) <= math.ceil(partitions / primaries), (primaries, counts)
        if partitions % primaries == 0 and primaries & (primaries - 1) == 0:
            assert min(counts) == max(counts), "a power of two of primaries: exactly even"


def test_any_number_of_partitions_stays_within_three_of_even() -> None:
    for primaries in (3, 5, 6, 7):
        for partitions in range(1, 257):
            assert max(shares(partitions, primaries)) <= partitions / primaries + 3


def test_the_plain_partition_tags_bunch_up() -> None:
    # Why the tags are salted: unsalted, 8 partitions leave a primary of 3 with 1 or none.
    counts = [0] * 3
    for partition in range(8):
        counts[key_slot(f"{{ps:{partition}}}") * 3 // SLOTS] += 1
    assert max(counts) - min(counts) >= 2, counts


def test_the_default_partition_count_spreads_evenly_over_any_cluster_it_can_fill() -> None:
    # Redis Cluster needs 3 primaries; more primaries than partitions leave some idle.
    partitions = Settings.model_fields["topic_partitions"].default
    for primaries in range(3, partitions + 1):
        counts = shares(partitions, primaries)
        assert max(counts) <= math.ceil(partitions / primaries), (primaries, counts)
        assert min(counts) >= partitions // primaries, (primaries, counts)
