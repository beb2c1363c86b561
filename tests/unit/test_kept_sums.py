"""KeptFields: sums and buckets kept per partition at a fence, bounded, dropped whole."""

from __future__ import annotations

from service.store.kept_sums import Fence, KeptBuckets, KeptSums


def test_sums_are_kept_at_their_fence_and_moved_by_the_partitions_own_write() -> None:
    kept = KeptSums(10)
    assert kept.fence(0) is None and kept.get(0, "life", "a1") is None
    kept.keep(0, Fence(4, 0), [("life", {"a1": "ch:web=1", "a2": ""}.items())])
    assert kept.fence(0) == Fence(4, 0)
    assert kept.get(0, "life", "a1") == "ch:web=1"
    assert kept.get(0, "life", "a2") == "", "an asset without sums is kept too"
    kept.move(0, Fence(9, 0))
    kept.keep(0, Fence(9, 0), [("life", {"a1": "ch:web=3"}.items())])
    assert kept.fence(0) == Fence(9, 0)
    assert (kept.get(0, "life", "a1"), kept.get(0, "life", "a2")) == ("ch:web=3", "")
    assert len(kept) == 2


def test_sums_at_another_fence_replace_the_kept_ones() -> None:
    kept = KeptSums(10)
    kept.keep(
        0, Fence(4, 0), [("life", {"a1": "ch:web=1"}.items()), ("b", {"a1": "ch:web=1"}.items())]
    )
    kept.keep(1, Fence(7, 0), [("life1", {"a9": "ch:web=9"}.items())])
    kept.keep(0, Fence(4, 1), [("life", {"a2": "ch:web=2"}.items())])  # something was forgotten
    assert kept.get(0, "life", "a1") is None and kept.get(0, "b", "a1") is None
    assert kept.get(0, "life", "a2") == "ch:web=2"
    assert kept.get(1, "life1", "a9") == "ch:web=9", "other partitions keep theirs"


def test_drop_forgets_a_partition_and_its_fence() -> None:
    kept = KeptSums(10)
    kept.keep(0, Fence(4, 0), [("life", {"a1": "ch:web=1"}.items())])
    kept.drop(0)
    kept.move(0, Fence(9, 0))  # no fence to move
    assert kept.fence(0) is None and kept.get(0, "life", "a1") is None
    kept.keep(0, Fence(9, 0), [("life", {"a2": "ch:web=2"}.items())])
    assert kept.get(0, "life", "a1") is None, "sums dropped are not found again"
    kept.drop(3)  # never kept: nothing happens
    assert len(kept) == 1


def test_the_hashes_least_recently_written_go_first_when_full() -> None:
    kept = KeptSums(4)
    kept.keep(0, Fence(1, 0), [("day1", {"a1": "1", "a2": "2"}.items())])
    kept.keep(0, Fence(1, 0), [("day2", {"a1": "3"}.items())])
    kept.keep(0, Fence(1, 0), [("day1", {"a3": "4"}.items())])  # day1 is now the newest
    assert len(kept) == 4
    kept.keep(0, Fence(1, 0), [("day3", {"a1": "5"}.items())])
    assert kept.fields(0, "day2") == {}, "the hash written longest ago went whole"
    assert kept.fields(0, "day1") == {"a1": "1", "a2": "2", "a3": "4"}
    assert kept.get(0, "day1", "a1") == "1", "reading is not a use"
    assert len(kept) == 4
    # Over every partition: the newest stay, wherever the oldest were.
    kept.keep(5, Fence(1, 0), [("life5", {"b1": "1", "b2": "2"}.items())])
    assert len(kept) == 4
    assert kept.fields(0, "day3") == {"a1": "5"} and kept.fields(0, "day1") == {"a3": "4"}
    assert kept.fields(5, "life5") == {"b1": "1", "b2": "2"}


def test_a_hash_larger_than_the_room_left_loses_its_oldest_fields() -> None:
    kept = KeptSums(3)
    kept.keep(0, Fence(1, 0), [("life", {"a1": "1", "a2": "2", "a3": "3"}.items())])
    kept.keep(0, Fence(1, 0), [("life", {"a4": "4", "a2": "2+"}.items())])
    assert kept.fields(0, "life") == {"a2": "2+", "a3": "3", "a4": "4"}
    kept.keep(0, Fence(1, 0), [("life", {f"b{n}": str(n) for n in range(5)}.items())])
    assert kept.fields(0, "life") == {"b2": "2", "b3": "3", "b4": "4"}
    assert len(kept) == 3


def test_buckets_are_kept_under_their_numbers() -> None:
    kept = KeptBuckets(10)
    kept.keep(2, Fence(8, 1), [("seen", {0: "entries", 5: ""}.items())])
    assert kept.fence(2) == Fence(8, 1)
    assert kept.fields(2, "seen") == {0: "entries", 5: ""}
    assert kept.fields(3, "seen") == {} and kept.get(2, "seen", 1) is None


def test_a_size_of_zero_keeps_nothing() -> None:
    kept = KeptSums(0)
    kept.keep(0, Fence(1, 0), [("life", {"a1": "1"}.items())])
    assert kept.fence(0) is None and len(kept) == 0


def test_clear_forgets_every_partition_and_keeps_working() -> None:
    kept = KeptSums(10)
    kept.keep(0, Fence(5, 0), [("k", [("a1", "ch:web=1")])])
    kept.keep(1, Fence(7, 0), [("k", [("a2", "ch:web=2")])])
    kept.clear()
    assert len(kept) == 0 and kept.fence(0) is None and kept.fence(1) is None
    assert kept.get(0, "k", "a1") is None
    kept.keep(0, Fence(9, 0), [("k", [("a1", "ch:web=3")])])
    assert kept.fence(0) == Fence(9, 0) and kept.get(0, "k", "a1") == "ch:web=3"
