"""The closed vocabularies of the domain."""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    GIF = "gif"
    INFOGRAPHIC = "infographic"
    THUMBNAIL = "thumbnail"
    BANNER = "banner"
    ICON = "icon"


class MediaFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    SVG = "svg"
    GIF = "gif"
    MP4 = "mp4"
    WEBM = "webm"
    MOV = "mov"
    MKV = "mkv"


IMAGE_FORMATS = frozenset(
    {
        MediaFormat.JPEG,
        MediaFormat.PNG,
        MediaFormat.WEBP,
        MediaFormat.AVIF,
        MediaFormat.SVG,
        MediaFormat.GIF,
    }
)
VIDEO_FORMATS = frozenset({MediaFormat.MP4, MediaFormat.WEBM, MediaFormat.MOV, MediaFormat.MKV})

# Which file formats make sense for each media type. An animated GIF may also be
# delivered as a video container, which is what the gif_to_video suggestion recommends.
FORMATS_BY_MEDIA_TYPE: dict[MediaType, frozenset[MediaFormat]] = {
    MediaType.IMAGE: IMAGE_FORMATS,
    MediaType.INFOGRAPHIC: IMAGE_FORMATS,
    MediaType.THUMBNAIL: IMAGE_FORMATS,
    MediaType.BANNER: IMAGE_FORMATS,
    MediaType.ICON: IMAGE_FORMATS,
    MediaType.VIDEO: VIDEO_FORMATS,
    MediaType.GIF: frozenset({MediaFormat.GIF, MediaFormat.MP4, MediaFormat.WEBM}),
}


class MediaKind(StrEnum):
    """How a platform's specification groups files: its limits differ by kind."""

    IMAGE = "image"
    VIDEO = "video"
    ANIMATED = "animated"  # an animated GIF


def media_kind(media_type: MediaType, fmt: MediaFormat) -> MediaKind:
    """Video containers are videos; a GIF file of the gif media type is animated; the rest
    (a GIF registered as an image included) are images."""
    if fmt in VIDEO_FORMATS:
        return MediaKind.VIDEO
    if fmt is MediaFormat.GIF and media_type is MediaType.GIF:
        return MediaKind.ANIMATED
    return MediaKind.IMAGE


class AssetStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    PUBLISHED = "published"
    ARCHIVED = "archived"
    DELETED = "deleted"


class LifecycleAction(StrEnum):
    APPROVED = "approved"
    PUBLISHED = "published"
    ARCHIVED = "archived"
    DELETED = "deleted"
    USED = "used"


class Channel(StrEnum):
    EMAIL = "email"
    WEB = "web"
    SOCIAL = "social"
    DISPLAY = "display"
    SEARCH = "search"
    VIDEO = "video"
    OTHER = "other"


class FeedbackOutcome(StrEnum):
    APPLIED = "applied"
    DISMISSED = "dismissed"


class SuggestionType(StrEnum):
    REFRESH_DESIGN = "refresh_design"
    COMPRESS = "compress"
    CONVERT_TO_WEBP = "convert_to_webp"
    RESIZE = "resize"
    REMOVE_BG = "remove_bg"
    REFORMAT = "reformat"
    CREATIVE_FATIGUE = "creative_fatigue"
    GIF_TO_VIDEO = "gif_to_video"
    FIX_ASPECT_RATIO = "fix_aspect_ratio"


class SuggestionOrigin(StrEnum):
    RULES = "rules"  # the service's rules found it
    MANUAL = "manual"  # a person sent it (POST /v1/assets/{asset_id}/suggestions)


class SuggestionState(StrEnum):
    """What one event of a suggestion says about it (its `revision` orders them)."""

    OPEN = "open"  # first sent, or sent again after it closed
    UPDATED = "updated"  # still open; its priority or estimate changed
    APPLIED = "applied"  # closed by feedback
    DISMISSED = "dismissed"  # closed by feedback
    EXPIRED = "expired"  # closed: its evidence no longer holds, or the asset was retired
    SUPERSEDED = "superseded"  # closed: a suggestion of the same type and channel replaced it


CLOSED_STATES = frozenset(
    {
        SuggestionState.APPLIED,
        SuggestionState.DISMISSED,
        SuggestionState.EXPIRED,
        SuggestionState.SUPERSEDED,
    }
)


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter topic; stable codes for dashboards and replays."""

    OVERSIZE = "oversize"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_NUMBER = "invalid_number"
    TOO_DEEP = "too_deep"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    KEY_MISMATCH = "key_mismatch"
    FUTURE_EVENT = "future_event"
    INVALID_TRANSITION = "invalid_transition"
    ASSET_DELETED = "asset_deleted"
    REGISTRATION_TIMEOUT = "registration_timeout"
    INTERNAL_ERROR = "internal_error"
    COUNTER_OVERFLOW = "counter_overflow"
    TOO_MANY_HELD_EVENTS = "too_many_held_events"
    UNKNOWN_SUGGESTION = "unknown_suggestion"
    SUGGESTION_ASSET_MISMATCH = "suggestion_asset_mismatch"


class DuplicateKind(StrEnum):
    """What a repeated content means for storage."""

    REDUNDANT_COPY = "redundant_copy"
    REUSE = "reuse"
