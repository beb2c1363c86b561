"""What the stores write in Redis and read back: key names, metric entries, board entries.
Data written by an earlier version must still read the same, so the formats are spelt out
here literally."""

from __future__ import annotations

from pathlib import Path

from service.domain.enums import Channel
from service.domain.metrics import Totals
from service.store import codecs
from service.store.codecs import (
    counter_names,
    decode_board_entry,
    decode_counters,
    decode_dimensions,
    encode_board_entry,
    window_totals,
)
from service.store.keys import Keys
from service.store.slots import spread_tag

SERVICE = Path(__file__).resolve().parents[2] / "service"


def test_counters_give_totals_per_channel_and_per_campaign() -> None:
    dimensions = decode_dimensions("|ch:email|cp:c1|ch:web|cp:c2|")
    assert dimensions == ["ch:email", "cp:c1", "ch:web", "cp:c2"]
    names = counter_names("a1", dimensions)
    assert names[:7] == [f"a1|ch:email|{m}" for m in range(6)] + ["a1|cp:c1|0"]
    values: list[str | None] = [None] * len(names)
    for name, value in {
        "a1|ch:email|0": "10",
        "a1|ch:email|1": "1",
        "a1|cp:c1|0": "10",
        "a1|cp:c1|1": "1",
        "a1|ch:web|0": "5",
        "a1|cp:c2|0": "5",
    }.items():
        values[names.index(name)] = value  # fmt: skip
    entries = [decode_counters(dimensions, values), decode_counters([], [])]
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
    dimensions = ["ch:social", "cp:spring:2026"]
    entry = decode_counters(dimensions, ["1", "2", "3", "4", "5", "6", *["7"] * 6])
    totals = window_totals([entry, entry])
    assert totals.channel(Channel.SOCIAL) == Totals(2, 4, 6, 8, 10, 12)
    assert totals.by_campaign == {"spring:2026": Totals(14, 14, 14, 14, 14, 14)}


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
    assert decode_counters(["ch:web"], [None] * 6) == {}, "no count: no dimension"


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
    tag = spread_tag("pm", 3)
    assert tag.startswith("pm:3.")
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
