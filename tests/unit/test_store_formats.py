"""What the stores write in Redis and read back: key names, bucket fields, board entries,
the metrics script's rows. Data written by an earlier version must still read the same,
so the formats are spelt out here literally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.domain.enums import Channel
from service.domain.metrics import METRICS, Totals
from service.store import codecs
from service.store.codecs import decode_board_entry, encode_board_entry, window_totals
from service.store.keys import Keys
from service.store.metrics import PerfRow

SERVICE = Path(__file__).resolve().parents[2] / "service"


def test_bucket_fields_give_totals_per_channel_and_per_campaign() -> None:
    buckets = [
        {
            "ch:email:impressions": "10",
            "ch:email:clicks": "1",
            "cp:c1:impressions": "10",
            "cp:c1:clicks": "1",
        },
        {"ch:web:impressions": "5", "cp:c2:impressions": "5"},
    ]
    totals = window_totals(buckets)
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
    bucket = {f"ch:social:{m}": n for n, m in enumerate(METRICS, start=1)}
    bucket |= {f"cp:spring:2026:{m}": 7 for m in METRICS}
    totals = window_totals([bucket, bucket])
    assert totals.channel(Channel.SOCIAL) == Totals(2, 4, 6, 8, 10, 12)
    assert totals.by_campaign == {"spring:2026": Totals(14, 14, 14, 14, 14, 14)}


def test_fields_of_another_shape_are_ignored() -> None:
    bucket = {
        "ch:email:clicks": "2",
        "ch:fax:clicks": "5",  # a channel this version does not know
        "ch:email:likes": "5",  # not a metric
        "cp::clicks": "5",  # no campaign
        "ch:clicks": "5",
        "volume": "5",
    }
    totals = window_totals([bucket])
    assert totals.by_channel == {Channel.EMAIL: Totals(clicks=2)}
    assert totals.by_campaign == {}


def test_the_field_memo_forgets_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "_MEMO_SIZE", 3)
    monkeypatch.setattr(codecs, "_MEMO", {})
    for n in range(10):
        totals = window_totals([{f"cp:c{n}:clicks": n, "ch:web:clicks": 1}])
        assert totals.by_campaign == {f"c{n}": Totals(clicks=n)}
        assert totals.total == Totals(clicks=1)
    assert len(codecs._MEMO) <= 3


def test_board_entries() -> None:
    totals = Totals(100, 5, 7, 1, 2, 3)
    assert encode_board_entry(totals) == "100,5,7,1,2,3"
    assert decode_board_entry("100,5,7,1,2,3") == totals
    assert decode_board_entry(encode_board_entry(Totals())) == Totals()


def test_perf_rows_reach_the_script_as_positional_arrays() -> None:
    row = PerfRow("e1", "a1", "web", "c:1", 1_780_000_000, 1, 2, 3, 4, 5, 6)
    assert json.dumps([row], separators=(",", ":")) == (
        '[["e1","a1","web","c:1",1780000000,1,2,3,4,5,6]]'
    )
    assert row.asset_id == "a1" and row.occurred_at == 1_780_000_000 and row.comments == 6


def test_key_names() -> None:
    k = Keys("media")
    assert k.board("L", "24h", None) == "media:{l:L}:lb:24h:all"
    assert k.board("L", "7d", "email") == "media:{l:L}:lb:7d:ch:email"
    assert k.board_library("A") == "media:{a:A}:lb-library"
    assert k.boards_dirty == "media:lb-dirty"
    assert k.board_libraries == "media:lb-libraries"
    assert k.boards_swept_hour == "media:lb-swept-hour"
    assert k.perf_dirty(3) == "media:{pm:3}:dirty"
    assert k.asset_suggestions("A") == "media:{a:A}:suggestions"
    assert k.suggestion("S") == "media:suggestion:S"
    assert k.library_suggestion_index("L") == "media:{l:L}:suggestion-index"
    assert k.library_suggestion_index("L", "status", "open") == (
        "media:{l:L}:suggestion-index:status:open"
    )
    assert k.library_suggestion_members("L") == "media:{l:L}:suggestion-members"
    assert k.variant_of("A") == "media:{a:A}:variant-of"
    assert k.suggestions_realised("resize") == "media:suggestions-realised:resize"
    assert k.perf_bucket(3, "A", "h1", 3600) == "media:{pm:3}:a:A:h1:3600"
    assert k.perf_lifetime(3, "A") == "media:{pm:3}:a:A:life"
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
