"""How domain values are written in Redis hashes, and read back.

The formats are the ones docs/redis-keys.md describes; the Lua scripts write the
metric and library counters, Python writes the board entries. Only the store
modules use this: the rest of the service sees `Totals`, `WindowTotals` and
board entries, never a field name.

- Metric hashes (written by the metrics step): `<asset_id>` -> the asset's sums in that hash,
  `ch:web=120,4|cp:c1=120,,2`: per dimension (`ch:<channel>` or `cp:<campaign>`) its six
  counts in the order of `METRICS`, a 0 written as nothing and trailing ones left out;
  a dimension whose counts are all 0 is not written.
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


def encode_sums(counters: Counters) -> str:
    """An asset's sums in one metric hash, as `decode_sums` reads them."""
    parts = []
    for dimension, counts in counters.items():
        text = _counts(counts)
        if text:
            parts.append(f"{dimension}={text}")
    return "|".join(parts)


def _counts(counts: Sequence[int]) -> str:
    n = len(counts)
    while n and not counts[n - 1]:
        n -= 1
    if n <= 2:  # most sums: impressions, or impressions and clicks
        return "" if not n else str(counts[0]) if n == 1 else f"{counts[0] or ''},{counts[1]}"
    return ",".join([str(c) if c else "" for c in counts[:n]])


def add_sums(stored: str, adds: Counters) -> tuple[str, int]:
    """`stored` (an asset's sums in one hash, as `encode_sums` writes them) with `adds`
    added, and the largest sum it touched.

    Only the dimensions added to are parsed, and only their stored counts: an asset's
    lifetime sums may hold a dozen channels and campaigns, a batch adds to one or two,
    and most counts are 0 (written as nothing). The worker runs this for every asset and
    hash of a batch, so it trades clarity for fewer Python operations. Raises ValueError
    when a dimension added to does not read as sums."""
    largest = 0
    if not stored:
        # About half the calls: the asset's first counts in a bucket. `encode_sums`, with
        # the largest count found in the same pass (a second pass costs 30 % more here).
        parts = []
        for dimension, counts in adds.items():
            added = _counts(counts)
            if added:
                parts.append(f"{dimension}={added}")
                most = max(counts)
                if most > largest:
                    largest = most
        return "|".join(parts), largest
    text = stored
    for dimension, counts in adds.items():
        head = dimension + "="
        if text.startswith(head):
            start = len(head)
        else:
            start = text.find("|" + head)
            if start < 0:  # a dimension new to this hash
                added = _counts(counts)
                if added:
                    text = f"{text}|{head}{added}"
                    largest = max(largest, *counts)
                continue
            start += len(head) + 1
        end = text.find("|", start)
        if end < 0:
            end = len(text)
        old = text[start:end].split(",")
        total = list(counts)
        try:
            if len(old) > _SIX:
                raise ValueError
            for m, listed in enumerate(old):
                if listed:
                    value = int(listed)
                    if value < 0:
                        raise ValueError
                    total[m] += value
        except ValueError:
            raise ValueError(
                f"not a stored sum in {stored!r}: {dimension} holds {text[start:end]!r}"
            ) from None
        largest = max(largest, *total)
        text = text[:start] + _counts(total) + text[end:]
    return text, largest


def decode_sums(text: str | None) -> dict[str, list[int]]:
    """An asset's sums in one metric hash (empty when it has none there).

    Raises ValueError on a value this format cannot hold (a count that is not a whole
    number >= 0, more than six counts, a part without `=`): a stored sum is never guessed.
    """
    counters: dict[str, list[int]] = {}
    if not text:
        return counters
    for part in text.split("|"):
        dimension, equals, listed = part.partition("=")
        try:
            counts = [int(c) if c else 0 for c in listed.split(",")]
        except ValueError:
            counts = [-1]
        if not equals or not dimension or len(counts) > _SIX or min(counts) < 0:
            raise ValueError(f"not a stored sum: {part!r} in {text!r}")
        if len(counts) < _SIX:
            counts += [0] * (_SIX - len(counts))
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
