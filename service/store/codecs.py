"""How domain values are written in Redis hashes, and read back.

The formats are the ones docs/redis-keys.md describes; the Lua scripts write the
metric and library counters, Python writes the board entries. Only the store
modules use this: the rest of the service sees `Totals`, `WindowTotals` and
board entries, never a field name.

- Metric hashes (`perf_apply.lua`): asset_id -> `{"ch:<channel>": [six counts],
  "cp:<campaign>": [six counts]}`, the counts in the order of `METRICS`.
- Board entries: asset_id -> `impressions,clicks,engagements,conversions,shares,comments`.
- Library counters (`library_project.lua`): `assets`, `bytes`, `media_type:<type>`,
  `status:<status>` -> integer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from service.domain.enums import Channel, MediaType
from service.domain.library import COUNTED_STATUSES, LibraryStats
from service.domain.metrics import METRICS, Totals, WindowTotals

_CHANNELS = {channel.value: channel for channel in Channel}
_SIX = len(METRICS)

Counters = Mapping[str, Sequence[int]]


def decode_counters(text: str | None) -> Counters:
    """An asset's entry in a metric hash (None when it has none): `{"ch:<channel>": [six
    counts], "cp:<campaign>": [six counts]}`."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def window_totals(entries: Iterable[Counters]) -> WindowTotals:
    """The sums of a window's entries, per channel and per campaign.

    Dimensions of another shape, or of a channel this version does not know, are ignored.
    """
    channels: dict[str, list[int]] = {}
    campaigns: dict[str, list[int]] = {}
    for entry in entries:
        for dimension, counts in entry.items():
            kind, _, subject = dimension.partition(":")
            if kind == "ch" and subject in _CHANNELS:
                sums = channels
            elif kind == "cp" and subject:
                sums = campaigns
            else:
                continue
            if not isinstance(counts, list | tuple) or len(counts) != _SIX:
                continue
            total = sums.get(subject)
            if total is None:
                sums[subject] = [int(c) for c in counts]
            else:
                for m, count in enumerate(counts):
                    total[m] += int(count)
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
