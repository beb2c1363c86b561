"""What a library indexes about its assets, and its statistics."""

from __future__ import annotations

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
