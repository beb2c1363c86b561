"""What the stores write in Redis and read back: key names, metric entries, board entries.
Data written by an earlier version must still read the same, so the formats are spelt out
here literally."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from service.domain.enums import Channel
from service.domain.metrics import Totals
from service.store import codecs
from service.store.codecs import (
    add_sums,
    decode_board_entry,
    decode_sums,
    encode_board_entry,
    encode_sums,
    window_totals,
)
from service.store.keys import Keys
from service.store.slots import spread_tag

SERVICE = Path(__file__).resolve().parents[2] / "service"


def test_sums_give_totals_per_channel_and_per_campaign() -> None:
    entries = [
        decode_sums("ch:email=10,1|cp:c1=10,1|ch:web=5|cp:c2=5"),
        decode_sums(""),
        decode_sums(None),
    ]
    assert entries[0] == {
        "ch:email": [10, 1, 0, 0, 0, 0],
        "cp:c1": [10, 1, 0, 0, 0, 0],
        "ch:web": [5, 0, 0, 0, 0, 0],
        "cp:c2": [5, 0, 0, 0, 0, 0],
    }
    totals = window_totals(entries)
    assert totals.total == Totals(impressions=15, clicks=1)
    assert totals.by_channel == {
        Channel.EMAIL: Totals(impressions=10, clicks=1),
        Channel.WEB: Totals(impressions=5),
    }
    assert totals.by_campaign == {
        "c1": Totals(impressions=10, clicks=1),
        "c2": Totals(impressions=5),
    }
    assert all(type(c) is Channel for c in totals.by_channel)
    empty = window_totals([])
    assert empty.total == Totals() and not empty.by_channel and not empty.by_campaign


def test_every_metric_and_campaign_ids_with_colons() -> None:
    entry = decode_sums("ch:social=1,2,3,4,5,6|cp:spring:2026=7,7,7,7,7,7")
    totals = window_totals([entry, entry])
    assert totals.channel(Channel.SOCIAL) == Totals(2, 4, 6, 8, 10, 12)
    assert totals.by_campaign == {"spring:2026": Totals(14, 14, 14, 14, 14, 14)}


def test_sums_are_written_without_zeros() -> None:
    assert encode_sums({"ch:web": [120, 0, 2, 0, 0, 0], "cp:c1": [0] * 6}) == "ch:web=120,,2"
    assert encode_sums({"ch:web": [0, 0, 0, 0, 0, 9]}) == "ch:web=,,,,,9"
    assert encode_sums({}) == ""
    assert decode_sums("ch:web=120,,2") == {"ch:web": [120, 0, 2, 0, 0, 0]}
    assert decode_sums("ch:web=,,,,,9") == {"ch:web": [0, 0, 0, 0, 0, 9]}


@pytest.mark.parametrize(
    "stored",
    ["ch:web", "=1", "ch:web=1,2,3,4,5,6,7", "ch:web=-1", "ch:web=x", "ch:web=1|cp:c1"],
)
def test_a_value_that_is_not_sums_is_an_error(stored: str) -> None:
    with pytest.raises(ValueError, match="not a stored sum"):
        decode_sums(stored)


def test_adding_parses_only_the_dimensions_added_to() -> None:
    stored = "ch:web=10,1|cp:ch:web=4|cp:c1=10,1"
    text, largest = add_sums(stored, {"ch:web": [5, 0, 0, 0, 0, 1], "ch:email": [2, 0, 0, 0, 0, 0]})
    assert text == "ch:web=15,1,,,,1|cp:ch:web=4|cp:c1=10,1|ch:email=2"
    assert largest == 15
    # A campaign named like a channel is its own dimension; the first one is found too.
    text, _ = add_sums(stored, {"cp:ch:web": [1, 0, 0, 0, 0, 0], "cp:c1": [0, 1, 0, 0, 0, 0]})
    assert text == "ch:web=10,1|cp:ch:web=5|cp:c1=10,2"
    assert add_sums("", {"ch:web": [3, 0, 0, 0, 0, 0]}) == ("ch:web=3", 3)
    with pytest.raises(ValueError, match="not a stored sum"):
        add_sums("ch:web=1,2,3,4,5,6,7", {"ch:web": [1, 0, 0, 0, 0, 0]})


def test_adding_agrees_with_decoding_on_random_sums() -> None:
    rng = random.Random(5)
    dimensions = ["ch:web", "ch:email", "cp:c1", "cp:web", "cp:x:y"]
    for _ in range(500):
        stored = {
            d: [rng.choice([0, 0, 1, 7, 10**12]) for _ in range(6)]
            for d in rng.sample(dimensions, rng.randint(0, 5))
        }
        adds = {
            d: [rng.choice([0, 1, 3]) for _ in range(6)]
            for d in rng.sample(dimensions, rng.randint(1, 3))
        }
        text, largest = add_sums(encode_sums(stored), adds)
        oracle = {d: list(c) for d, c in stored.items()}
        for d, counts in adds.items():
            oracle[d] = [a + b for a, b in zip(oracle.get(d, [0] * 6), counts, strict=True)]
        assert decode_sums(text) == {d: c for d, c in oracle.items() if any(c)}
        assert largest == max(max(oracle[d]) for d in adds)


def test_dimensions_of_another_shape_are_ignored() -> None:
    entry = {
        "ch:email": [0, 2, 0, 0, 0, 0],
        "ch:fax": [0, 5, 0, 0, 0, 0],  # a channel this version does not know
        "cp:": [0, 5, 0, 0, 0, 0],  # no campaign
        "xx:email": [0, 5, 0, 0, 0, 0],
        "cp:short": [1, 2],  # not six counts
    }
    totals = window_totals([entry])
    assert totals.by_channel == {Channel.EMAIL: Totals(clicks=2)}
    assert totals.by_campaign == {}


def test_board_entries() -> None:
    totals = Totals(100, 5, 7, 1, 2, 3)
    assert encode_board_entry(totals) == "100,5,7,1,2,3"
    assert decode_board_entry("100,5,7,1,2,3") == totals
    assert decode_board_entry(encode_board_entry(Totals())) == Totals()


def test_key_names() -> None:
    k = Keys("media")
    assert k.board("L", "24h", None) == "media:{l:L}:lb:24h:all"
    assert k.board("L", "7d", "email") == "media:{l:L}:lb:7d:ch:email"
    assert k.board_library("A") == "media:{a:A}:lb-library"
    assert k.boards_dirty == "media:lb-dirty"
    assert k.board_libraries == "media:lb-libraries"
    assert k.boards_swept_hour == "media:lb-swept-hour"
    tag = spread_tag("ps", 3)
    assert tag.startswith("ps:3.")
    assert k.perf_dirty(3) == f"media:{{{tag}}}:dirty"
    assert k.asset_suggestions("A") == "media:{a:A}:suggestions"
    assert k.suggestion("S") == "media:suggestion:S"
    assert k.library_suggestion_index("L") == "media:{l:L}:suggestion-index"
    assert k.library_suggestion_index("L", "status", "open") == (
        "media:{l:L}:suggestion-index:status:open"
    )
    assert k.library_suggestion_members("L") == "media:{l:L}:suggestion-members"
    assert k.variant_of("A") == "media:{a:A}:variant-of"
    assert k.suggestions_realised("resize") == "media:suggestions-realised:resize"
    assert k.perf_bucket(3, "h1", 3600) == f"media:{{{tag}}}:b:h1:3600"
    assert k.perf_lifetime(3) == f"media:{{{tag}}}:life"
    assert k.perf_ids(3, 21600) == f"media:{{{tag}}}:ids:21600"
    assert k.perf_partition_of("A") == "media:{a:A}:perf-partition"


def test_only_keys_py_names_keys_and_only_the_store_knows_fields() -> None:
    """Every key is built by `Keys`; bucket fields and board members are read only in
    service/store/ (the domain and the handlers see domain values)."""
    for module in (SERVICE / "store").glob("*.py"):
        if module.name != "keys.py":
            assert "_keys.prefix" not in module.read_text(), module
    for room in ("domain", "handlers", "api"):
        for module in (SERVICE / room).rglob("*.py"):
            text = module.read_text()
            for fragment in ('"ch:', '"cp:', "'ch:", 'f"ch:', 'f"cp:', "lb-", ":lb:"):
                assert fragment not in text, (module, fragment)


def test_library_counters_read_as_statistics() -> None:
    stats = codecs.library_stats(
        "lib-1",
        {
            "assets": "2",
            "bytes": "10",
            "media_type:image": "2",
            "status:draft": "1",
            "status:published": "1",
        },
    )
    assert stats.asset_count == 2 and stats.total_bytes == 10
    assert stats.by_media_type["image"] == 2 and stats.by_media_type["video"] == 0
    assert "deleted" not in stats.by_status
    assert stats.by_status["published"] == 1
