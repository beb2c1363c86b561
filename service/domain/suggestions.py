"""The optimization rules: what to change in an asset, why, and how sure we are.

Pure functions from an asset's facts (file rules) or its counters (performance
rules) and the thresholds of its channel to suggestion drafts. Every estimate has a
stated basis; every performance verdict waits for enough impressions and for a
confidence bound, not for a point estimate, to cross the threshold.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.domain.enums import (
    Channel,
    MediaFormat,
    MediaKind,
    Priority,
    SuggestionType,
    media_kind,
)
from service.domain.registry import Asset
from service.domain.rules_config import FileSpec, RulesConfig
from service.domain.statistics import lower_rate_p_value, minimum_sample, wilson

RASTER_TO_MODERN = frozenset({MediaFormat.JPEG, MediaFormat.PNG})

FILE_TYPES = frozenset(
    {
        SuggestionType.COMPRESS,
        SuggestionType.CONVERT_TO_WEBP,
        SuggestionType.RESIZE,
        SuggestionType.REMOVE_BG,
        SuggestionType.REFORMAT,
        SuggestionType.GIF_TO_VIDEO,
        SuggestionType.FIX_ASPECT_RATIO,
    }
)
# The file rules whose estimate is a share of bytes saved, comparable with a variant's size.
BYTE_SAVING_TYPES = frozenset(
    {
        SuggestionType.COMPRESS,
        SuggestionType.CONVERT_TO_WEBP,
        SuggestionType.RESIZE,
        SuggestionType.GIF_TO_VIDEO,
    }
)
PERFORMANCE_TYPES = frozenset({SuggestionType.REFRESH_DESIGN, SuggestionType.CREATIVE_FATIGUE})


@dataclass(frozen=True)
class Draft:
    """A suggestion before its identity, state and timestamps are attached."""

    type: SuggestionType
    priority: Priority
    channel: Channel | None
    description: str
    estimated_improvement_pct: float
    improvement_basis: str
    trigger: str  # what fired it; part of the deterministic id
    evidence: dict[str, float | int | str | list[float] | list[list[float]]] = field(
        default_factory=dict
    )


def suggestion_id(asset_id: str, draft: Draft) -> str:
    """The same asset, type, channel and trigger always give the same id."""
    key = f"{asset_id}|{draft.type}|{draft.channel or '-'}|{draft.trigger}"
    return f"sug-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


# --- file rules -------------------------------------------------------------------

RESIZABLE = frozenset({MediaFormat.JPEG, MediaFormat.PNG, MediaFormat.WEBP, MediaFormat.AVIF})


def file_rules(asset: Asset, config: RulesConfig) -> list[Draft]:
    """Suggestions from the file itself, for each channel the asset is meant for, held
    to that channel's specification for the asset's media kind (`[files]` of rules.toml)."""
    kind = media_kind(asset.media_type, asset.format)
    channels: list[Channel | None] = [*asset.intended_channels] or [None]
    drafts: list[Draft] = []
    gif = _gif_to_video(asset, config, kind, channels)
    if gif is not None:
        drafts.append(gif)
    for channel in channels:
        spec = config.file_spec(channel, kind)
        for rule in (_compress, _modern_format, _aspect_ratio, _resize, _reformat):
            draft = rule(asset, config, spec, channel)
            if draft is not None:
                drafts.append(draft)
    remove_bg = _remove_background(asset, config)
    if remove_bg is not None:
        drafts.append(remove_bg)
    return drafts


def _where(channel: Channel | None) -> str:
    return f"on {channel}" if channel else "on its channels"


def _resize(
    asset: Asset, config: RulesConfig, spec: FileSpec, channel: Channel | None
) -> Draft | None:
    """Wider than the channel shows it even on a high-density screen (shown width x
    density): Lighthouse's responsive-size saving."""
    target = spec.max_width
    if asset.format not in RESIZABLE or not target or asset.width <= target:
        return None
    shown = target / asset.width  # the share of each side that is needed
    saved = int(asset.file_size_bytes * (1 - shown * shown))
    if saved < config.for_channel(channel).min_resize_saving_bytes:
        return None
    return Draft(
        type=SuggestionType.RESIZE,
        priority=Priority.MEDIUM if shown < 0.5 else Priority.LOW,
        channel=channel,
        description=f"Resize to {target} px wide {_where(channel)}: it shows at most "
        f"{spec.shown_width} px, {target} px on high-density screens; {asset.width} px is "
        "more than any screen uses.",
        estimated_improvement_pct=round(100 * saved / asset.file_size_bytes, 1),
        improvement_basis="bytes saved, Lighthouse's responsive-size estimate: bytes x "
        "(1 - needed pixels / natural pixels)",
        trigger=f"width>{target}",
        evidence={
            "width": asset.width,
            "shown_width": spec.shown_width,
            "density": spec.density,
            "max_width": target,
            "file_size_bytes": asset.file_size_bytes,
        },
    )


