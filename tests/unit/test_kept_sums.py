"""KeptSums: sums kept per partition at a fence, bounded, dropped whole."""

from __future__ import annotations

from service.store.kept_sums import Fence, KeptSums


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


def test_the_least_recently_written_go_first_when_full() -> None:
    kept = KeptSums(3)
    kept.keep(0, Fence(1, 0), [("life", {"a1": "1", "a2": "2", "a3": "3"}.items())])
    kept.keep(
        0, Fence(1, 0), [("life", {"a1": "1+"}.items())]
    )  # written again: a2 is now the oldest
    assert kept.get(0, "life", "a2") == "2", "reading is not a use"
    kept.keep(0, Fence(1, 0), [("life", {"a4": "4"}.items())])
    assert kept.get(0, "life", "a2") is None
    assert [kept.get(0, "life", a) for a in ("a1", "a3", "a4")] == ["1+", "3", "4"]
    # Over every partition: the newest stay, wherever the oldest were.
    kept.keep(5, Fence(1, 0), [("life5", {"b1": "1", "b2": "2"}.items())])
    assert len(kept) == 3
    assert [kept.get(0, "life", a) for a in ("a1", "a3", "a4")] == [None, None, "4"]
    assert [kept.get(5, "life5", b) for b in ("b1", "b2")] == ["1", "2"]


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
