"""Event contracts of every topic: the source of truth for `schemas/*.json`.

All events are JSON objects encoded in UTF-8 and share an envelope: `event_id`
(unique per event, the unit of de-duplication), `occurred_at` (RFC 3339 with an
offset) and `schema_version`. Unknown fields are rejected so that a misspelled
field is reported instead of silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from service.domain.enums import (
    FORMATS_BY_MEDIA_TYPE,
    Channel,
    DeadLetterReason,
    DuplicateKind,
    FeedbackOutcome,
    LifecycleAction,
    MediaFormat,
    MediaType,
    Priority,
    SuggestionOrigin,
    SuggestionState,
    SuggestionType,
)

SCHEMA_VERSION: Literal[1] = 1

# Identifiers end up in Redis keys and URL paths: a conservative alphabet keeps both safe.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"),
]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]

# Numbers are strict: 5 is an integer, "5", 5.0 and true are not (a producer that sends
# them has a bug worth hearing about). Every bound below keeps the arithmetic exact
# where it happens: Lua in Redis computes with 64-bit doubles, exact up to 2**53.

MAX_METRIC_DELTA = 10**10
"""Largest delta of one performance metric in one event. Ten billion impressions in
one report is beyond any single asset's campaign, and a batch of 100,000 events at
this maximum sums to 10**15, below 2**53 (about 9.007e15): sums that readers add up
in Lua, in doubles, stay exact. (10**12 would not: 10**17.)"""

MAX_FILE_SIZE_BYTES = 2**40
"""1 TiB: far above any deliverable marketing file (hours of 4K video at broadcast
bitrates weigh tens of GB), exact in a double, and a library would need 8 million
assets at this size before its total_bytes neared the 2**63 of a Redis integer."""

MAX_PIXELS_PER_SIDE = 1_000_000

MAX_BITRATE_KBPS = 100_000_000
"""100 Gbit/s: above uncompressed 8K video at 60 frames a second (about 72 Gbit/s)."""

MAX_COLOR_COUNT = 2**48
"""48-bit colour (16 bits per RGB channel), the deepest palette an image format stores."""

MAX_DURATION_SECONDS = 30 * 86_400.0
"""30 days: longer than any recording a marketing library holds, live-stream archives included."""

MAX_FRAME_RATE = 1000.0

Count = Annotated[int, Field(strict=True, ge=0, le=MAX_METRIC_DELTA)]

MAX_LABELS = 50


def normalise_labels(values: list[str]) -> list[str]:
    """Lower-case, trim, collapse inner whitespace and de-duplicate, keeping first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        label = " ".join(value.split()).lower()
        if label:
            seen.setdefault(label, None)
    return list(seen)


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: EventId
    occurred_at: AwareDatetime
    schema_version: Literal[1] = SCHEMA_VERSION

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: object) -> object:
        # pydantic would read a number as seconds since 1970: the contract is RFC 3339 text.
        if isinstance(value, int | float):
            raise ValueError("must be RFC 3339 text with an offset, e.g. 2026-03-01T12:00:00Z")
        return value


