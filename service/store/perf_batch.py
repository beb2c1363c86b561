"""A batch of performance events added up, before Redis sees it.

The events of a batch are added up per hash (the partition's lifetime hash, and its
bucket hash at each resolution that still holds the event), asset, channel or campaign,
and metric; the store adds those counts to the sums it read (service/store/metrics.py),
so Redis never adds. Copies of an event id within the batch are dropped here; copies of
an id applied in an earlier batch are found in the partition's table of ids
(service/store/seen_ids.py), and the batch is merged again without them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from service.domain.windows import LONGEST_WINDOW_SECONDS, RESOLUTIONS
from service.store.seen_ids import fingerprint


class PerfRow(NamedTuple):
    """One performance event, as the handler hands it to `MetricsStore.apply`."""

    event_id: str
    asset_id: str
    channel: str
    campaign_id: str
    occurred_at: int  # epoch seconds
    impressions: int
    clicks: int
    engagements: int
    conversions: int
    shares: int
    comments: int


Counters = dict[str, list[int]]  # "ch:<channel>" or "cp:<campaign>" -> six counts
Entries = dict[str, Counters]  # asset_id -> its counters in one key


@dataclass(slots=True)
class MergedBatch:
    """What one step of the metrics writes, and what it counts."""

    event_ids: list[str] = field(default_factory=list)  # of the events applied, in order
    fingerprints: list[str] = field(default_factory=list)  # of the same ids (seen_ids.py)
    numbers: list[int] = field(default_factory=list)  # the numbers their buckets come from
    lifetime: Entries = field(default_factory=dict)
    # (resolution name, bucket start) -> (when the bucket expires, its entries)
    buckets: dict[tuple[str, int], tuple[int, Entries]] = field(default_factory=dict)
    copies: int = 0  # copies of an id within the batch, or of an id named in `known`
    late: int = 0


def merge(rows: Sequence[PerfRow], now: int, known: Collection[str] = ()) -> MergedBatch:
    """Add up the batch's events per key, asset, channel and campaign.

    An id seen earlier in the batch, or in `known` (applied by an earlier batch), is a
    copy. An event older than the longest window (late) counts in lifetime only; a
    bucket that has expired by `now` is not written.
    """
    batch = MergedBatch()
    late_before = now - LONGEST_WINDOW_SECONDS
    lifetime = batch.lifetime
    buckets = batch.buckets
    resolutions = [(r.name, r.seconds, r.seconds + r.retention) for r in RESOLUTIONS]
    seen: set[str] = set()
    for row in rows:
        event_id = row[0]
        if event_id in seen or event_id in known:
            batch.copies += 1
            continue
        seen.add(event_id)
        batch.event_ids.append(event_id)
        print_, number = fingerprint(event_id)
        batch.fingerprints.append(print_)
        batch.numbers.append(number)
        asset = row[1]
        t = row[4]
        targets = [lifetime]
        if t < late_before:
            batch.late += 1
        else:
            for name, seconds, lives in resolutions:
                start = t - t % seconds
                expires = start + lives
                if expires > now:
                    slot = buckets.get((name, start))
                    if slot is None:
                        slot = buckets[(name, start)] = (expires, {})
                    targets.append(slot[1])
        deltas = row[5:]
        if not any(deltas):  # applied, and marks the asset dirty, but adds nothing
            for entries in targets:
                entries.setdefault(asset, {})
            continue
        channel = "ch:" + row[2]
        campaign = "cp:" + row[3]
        nonzero = None  # (metric, delta) of the counts that are not 0: one or two, mostly
        for entries in targets:
            counters = entries.get(asset)
            if counters is None:
                entries[asset] = {channel: list(deltas), campaign: list(deltas)}
                continue
            for dimension in (channel, campaign):
                sums = counters.get(dimension)
                if sums is None:
                    counters[dimension] = list(deltas)
                    continue
                if nonzero is None:
                    nonzero = [(m, delta) for m, delta in enumerate(deltas) if delta]
                for m, delta in nonzero:
                    sums[m] += delta
    return batch