def _reformat(
    asset: Asset, config: RulesConfig, spec: FileSpec, channel: Channel | None
) -> Draft | None:
    """A format the channel does not accept (or does not show) for this media kind."""
    if channel is None or spec.accepts_format(asset.format):
        return None
    accepted = ", ".join(f.value.upper() for f in spec.formats)
    return Draft(
        type=SuggestionType.REFORMAT,
        priority=Priority.HIGH,
        channel=channel,
        description=f"Deliver this {asset.format.upper()} as {accepted} {_where(channel)}: "
        f"{channel} does not accept or reliably show {asset.format.upper()}.",
        estimated_improvement_pct=0.0,
        improvement_basis=f"compatibility: {channel} accepts {accepted} for this media "
        "kind; no gain is claimed",
        trigger=f"format={asset.format}",
        evidence={
            "format": asset.format.value,
            "accepted": ",".join(f.value for f in spec.formats),
        },
    )


def _remove_background(asset: Asset, config: RulesConfig) -> Draft | None:
    """Opt-in by tag: no published study shows a CTR gain, so it stays low priority."""
    tags = set(config.defaults.remove_bg_tags) & set(asset.tags)
    if not tags or asset.media_type.value not in ("image", "thumbnail", "banner"):
        return None
    return Draft(
        type=SuggestionType.REMOVE_BG,
        priority=Priority.LOW,
        channel=None,
        description="Consider a clean background for this product image.",
        estimated_improvement_pct=0.0,
        improvement_basis="opt-in by tag; no published CTR gain to estimate from",
        trigger=f"tags={','.join(sorted(tags))}",
        evidence={"tags": ",".join(sorted(tags))},
    )


def _compress(
    asset: Asset, config: RulesConfig, spec: FileSpec, channel: Channel | None
) -> Draft | None:
    limit = spec.max_file_bytes
    size = asset.file_size_bytes
    if not limit or size <= limit:
        return None
    saved = size - limit
    where = f"the {channel} limit" if channel else "the general limit"
    return Draft(
        type=SuggestionType.COMPRESS,
        priority=Priority.HIGH if size > 2 * limit else Priority.MEDIUM,
        channel=channel,
        description=f"Compress this file to {_size(limit)} or less: {where} it now exceeds "
        f"by {_size(saved)}.",
        estimated_improvement_pct=round(100 * saved / size, 1),
        improvement_basis=f"bytes saved reaching {where} of {limit} bytes",
        trigger=f"max_file_bytes={limit}",
        evidence={"file_size_bytes": size, "max_file_bytes": limit},
    )


def _modern_format(
    asset: Asset, config: RulesConfig, spec: FileSpec, channel: Channel | None
) -> Draft | None:
    rules = config.for_channel(channel)
    if not spec.modern_formats or asset.format not in RASTER_TO_MODERN:
        return None
    estimate = int(asset.width * asset.height * rules.webp_bytes_per_pixel)
    saved = asset.file_size_bytes - estimate
    if saved < rules.min_format_saving_bytes:
        return None
    return Draft(
        type=SuggestionType.CONVERT_TO_WEBP,
        priority=Priority.MEDIUM if saved > asset.file_size_bytes / 2 else Priority.LOW,
        channel=channel,
        description=f"Serve this {asset.format.upper()} as WebP {_where(channel)}: about "
        f"{_size(saved)} lighter.",
        estimated_improvement_pct=round(100 * saved / asset.file_size_bytes, 1),
        improvement_basis=f"bytes saved at Lighthouse's WebP estimate of "
        f"{rules.webp_bytes_per_pixel} bytes per pixel",
        trigger=f"format={asset.format}",
        evidence={"file_size_bytes": asset.file_size_bytes, "estimated_webp_bytes": estimate},
    )


def _ratio_text(low: float, high: float) -> str:
    return f"{low:g}:1" if low == high else f"{low:g}:1 to {high:g}:1"


