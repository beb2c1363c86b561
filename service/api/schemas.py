"""The response bodies of the HTTP API: the views build them, `/openapi.json` describes them."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.domain.enums import AssetStatus, Channel, MediaFormat, MediaType
from service.domain.events import OptimizationSuggestion
from service.domain.history import HistoryAction, HistoryEntry
from service.domain.labels import Label as PerformanceLabel
from service.domain.libraries import LibraryInfo
from service.domain.library import LibraryStats
from service.domain.metrics import Totals
from service.domain.registry import Asset
from service.domain.suggestion_state import Status
from service.domain.variants import Verdict


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TotalsOut(_Out):
    impressions: int
    clicks: int
    engagements: int
    conversions: int
    shares: int
    comments: int
    ctr: float = Field(description="clicks / impressions, 0 without impressions")
    engagement_rate: float = Field(description="engagements / impressions, 0 without impressions")
    conversion_rate: float = Field(description="conversions / clicks, 0 without clicks")

    @classmethod
    def of(cls, totals: Totals) -> TotalsOut:
        return cls.model_validate(totals.as_dict())


class AssetItem(_Out):
    """A registered asset: the facts of its latest registration and its lifecycle."""

    asset_id: str
    library_id: str
    name: str
    description: str | None = None
    media_type: MediaType
    format: MediaFormat
    width: int
    height: int
    file_size_bytes: int
    content_sha256: str
    tags: list[str] = []
    categories: list[str] = []
    owner: str
    duration_seconds: float | None = None
    bitrate_kbps: int | None = None
    frame_rate: float | None = None
    color_count: int | None = None
    intended_channels: list[Channel] = []
    status: AssetStatus = AssetStatus.DRAFT
    registered_at: AwareDatetime
    updated_at: AwareDatetime
    status_changed_at: AwareDatetime
    usage_count: int = 0
    campaigns_used_in: list[str] = []
    last_used_at: AwareDatetime | None = None
    variant_of: str | None = Field(
        default=None, description="the original of the asset's variant family, if a variant"
    )
    variant_label: str | None = None

    @classmethod
    def of(cls, asset: Asset) -> AssetItem:
        return cls.model_validate(_public(asset))


def _public(asset: Asset) -> dict[str, object]:
    """The entity's fields the API shows: those of AssetItem, nothing else."""
    return {name: getattr(asset, name) for name in AssetItem.model_fields}


class AssetOut(AssetItem):
    """A registered asset with its lifetime totals."""

    lifetime: TotalsOut
    variant_count: int = Field(default=0, description="how many variants it has (an original)")

    @classmethod
    def with_lifetime(
        cls,
        asset: Asset,
        lifetime: TotalsOut,
        *,
        variant_of: str | None = None,
        variant_count: int = 0,
    ) -> AssetOut:
        fields = {**_public(asset), "lifetime": lifetime, "variant_count": variant_count}
        if variant_of is not None:
            fields["variant_of"] = variant_of
        return cls.model_validate(fields)


class VariantMember(_Out):
    asset_id: str
    variant_label: str | None
    status: AssetStatus
    lifetime: TotalsOut
    channels: dict[Channel, TotalsOut] = Field(description="lifetime, per channel with events")


class ChannelComparison(_Out):
    """A variant's lifetime CTR on one channel against its original's."""

    channel: Channel
    original_ctr: float
    variant_ctr: float
    difference: float | None = Field(description="variant CTR - original CTR")
    ci95_low: float | None = Field(description="Newcombe hybrid score 95 % interval")
    ci95_high: float | None
    p_value: float | None = Field(description="two-sided, pooled two-proportion z-test")
    verdict: Verdict = Field(
        description="better or worse when the interval excludes 0; inconclusive otherwise "
        "or without impressions on either side"
    )


class VariantOut(VariantMember):
    comparisons: list[ChannelComparison]


class VariantsOut(_Out):
    original: VariantMember
    variants: list[VariantOut] = Field(description="in asset_id order")


class ChannelLabel(_Out):
    """How the asset does on one channel against the rest of its library."""

    channel: Channel
    label: PerformanceLabel = Field(
        description="learning (too few impressions for a verdict), low, good or best: the "
        "asset's CTR 95 % interval against the pooled CTR of the library's other assets"
    )
    impressions: int
    ctr: float
    library_ctr: float | None = Field(description="the pooled CTR compared with")


class AssetMetricsOut(TotalsOut):
    asset_id: str
    window: str
    channel: str | None
    campaign: str | None
    label_window: str = Field(
        description="the window the labels judge: the requested one when the boards keep it "
        "(24h, 7d, lifetime), else 7d"
    )
    labels: list[ChannelLabel] = Field(
        description="per channel with events in label_window; none for an asset not registered"
    )


class HistoryItem(_Out):
    """One applied change of an asset."""

    event_id: str
    occurred_at: AwareDatetime
    action: HistoryAction = Field(
        description="registered (first registration), updated (a later registration), "
        "or the lifecycle action"
    )
    from_status: AssetStatus | None = Field(description="null for the first registration")
    to_status: AssetStatus
    campaign_id: str | None = Field(description="the lifecycle event's campaign")
    actor: str | None = Field(description="the lifecycle event's actor")
    library_id: str | None = Field(description="a registration's library")

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItem:
        return cls.model_validate(entry.model_dump(exclude={"seq"}))