class AssetRegistered(Event):
    """`media.asset-registered`, keyed by asset_id: an asset entered (or changed in) a library."""

    asset_id: Identifier
    library_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    media_type: MediaType
    format: MediaFormat
    width: Annotated[int, Field(strict=True, ge=1, le=MAX_PIXELS_PER_SIDE, description="pixels")]
    height: Annotated[int, Field(strict=True, ge=1, le=MAX_PIXELS_PER_SIDE, description="pixels")]
    file_size_bytes: Annotated[int, Field(strict=True, ge=1, le=MAX_FILE_SIZE_BYTES)]
    content_sha256: Sha256Hex
    tags: Annotated[list[Label], Field(max_length=MAX_LABELS)] = []
    categories: Annotated[list[Label], Field(max_length=MAX_LABELS)] = []
    owner: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    duration_seconds: (
        Annotated[float, Field(strict=True, gt=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False)]
        | None
    ) = None
    bitrate_kbps: Annotated[int, Field(strict=True, ge=1, le=MAX_BITRATE_KBPS)] | None = None
    frame_rate: (
        Annotated[float, Field(strict=True, gt=0, le=MAX_FRAME_RATE, allow_inf_nan=False)] | None
    ) = None
    color_count: Annotated[int, Field(strict=True, ge=1, le=MAX_COLOR_COUNT)] | None = None
    intended_channels: list[Channel] = []
    variant_of: Identifier | None = Field(
        default=None, description="the asset this one is a variant of (its original's family)"
    )
    variant_label: Label | None = Field(
        default=None, description="what sets this variant apart, e.g. 'blue CTA' (needs variant_of)"
    )

    @field_validator("tags", "categories")
    @classmethod
    def _normalise(cls, values: list[str]) -> list[str]:
        return normalise_labels(values)

    @field_validator("intended_channels")
    @classmethod
    def _unique_channels(cls, values: list[Channel]) -> list[Channel]:
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _variant_of_another(self) -> AssetRegistered:
        if self.variant_of == self.asset_id:
            raise ValueError(
                f"variant_of names the asset itself ('{self.asset_id}'): an asset cannot be its "
                "own variant; name its original, or leave variant_of out"
            )
        if self.variant_label is not None and self.variant_of is None:
            raise ValueError("variant_label is given without variant_of: name the original too")
        return self

    @model_validator(mode="after")
    def _format_fits_media_type(self) -> AssetRegistered:
        allowed = FORMATS_BY_MEDIA_TYPE[self.media_type]
        if self.format not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValueError(
                f"format '{self.format}' is not valid for media_type '{self.media_type}' "
                f"(expected one of: {names})"
            )
        return self


class AssetLifecycle(Event):
    """`media.asset-lifecycle`, keyed by asset_id: approval, publication, use, archive, delete."""

    asset_id: Identifier
    action: LifecycleAction
    campaign_id: Identifier | None = None
    actor: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None

    @model_validator(mode="after")
    def _campaign_when_needed(self) -> AssetLifecycle:
        needs_campaign = self.action in (LifecycleAction.PUBLISHED, LifecycleAction.USED)
        if needs_campaign and not self.campaign_id:
            raise ValueError(f"campaign_id is required when action is '{self.action}'")
        return self


class LibraryUpdated(Event):
    """`media.library-updated`, keyed by library_id: a library's name, description and
    owner, as of `occurred_at` (the newest occurred_at wins)."""

    library_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    owner: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AssetPerformance(Event):
    """`media.asset-performance`, keyed by asset_id: engagement deltas of a channel and campaign."""

    asset_id: Identifier
    campaign_id: Identifier
    channel: Channel
    impressions: Count = 0
    clicks: Count = 0
    engagements: Count = 0
    conversions: Count = 0
    shares: Count = 0
    comments: Count = 0


class SuggestionFeedback(Event):
    """`media.suggestion-feedback`: a person applied or dismissed an optimization suggestion."""

    suggestion_id: EventId
    asset_id: Identifier
    outcome: FeedbackOutcome
    new_asset_id: Identifier | None = None

    @model_validator(mode="after")
    def _new_asset_only_when_applied(self) -> SuggestionFeedback:
        if self.new_asset_id is not None and self.outcome is not FeedbackOutcome.APPLIED:
            raise ValueError("new_asset_id is only allowed when outcome is 'applied'")
        return self


class OptimizationSuggestion(Event):
    """`media.optimization-suggestions`, keyed by asset_id: what to change in an asset, and why.

    Every event of a suggestion carries its stable `suggestion_id`, a `revision` (1, 2, ...
    in the order they were sent) and the `state` it leaves the suggestion in; its
    `event_id` is `<suggestion_id>:<revision>`, unique per event. A consumer keeps the
    current view by `suggestion_id`, taking the highest revision (a compacted topic keyed
    by suggestion_id works too). Closing events (applied, dismissed, expired, superseded)
    repeat the suggestion's content; `new_asset_id` names the variant of an applied one,
    `superseded_by` the suggestion that replaced it. `origin` is `manual` for a suggestion
    a person sent through the API, `rules` otherwise.
    """

    suggestion_id: EventId
    asset_id: Identifier
    library_id: Identifier
    type: SuggestionType
    priority: Priority
    channel: Channel | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    estimated_improvement_pct: Annotated[float, Field(ge=0)]
    improvement_basis: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    evidence: dict[str, JsonValue]
    created_at: AwareDatetime = Field(description="when the suggestion was (re)opened")
    revision: Annotated[int, Field(strict=True, ge=1)] = 1
    state: SuggestionState = SuggestionState.OPEN
    new_asset_id: Identifier | None = None
    superseded_by: EventId | None = None
    origin: SuggestionOrigin = SuggestionOrigin.RULES