def _aspect_ratio(
    asset: Asset, config: RulesConfig, spec: FileSpec, channel: Channel | None
) -> Draft | None:
    ratio = asset.width / asset.height
    if channel is None or spec.accepts_ratio(ratio):
        return None
    accepted = ", ".join(_ratio_text(low, high) for low, high in spec.ratios)
    sizes = ", ".join(f"{w}x{h}" for w, h in spec.recommended)
    hint = f" (recommended: {sizes})" if sizes else ""
    fate = "would be centre-cropped" if spec.crops_other_ratios else "would be rejected"
    return Draft(
        type=SuggestionType.FIX_ASPECT_RATIO,
        # a crop loses the edges of the design; a rejection stops the ad
        priority=Priority.MEDIUM if spec.crops_other_ratios else Priority.HIGH,
        channel=channel,
        description=f"Crop to a ratio {channel} accepts for this media kind ({accepted}){hint}; "
        f"{asset.width}x{asset.height} is {ratio:.2f}:1 and {fate}.",
        estimated_improvement_pct=0.0,
        improvement_basis="compliance: a platform rejects or centre-crops files outside "
        "its accepted ratios; no gain is claimed",
        trigger=f"ratio={ratio:.3f}",
        evidence={
            "ratio": round(ratio, 4),
            "accepted_ratios": [[low, high] for low, high in spec.ratios],
            "tolerance": spec.ratio_tolerance,
        },
    )


def _gif_to_video(
    asset: Asset, config: RulesConfig, kind: MediaKind, channels: list[Channel | None]
) -> Draft | None:
    """An animated GIF delivered where a video can take its place (not in email, not as
    an uploaded display banner: those take GIFs and no video)."""
    threshold = config.defaults.gif_to_video_min_bytes
    if kind is not MediaKind.ANIMATED or asset.file_size_bytes <= threshold:
        return None  # an animated GIF file: what Lighthouse's estimate was fitted on
    if not any(config.file_spec(c, kind).video_instead for c in channels):
        return None
    saving = max(0.0, min(95.0, 29.1 * math.log10(asset.file_size_bytes) - 100.7))
    return Draft(
        type=SuggestionType.GIF_TO_VIDEO,
        priority=Priority.HIGH if asset.file_size_bytes > 10 * threshold else Priority.MEDIUM,
        channel=None,
        description=f"Deliver this {_size(asset.file_size_bytes)} animated GIF as an MP4 or "
        "WebM video.",
        estimated_improvement_pct=round(saving, 1),
        improvement_basis="bytes saved, Lighthouse's fit on 1,000 conversions: "
        "29.1 x log10(bytes) - 100.7 %",
        trigger=f"gif>{threshold}",
        evidence={"file_size_bytes": asset.file_size_bytes, "threshold_bytes": threshold},
    )


# --- performance rules ------------------------------------------------------------


def refresh_design(
    clicks: int, impressions: int, channel: Channel | None, window: str, config: RulesConfig
) -> Draft | None:
    """CTR below the channel's benchmark, shown by the Wilson upper bound, not guessed."""
    benchmark = config.for_channel(channel).ctr_benchmark
    needed = minimum_sample(benchmark)
    if impressions < needed:
        return None  # not enough impressions for any verdict yet
    bound = wilson(clicks, impressions)
    if bound.high >= benchmark:
        return None
    missing = benchmark * impressions - clicks
    ctr = clicks / impressions
    return Draft(
        type=SuggestionType.REFRESH_DESIGN,
        priority=Priority.HIGH if bound.high < benchmark / 2 else Priority.MEDIUM,
        channel=channel,
        description=f"Refresh the design: its {window} CTR on {channel or 'all channels'} is "
        f"{100 * ctr:.2f}%, surely below the {100 * benchmark:.2f}% benchmark.",
        estimated_improvement_pct=round(100 * missing / (benchmark * impressions), 1),
        improvement_basis=f"clicks recovered if CTR reached the benchmark: {missing:.0f} of "
        f"{benchmark * impressions:.0f} over {window}",
        trigger=f"ctr<benchmark:{window}",
        evidence={
            "window": window,
            "clicks": clicks,
            "impressions": impressions,
            "ctr": ctr,
            "ci95": [bound.low, bound.high],
            "benchmark": benchmark,
            "min_impressions": needed,
        },
    )


Counts = tuple[int, int]  # (clicks, impressions)


def _add(counts: Sequence[Counts]) -> Counts:
    return sum(c for c, _ in counts), sum(i for _, i in counts)


FATIGUE_TRIGGER = "fatigue"


