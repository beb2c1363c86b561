"""How a batch of performance events is added up before Redis sees it (perf_batch.merge).

The expected sums are written out by hand from the events, bucket by bucket."""

from __future__ import annotations

from service.domain.windows import DAY, HOUR
from service.store.perf_batch import PerfRow, merge
from service.store.seen_ids import fingerprint

NOW = 1_780_003_000  # 2026-05-28T21:16:40Z: inside an hour, a day and a 5-minute bucket
HOUR_START = NOW - NOW % HOUR
DAY_START = NOW - NOW % DAY
M5_START = NOW - NOW % 300


def row(
    event_id: str, asset: str, t: int, impressions: int = 0, clicks: int = 0, **kw: str
) -> PerfRow:
    return PerfRow(
        event_id, asset, kw.get("channel", "web"), kw.get("campaign", "c1"), t,
        impressions, clicks, 0, 0, 0, 0,
    )  # fmt: skip


def test_events_of_one_asset_add_up_per_bucket_channel_and_campaign() -> None:
    rows = [
        row("e1", "a1", NOW - 10, impressions=100, clicks=3),
        row("e2", "a1", NOW - 20, impressions=50, channel="email"),
        row("e3", "a1", NOW - 2 * HOUR, impressions=7, campaign="c2"),
    ]
    batch = merge(rows, NOW)
    assert batch.lifetime == {
        "a1": {
            "ch:web": [107, 3, 0, 0, 0, 0],
            "cp:c1": [150, 3, 0, 0, 0, 0],
            "ch:email": [50, 0, 0, 0, 0, 0],
            "cp:c2": [7, 0, 0, 0, 0, 0],
        }
    }
    # e1 and e2 share every bucket; e3 is two hours back: its own hour, same day, and its
    # five-minute bucket has expired (kept 1 h after it ends).
    m5 = batch.buckets[("m5", M5_START)]
    assert m5 == (M5_START + 300 + HOUR, {
        "a1": {"ch:web": [100, 3, 0, 0, 0, 0], "cp:c1": [150, 3, 0, 0, 0, 0],
               "ch:email": [50, 0, 0, 0, 0, 0]},
    })  # fmt: skip
    older_hour = batch.buckets[("h1", HOUR_START - 2 * HOUR)]
    assert older_hour[1] == {"a1": {"ch:web": [7, 0, 0, 0, 0, 0], "cp:c2": [7, 0, 0, 0, 0, 0]}}
    day = batch.buckets[("d1", DAY_START)][1]["a1"]
    assert day == batch.lifetime["a1"]
    assert len(batch.buckets) == 4, "m5 now, h1 now, h1 two hours back, d1 today"
    assert (batch.copies, batch.late) == (0, 0)
    assert batch.event_ids == ["e1", "e2", "e3"]


def test_copies_in_the_batch_and_known_ids_count_as_copies_and_add_nothing() -> None:
    rows = [row("e1", "a1", NOW, 5), row("e1", "a1", NOW, 5), row("e2", "a2", NOW, 9)]
    batch = merge(rows, NOW, known={"e2"})
    assert batch.copies == 2
    assert batch.event_ids == ["e1"]
    assert (batch.fingerprints, batch.numbers) == ([fingerprint("e1")[0]], [fingerprint("e1")[1]])
    assert batch.lifetime == {"a1": {"ch:web": [5, 0, 0, 0, 0, 0], "cp:c1": [5, 0, 0, 0, 0, 0]}}


def test_an_event_older_than_thirty_days_counts_in_lifetime_only() -> None:
    batch = merge([row("e1", "a1", NOW - 31 * DAY, 4)], NOW)
    assert batch.late == 1
    assert batch.buckets == {}
    assert batch.lifetime["a1"]["ch:web"] == [4, 0, 0, 0, 0, 0]


def test_an_event_of_zeros_is_applied_and_adds_nothing() -> None:
    batch = merge([row("e1", "a1", NOW)], NOW)
    assert batch.event_ids == ["e1"]
    assert batch.lifetime == {"a1": {}}, "the asset is marked dirty, with nothing to add"