class HistoryOut(_Out):
    asset_id: str
    items: list[HistoryItem] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null at the end"
    )


class SeriesPoint(TotalsOut):
    start: AwareDatetime = Field(description="the bucket's start (UTC)")


class SeriesOut(_Out):
    asset_id: str
    resolution: str
    window: str
    channel: str | None
    campaign: str | None
    points: list[SeriesPoint] = Field(
        description="one per bucket, oldest first, the last holding now; 0 where nothing happened"
    )


class LibraryStatsOut(_Out):
    library_id: str
    asset_count: int
    total_bytes: int
    by_media_type: dict[MediaType, int]
    by_status: dict[AssetStatus, int]


class LibraryItem(_Out):
    """A library: its facts from the library-updated topic (null when it is known only
    from its assets) and its size."""

    library_id: str
    name: str | None
    description: str | None
    owner: str | None
    updated_at: AwareDatetime | None = Field(description="occurred_at of its latest facts")
    asset_count: int
    total_bytes: int

    @classmethod
    def of(cls, info: LibraryInfo | None, stats: LibraryStats) -> LibraryItem:
        return cls.model_validate(_library_fields(info, stats))


def _library_fields(info: LibraryInfo | None, stats: LibraryStats) -> dict[str, object]:
    return {
        "library_id": stats.library_id,
        "name": None if info is None else info.name,
        "description": None if info is None else info.description,
        "owner": None if info is None else info.owner,
        "updated_at": None if info is None else info.updated_at,
        "asset_count": stats.asset_count,
        "total_bytes": stats.total_bytes,
    }


class LibraryOut(LibraryItem):
    """A library with the statistics of /stats."""

    by_media_type: dict[MediaType, int]
    by_status: dict[AssetStatus, int]

    @classmethod
    def with_stats(cls, info: LibraryInfo | None, stats: LibraryStats) -> LibraryOut:
        return cls.model_validate(
            {
                **_library_fields(info, stats),
                "by_media_type": stats.by_media_type,
                "by_status": stats.by_status,
            }
        )


class LibrariesOut(_Out):
    items: list[LibraryItem] = Field(description="in library_id order")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class LibraryAssetsOut(_Out):
    library_id: str
    items: list[AssetItem]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class TopItem(TotalsOut):
    rank: int
    asset_id: str
    value: float = Field(description="the ranked metric")
    usage_count: int | None = Field(
        default=None, description="metric=usage: how often the asset was published or used"
    )


class TopOut(_Out):
    library_id: str
    metric: str
    window: str
    channel: str | None
    min_impressions: int
    items: list[TopItem]


class LibraryMetricsOut(TotalsOut):
    library_id: str
    window: str
    channel: str | None
    assets_with_activity: int


class CampaignMetricsOut(TotalsOut):
    campaign_id: str
    window: str
    assets_with_activity: int


class CampaignTopItem(TopItem):
    library_id: str | None = Field(description="the asset's library")


class CampaignTopOut(_Out):
    campaign_id: str
    metric: str
    window: str
    min_impressions: int
    items: list[CampaignTopItem]


class RedundantCopiesItem(_Out):
    content_sha256: str
    copies: int = Field(description="the library's assets holding this content")
    wasted_bytes: int = Field(description="what all copies but one take")
    asset_ids: list[str] = Field(description="those assets, in order of registration")


class RedundantCopiesOut(_Out):
    library_id: str
    items: list[RedundantCopiesItem] = Field(description="most wasted bytes first")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class DuplicateOut(_Out):
    asset_id: str
    library_id: str


class DuplicatesOut(_Out):
    content_sha256: str
    assets: list[DuplicateOut]


class DeadLetterStatsOut(_Out):
    by_reason: dict[str, int]
    total: int


class PerformanceStatsOut(_Out):
    applied: int
    duplicates: int
    late: int


class SuggestionOut(OptimizationSuggestion):
    status: Status
    closed_at: AwareDatetime | None = None
    new_asset_id: str | None = Field(default=None, description="the variant that applied it")
    realised_improvement_pct: float | None = Field(
        default=None, description="the variant's lifetime CTR against the original's, in %"
    )
    realised_ci95: list[float] | None = None


class SuggestionsOut(_Out):
    items: list[SuggestionOut]
    next_cursor: str | None = Field(
        default=None,
        description="a library's listing: pass as `cursor` for the next page; null at the end",
    )


class AccuracyItem(_Out):
    type: str
    unit: str = Field(
        description="what the percentages measure: bytes_saved (the variant's file against "
        "the original's) or ctr_change (the variant's lifetime CTR against the original's)"
    )
    realised: int = Field(description="applied suggestions whose outcome is known")
    mean_estimated_pct: float
    mean_realised_pct: float
    mean_absolute_error_pct: float
    estimate_within_ci95: int = Field(
        description="how many estimates the realised 95 % interval contains"
    )


class AccuracyOut(_Out):
    items: list[AccuracyItem]


class HealthOut(_Out):
    status: str


class Problem(_Out):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(description="a stable identifier of the kind of error")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="the request path")