def creative_fatigue(
    daily: Sequence[Counts],
    last_24h: Counts,
    channel: Channel | None,
    config: RulesConfig,
) -> Draft | None:
    """A sustained CTR decline against the asset's own earlier run on this channel.

    `daily` is (clicks, impressions) per UTC day, newest first (index 0: today so far),
    up to 30 days; `last_24h` the last 24 hours. The decline may have begun yesterday or
    a week ago, so several recent periods are each compared with everything before them:
    the last 24 hours, then the last 1, 2, ... `fatigue_recent_days` (7) UTC days. A
    period shows fatigue when

    - its CTR is at least `fatigue_min_drop` (30 %) below the CTR of the days before it
      (the asset's own baseline, up to day 30), and
    - a one-sided test (the exact conditional binomial test: `lower_rate_p_value`) gives
      p below `fatigue_p_value` (0.01) divided
      by the number of periods tried (Bonferroni: trying eight periods does not make a
      chance dip eight times likelier to pass), and
    - both sides have the rule-of-three sample of the channel's benchmark, and the
      baseline has clicks.

    The period with the strongest evidence (lowest p) is reported. Every period belongs
    to one suggestion: one id per asset and channel.
    """
    rules = config.for_channel(channel)
    everything = _add(daily)
    periods: list[tuple[Counts, Counts, tuple[str, str]]] = []
    if last_24h[1]:
        before = (max(0, everything[0] - last_24h[0]), max(0, everything[1] - last_24h[1]))
        periods.append((last_24h, before, ("the last 24 hours", "the days before")))
    for days in range(1, min(rules.fatigue_recent_days, len(daily) - 1) + 1):
        recent = "today (UTC)" if days == 1 else f"the last {days} days"
        periods.append(
            (_add(daily[:days]), _add(daily[days:]), (recent, f"days {days + 1}-{len(daily)}"))
        )
    if not periods:
        return None
    alpha = rules.fatigue_p_value / len(periods)
    found = [_fatigue(r, b, channel, names, config, alpha) for r, b, names in periods]
    drafts = [d for d in found if d is not None]
    return min(drafts, key=_p_value, default=None)


def _p_value(draft: Draft) -> float:
    value = draft.evidence.get("p_value")
    return value if isinstance(value, float) else 1.0


def _fatigue(
    recent: Counts,
    baseline: Counts,
    channel: Channel | None,
    periods: tuple[str, str],
    config: RulesConfig,
    alpha: float,
) -> Draft | None:
    rules = config.for_channel(channel)
    needed = minimum_sample(rules.ctr_benchmark)
    (recent_clicks, recent_impr), (base_clicks, base_impr) = recent, baseline
    if recent_impr < needed or base_impr < needed or base_clicks == 0:
        return None
    recent_ctr, base_ctr = recent_clicks / recent_impr, base_clicks / base_impr
    if recent_ctr > (1 - rules.fatigue_min_drop) * base_ctr:
        return None
    p_value = lower_rate_p_value(recent_clicks, recent_impr, base_clicks, base_impr)
    if p_value >= alpha:
        return None
    lost = base_ctr * recent_impr - recent_clicks
    return Draft(
        type=SuggestionType.CREATIVE_FATIGUE,
        priority=Priority.HIGH if recent_ctr <= base_ctr / 2 else Priority.MEDIUM,
        channel=channel,
        description=f"Creative fatigue on {channel or 'all channels'}: CTR over {periods[0]} "
        f"is {100 * recent_ctr:.2f}%, down from {100 * base_ctr:.2f}% over {periods[1]}; "
        "rotate in a new variant.",
        estimated_improvement_pct=round(100 * lost / (base_ctr * recent_impr), 1),
        improvement_basis=f"clicks recovered at the asset's own CTR of {periods[1]}: "
        f"{lost:.0f} over {periods[0]}",
        trigger=FATIGUE_TRIGGER,
        evidence={
            "recent_period": periods[0],
            "baseline_period": periods[1],
            "recent_clicks": recent_clicks,
            "recent_impressions": recent_impr,
            "baseline_clicks": base_clicks,
            "baseline_impressions": base_impr,
            "recent_ctr": recent_ctr,
            "baseline_ctr": base_ctr,
            "p_value": p_value,
            "p_value_threshold": alpha,
            "min_drop": rules.fatigue_min_drop,
        },
    )


def _size(size: int | float) -> str:
    """Bytes as a person reads them: KiB below a MiB, MiB below a GiB, then GiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size / 1024:,.0f} KiB"
