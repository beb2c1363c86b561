"""What a library indexes about its assets, and its statistics."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from service.domain.enums import AssetStatus, MediaType
from service.domain.registry import Asset

# Statuses a library counts; a deleted asset leaves its library altogether.
COUNTED_STATUSES = tuple(s for s in AssetStatus if s is not AssetStatus.DELETED)


class LibraryEntry(BaseModel):
    """An asset's contribution to its library's statistics and indexes."""

    model_config = ConfigDict(frozen=True)

    file_size_bytes: int
    media_type: MediaType
    status: AssetStatus
    tags: list[str]
    categories: list[str]


def library_entry(asset: Asset) -> LibraryEntry | None:
    """The entry to index for an asset, or None when the asset no longer belongs to a library."""
    if asset.is_deleted:
        return None
    return LibraryEntry(
        file_size_bytes=asset.file_size_bytes,
        media_type=asset.media_type,
        status=asset.status,
        tags=asset.tags,
        categories=asset.categories,
    )


class LibraryStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    library_id: str
    asset_count: int
    total_bytes: int
    by_media_type: dict[MediaType, int]
    by_status: dict[AssetStatus, int]


def library_stats(library_id: str, counters: Mapping[str, int]) -> LibraryStats:
    """Statistics from the store's counters: assets, bytes, media_type:<t>, status:<s>."""
    return LibraryStats(
        library_id=library_id,
        asset_count=counters.get("assets", 0),
        total_bytes=counters.get("bytes", 0),
        by_media_type={t: counters.get(f"media_type:{t}", 0) for t in MediaType},
        by_status={s: counters.get(f"status:{s}", 0) for s in COUNTED_STATUSES},
    )
