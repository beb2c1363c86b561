"""How domain values are written in Redis hashes, and read back.

The formats are the ones docs/redis-keys.md describes; the Lua scripts write the
metric and library counters, Python writes the board entries. Only the store
modules use this: the rest of the service sees `Totals`, `WindowTotals` and
board entries, never a field name.

- Metric buckets (`perf_apply.lua`): `ch:<channel>:<metric>` and
  `cp:<campaign>:<metric>` -> integer. A campaign id may itself hold colons; a metric
  name never does.
- Board entries: asset_id -> `impressions,clicks,engagements,conversions,shares,comments`.
- Library counters (`library_project.lua`): `assets`, `bytes`, `media_type:<type>`,
  `status:<status>` -> integer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.domain.enums import Channel, MediaType
from service.domain.library import COUNTED_STATUSES, LibraryStats
from service.domain.metrics import METRICS, Totals, WindowTotals

_METRIC_INDEX = {metric: index for index, metric in enumerate(METRICS)}
_CHANNELS = {channel.value: channel for channel in Channel}

# What a bucket field stands for: (CHANNEL or CAMPAIGN, the channel or campaign, the
# metric's index in METRICS), or IGNORED. Field names repeat across buckets and assets,
# so each is parsed once; campaign ids are unbounded, so the memo is.
CHANNEL, CAMPAIGN = 0, 1
_Field = tuple[int, str, int]
IGNORED: _Field = (-1, "", -1)
_MEMO: dict[str, _Field] = {}
_MEMO_SIZE = 100_000


def _field(name: str) -> _Field:
    parsed = _MEMO.get(name)
    if parsed is not None:
        return parsed
    kind, _, rest = name.partition(":")
    subject, _, metric = rest.rpartition(":")
    index = _METRIC_INDEX.get(metric)
    parsed = IGNORED
    if index is not None and subject:
        if kind == "ch" and subject in _CHANNELS:
            parsed = (CHANNEL, _CHANNELS[subject], index)
        elif kind == "cp":
            parsed = (CAMPAIGN, subject, index)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()
    _MEMO[name] = parsed
    return parsed


def window_totals(buckets: Iterable[Mapping[str, str | int]]) -> WindowTotals:
    """The sums of a window's buckets, per channel and per campaign.

    Fields of another shape, or of a channel this version does not know, are ignored.
    """
    sums: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
    for bucket in buckets:
        for name, value in bucket.items():
            kind, subject, index = _field(name)
            if kind < 0:
                continue
            per_subject = sums[kind]
            counts = per_subject.get(subject)
            if counts is None:
                counts = per_subject[subject] = [0] * len(METRICS)
            counts[index] += int(value)
    channels, campaigns = sums
    return WindowTotals(
        by_channel={Channel(c): Totals(*v) for c, v in channels.items()},
        by_campaign={c: Totals(*v) for c, v in campaigns.items()},
    )


def encode_board_entry(totals: Totals) -> str:
    return ",".join(str(getattr(totals, m)) for m in METRICS)


def decode_board_entry(text: str) -> Totals:
    return Totals(*(int(v) for v in text.split(",")))


def library_stats(library_id: str, counters: Mapping[str, str | int]) -> LibraryStats:
    """A library's statistics from its counters hash (missing fields count 0)."""

    def count(field: str) -> int:
        return int(counters.get(field, 0))

    return LibraryStats(
        library_id=library_id,
        asset_count=count("assets"),
        total_bytes=count("bytes"),
        by_media_type={t: count(f"media_type:{t}") for t in MediaType},
        by_status={s: count(f"status:{s}") for s in COUNTED_STATUSES},
    )
