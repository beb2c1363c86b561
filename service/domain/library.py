"""What a library indexes about its assets, and its statistics."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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
    # Publications and uses recorded (the asset's usage_count): what ranks it among the
    # library's most used assets.
    usage_count: int = 0
    # The words of its name, tags and description, for text search (search_words).
    words: list[str] = []
    # Its content: copies of one content in one library waste storage.
    content_sha256: str | None = None


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
        usage_count=asset.usage_count,
        words=search_words(asset.name, *asset.tags, asset.description or ""),
        content_sha256=asset.content_sha256,
    )


def wasted_bytes(copies: int, total_bytes: int) -> int:
    """What `copies` assets of one content in one library waste: all but one copy (its
    average size, when their reported sizes differ)."""
    return 0 if copies <= 1 else total_bytes - total_bytes // copies


# Text search: words are runs of letters and digits, case-folded. An asset is indexed
# under at most MAX_SEARCH_WORDS distinct words (its name's first, then its tags', then
# its description's), and under every prefix of each word up to MAX_PREFIX characters.
MAX_SEARCH_WORDS = 200
MAX_PREFIX = 32
_WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> list[str]:
    """The words of a text, case-folded, in order, repeats kept."""
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


def prefixes(word: str) -> list[str]:
    """The prefixes a word is indexed under: its first 1 to MAX_PREFIX characters."""
    return [word[:n] for n in range(1, min(len(word), MAX_PREFIX) + 1)]


def search_words(*texts: str) -> list[str]:
    """The distinct words an asset is found by, in order of first appearance, bounded."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in words_of(text):
            seen.setdefault(word, None)
            if len(seen) >= MAX_SEARCH_WORDS:
                return list(seen)
    return list(seen)


@dataclass(frozen=True, slots=True)
class TextQuery:
    """What `q` asks: every word in `whole` as a word, and `prefix` as the start of one
    (its last word), or `whole` only when that word is longer than MAX_PREFIX."""

    whole: tuple[str, ...]
    prefix: str | None


def text_query(q: str) -> TextQuery | None:
    """The query of `q`'s words (every one must match, the last as a prefix); None when
    `q` has no word (no text filter)."""
    words = list(dict.fromkeys(words_of(q)))
    if not words:
        return None
    *whole, last = words
    if len(last) > MAX_PREFIX:
        return TextQuery((*whole, last), None)
    return TextQuery(tuple(whole), last)


def most_used(usage: dict[str, int], limit: int) -> list[tuple[str, int]]:
    """The most used assets: highest usage_count first, then asset id; never used ones
    do not rank."""
    ranked = sorted((-count, asset_id) for asset_id, count in usage.items() if count > 0)
    return [(asset_id, -negative) for negative, asset_id in ranked[:limit]]


class LibraryStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    library_id: str
    asset_count: int
    total_bytes: int
    by_media_type: dict[MediaType, int]
    by_status: dict[AssetStatus, int]


def no_assets(library_id: str) -> LibraryStats:
    """The statistics of a library without registered assets: every count 0."""
    return LibraryStats(
        library_id=library_id,
        asset_count=0,
        total_bytes=0,
        by_media_type={t: 0 for t in MediaType},
        by_status={s: 0 for s in COUNTED_STATUSES},
    )