MAX_ESTIMATED_IMPROVEMENT_PCT = 1000.0


class ManualSuggestionRequest(Event):
    """The body of `POST /v1/assets/{asset_id}/suggestions`: a suggestion a person makes.

    Validated like an event: `event_id` names the request (sending it again is
    idempotent: the same suggestion), `occurred_at` is when the person made it.
    """

    type: SuggestionType
    priority: Priority
    channel: Channel | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    estimated_improvement_pct: Annotated[
        float, Field(ge=0, le=MAX_ESTIMATED_IMPROVEMENT_PCT, allow_inf_nan=False)
    ]
    improvement_basis: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = (
        "the estimate of the person who made the suggestion"
    )


class DuplicateRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset_id: Identifier
    library_id: Identifier
    same_library: bool = Field(
        description="the earlier copy is in the new asset's library (a redundant copy)"
    )


class DuplicatesDetected(Event):
    """`media.duplicates-detected`, keyed by content_sha256: a registration repeats content."""

    content_sha256: Sha256Hex
    asset_id: Identifier
    library_id: Identifier
    registration_event_id: EventId
    duplicates: Annotated[list[DuplicateRef], Field(min_length=1)]
    kind: DuplicateKind = Field(
        description="redundant_copy: an earlier copy is in the same library (storage that "
        "could be saved); reuse: every earlier copy is in another library"
    )


MAX_DEAD_LETTER_REASON_CHARS = 2000
"""A dead letter's reason is cut to this many characters (ending with DEAD_LETTER_CUT)."""
DEAD_LETTER_CUT = " [...cut]"
MAX_DEAD_LETTER_KEY_BYTES = 1024
"""A dead letter carries at most this many bytes of the original Kafka key."""


class DeadLetter(Event):
    """`media.dead-letter`: a message the service could not apply, with its original bytes.

    `event_id` is derived from the source coordinates, so a consumer can drop the
    rare copy a crash may produce.

    A dead letter is bounded whatever the message was. `value_base64` holds the
    original value up to `MEDIA_DEAD_LETTER_MAX_ORIGINAL_BYTES` bytes (262144 by
    default): a longer value is cut to its first bytes and `value_truncated` is true;
    `value_sha256` and `value_size_bytes` always describe the whole original, so that
    `service dead-letter replay` can fetch it from its source topic, offset and
    partition and check it. The key has the same four fields (`key_base64` at most
    1024 bytes), present only when the message had a key. `reason` is at most 2000
    characters (a longer one ends with ` [...cut]`) and quotes only the start of a
    long key or field name. Dead letters written before these fields existed carry
    neither the SHA-256 nor the sizes.
    """

    reason_code: DeadLetterReason
    reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DEAD_LETTER_REASON_CHARS)]
    source_topic: str
    source_partition: Annotated[int, Field(ge=0)]
    source_offset: Annotated[int, Field(ge=0)]
    source_timestamp_ms: int | None = None
    key_base64: str | None = None
    key_sha256: Sha256Hex | None = None
    key_size_bytes: Annotated[int, Field(ge=0)] | None = None
    key_truncated: bool | None = None
    value_base64: str
    value_sha256: Sha256Hex | None = None
    value_size_bytes: Annotated[int, Field(ge=0)] | None = None
    value_truncated: bool = False
    original_event_id: EventId | None = None
    asset_id: Identifier | None = None


TOPIC_CONTRACTS: dict[str, type[Event]] = {
    "asset-registered": AssetRegistered,
    "asset-lifecycle": AssetLifecycle,
    "asset-performance": AssetPerformance,
    "suggestion-feedback": SuggestionFeedback,
    "library-updated": LibraryUpdated,
    "optimization-suggestions": OptimizationSuggestion,
    "duplicates-detected": DuplicatesDetected,
    "dead-letter": DeadLetter,
}
"""Contract of each topic's value, by the topic's role (its default name without `media.`)."""


def json_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract, as committed under `schemas/`."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def utc_iso(moment: datetime) -> str:
    """RFC 3339 text with an explicit offset, as written on every outgoing event."""
    return moment.isoformat()
