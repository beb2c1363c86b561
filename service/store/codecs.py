"""How domain values are written in Redis hashes, and read back.

The formats are the ones docs/redis-keys.md describes; the Lua scripts write the
metric and library counters, Python writes the board entries. Only the store
modules use this: the rest of the service sees `Totals`, `WindowTotals` and
board entries, never a field name.

- Metric hashes (`perf_apply.lua`): `<asset_id>|<dimension>|<metric index>` -> count,
  a dimension being `ch:<channel>` or `cp:<campaign>` and the index that of `METRICS`
  (counts of 0 are not stored), and `<asset_id>` -> the dimensions the asset has counts
  of in that hash, `|ch:web|cp:c1|`.
- Board entries: asset_id -> `impressions,clicks,engagements,conversions,shares,comments`.
- Library counters (`library_project.lua`): `assets`, `bytes`, `media_type:<type>`,
  `status:<status>` -> integer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from service.domain.enums import Channel, MediaType
from service.domain.library import COUNTED_STATUSES, LibraryStats
from service.domain.metrics import METRICS, Totals, WindowTotals

_CHANNELS = {channel.value: channel for channel in Channel}
_SIX = len(METRICS)

Counters = Mapping[str, Sequence[int]]


def counter_name(asset_id: str, dimension: str, metric: int) -> str:
    """The field of one counter in a metric hash: `<asset_id>|<dimension>|<metric index>`
    (`|` is in no identifier)."""
    return f"{asset_id}|{dimension}|{metric}"


def counter_names(asset_id: str, dimensions: Sequence[str]) -> list[str]:
    """The fields of every counter of the asset's dimensions, six per dimension."""
    return [counter_name(asset_id, d, m) for d in dimensions for m in range(_SIX)]


def decode_dimensions(text: str | None) -> list[str]:
    """An asset's dimension list in a metric hash, `|ch:web|cp:c1|`."""
    return [d for d in text.split("|") if d] if text else []


def decode_counters(dimensions: Sequence[str], values: Sequence[str | None]) -> Counters:
    """The counts of `counter_names(asset, dimensions)`, read in that order (a missing
    counter is 0; a dimension with no count is left out)."""
    counters: dict[str, list[int]] = {}
    for i, dimension in enumerate(dimensions):
        counts = [int(v) if v else 0 for v in values[i * _SIX : (i + 1) * _SIX]]
        if any(counts):
            counters[dimension] = counts
    return counters


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
