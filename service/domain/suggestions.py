"""The optimization rules: what to change in an asset, why, and how sure we are.

Pure functions from an asset's facts (file rules) or its counters (performance
rules) and the thresholds of its channel to suggestion drafts. Every estimate has a
stated basis; every performance verdict waits for enough impressions and for a
confidence bound, not for a point estimate, to cross the threshold.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from service.domain.enums import Channel, MediaFormat, Priority, SuggestionType
from service.domain.registry import Asset
from service.domain.rules_config import RulesConfig
from service.domain.statistics import minimum_sample, two_proportion_p_value, wilson

RASTER_TO_MODERN = frozenset({MediaFormat.JPEG, MediaFormat.PNG})
AD_CHANNELS = frozenset({Channel.DISPLAY, Channel.SOCIAL, Channel.SEARCH})


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
    evidence: dict[str, float | int | str | list[float]] = field(default_factory=dict)


def suggestion_id(asset_id: str, draft: Draft) -> str:
    """The same asset, type, channel and trigger always give the same id."""
    key = f"{asset_id}|{draft.type}|{draft.channel or '-'}|{draft.trigger}"
    return f"sug-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


# --- file rules -------------------------------------------------------------------


def file_rules(asset: Asset, config: RulesConfig) -> list[Draft]:
    """Suggestions from the file itself, for each channel the asset is meant for."""
    drafts: list[Draft] = []
    gif = _gif_to_video(asset, config)
    if gif is not None:
        drafts.append(gif)
    channels: list[Channel | None] = [*asset.intended_channels] or [None]
    for channel in channels:
        for rule in (_compress, _modern_format, _aspect_ratio, _resize, _reformat):
            draft = rule(asset, config, channel)
            if draft is not None:
                drafts.append(draft)
    remove_bg = _remove_background(asset, config)
    if remove_bg is not None:
        drafts.append(remove_bg)
    return drafts


def _resize(asset: Asset, config: RulesConfig, channel: Channel | None) -> Draft | None:
    """Larger than the channel ever shows it: Lighthouse's responsive-size saving."""
    rules = config.for_channel(channel)
    if asset.format not in RASTER_TO_MODERN or asset.width <= rules.display_width:
        return None
    shown = rules.display_width / asset.width  # the share of each side that is displayed
    saved = int(asset.file_size_bytes * (1 - shown * shown))
    if saved < rules.min_resize_saving_bytes:
        return None
    return Draft(
        type=SuggestionType.RESIZE,
        priority=Priority.MEDIUM if shown < 0.5 else Priority.LOW,
        channel=channel,
        description=f"Resize to {rules.display_width} px wide for {channel or 'its channels'}: "
        f"{asset.width} px is more than it ever shows.",
        estimated_improvement_pct=round(100 * saved / asset.file_size_bytes, 1),
        improvement_basis="bytes saved, Lighthouse's responsive-size estimate: bytes x "
        "(1 - displayed pixels / natural pixels)",
        trigger=f"width>{rules.display_width}",
        evidence={
            "width": asset.width,
            "display_width": rules.display_width,
            "file_size_bytes": asset.file_size_bytes,
        },
    )


WEB_VIDEO = frozenset({MediaFormat.MP4, MediaFormat.WEBM})
NOT_WEB_PLAYABLE = frozenset({MediaFormat.MOV, MediaFormat.MKV})


def _reformat(asset: Asset, config: RulesConfig, channel: Channel | None) -> Draft | None:
    """A video container browsers and ad platforms do not play everywhere."""
    if asset.format not in NOT_WEB_PLAYABLE or channel is None:
        return None
    return Draft(
        type=SuggestionType.REFORMAT,
        priority=Priority.HIGH,
        channel=channel,
        description=f"Re-encode this {asset.format.upper()} as MP4 (H.264) or WebM: {channel} "
        "players do not reliably play it.",
        estimated_improvement_pct=0.0,
        improvement_basis="compatibility: MP4 and WebM are the containers web and ad "
        "players accept; no gain is claimed",
        trigger=f"format={asset.format}",
        evidence={
            "format": asset.format.value,
            "accepted": ",".join(sorted(f.value for f in WEB_VIDEO)),
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


def _compress(asset: Asset, config: RulesConfig, channel: Channel | None) -> Draft | None:
    limit = config.for_channel(channel).max_file_bytes
    size = asset.file_size_bytes
    if size <= limit:
        return None
    saved = size - limit
    where = f"the {channel} limit" if channel else "the general limit"
    return Draft(
        type=SuggestionType.COMPRESS,
        priority=Priority.HIGH if size > 2 * limit else Priority.MEDIUM,
        channel=channel,
        description=f"Compress this file to {_kib(limit)} or less: {where} it now exceeds "
        f"by {_kib(saved)}.",
        estimated_improvement_pct=round(100 * saved / size, 1),
        improvement_basis=f"bytes saved reaching {where} of {limit} bytes",
        trigger=f"max_file_bytes={limit}",
        evidence={"file_size_bytes": size, "max_file_bytes": limit},
    )


def _modern_format(asset: Asset, config: RulesConfig, channel: Channel | None) -> Draft | None:
    rules = config.for_channel(channel)
    if not rules.shows_modern_formats or asset.format not in RASTER_TO_MODERN:
        return None
    estimate = int(asset.width * asset.height * rules.webp_bytes_per_pixel)
    saved = asset.file_size_bytes - estimate
    if saved < rules.min_format_saving_bytes:
        return None
    return Draft(
        type=SuggestionType.CONVERT_TO_WEBP,
        priority=Priority.MEDIUM if saved > asset.file_size_bytes / 2 else Priority.LOW,
        channel=channel,
        description=f"Serve this {asset.format.upper()} as WebP on {channel}: about "
        f"{_kib(saved)} lighter.",
        estimated_improvement_pct=round(100 * saved / asset.file_size_bytes, 1),
        improvement_basis=f"bytes saved at Lighthouse's WebP estimate of "
        f"{rules.webp_bytes_per_pixel} bytes per pixel",
        trigger=f"format={asset.format}",
        evidence={"file_size_bytes": asset.file_size_bytes, "estimated_webp_bytes": estimate},
    )


def _aspect_ratio(asset: Asset, config: RulesConfig, channel: Channel | None) -> Draft | None:
    rules = config.for_channel(channel)
    if channel not in AD_CHANNELS or not rules.accepted_ratios:
        return None
    ratio = asset.width / asset.height
    if any(abs(ratio - r) <= r * rules.ratio_tolerance for r in rules.accepted_ratios):
        return None
    accepted = ", ".join(f"{r:g}:1" for r in rules.accepted_ratios)
    return Draft(
        type=SuggestionType.FIX_ASPECT_RATIO,
        priority=Priority.HIGH,
        channel=channel,
        description=f"Crop or resize to an accepted {channel} ratio ({accepted}); "
        f"{asset.width}x{asset.height} is {ratio:.2f}:1.",
        estimated_improvement_pct=0.0,
        improvement_basis="compliance: ads outside the accepted ratios are rejected or "
        "cropped by the platform; no gain is claimed",
        trigger=f"ratio={ratio:.3f}",
        evidence={
            "ratio": round(ratio, 4),
            "accepted_ratios": list(rules.accepted_ratios),
            "tolerance": rules.ratio_tolerance,
        },
    )


def _gif_to_video(asset: Asset, config: RulesConfig) -> Draft | None:
    threshold = config.defaults.gif_to_video_min_bytes
    if asset.format is not MediaFormat.GIF or asset.file_size_bytes <= threshold:
        return None  # an animated GIF file: what Lighthouse's estimate was fitted on
    saving = max(0.0, min(95.0, 29.1 * math.log10(asset.file_size_bytes) - 100.7))
    return Draft(
        type=SuggestionType.GIF_TO_VIDEO,
        priority=Priority.HIGH if asset.file_size_bytes > 10 * threshold else Priority.MEDIUM,
        channel=None,
        description=f"Deliver this {_kib(asset.file_size_bytes)} animated GIF as an MP4 or "
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


def creative_fatigue(
    recent: tuple[int, int],
    best: tuple[int, int],
    channel: Channel | None,
    windows: tuple[str, str],
    config: RulesConfig,
) -> Draft | None:
    """Recent CTR fell well below the asset's own best comparable window, significantly.

    `recent` and `best` are (clicks, impressions); `windows` names them.
    """
    rules = config.for_channel(channel)
    needed = minimum_sample(rules.ctr_benchmark)
    (recent_clicks, recent_impr), (best_clicks, best_impr) = recent, best
    if recent_impr < needed or best_impr < needed or best_clicks == 0:
        return None
    recent_ctr, best_ctr = recent_clicks / recent_impr, best_clicks / best_impr
    if recent_ctr > rules.fatigue_ratio * best_ctr:
        return None
    p_value = two_proportion_p_value(recent_clicks, recent_impr, best_clicks, best_impr)
    if p_value >= rules.fatigue_p_value:
        return None
    lost = best_ctr * recent_impr - recent_clicks
    return Draft(
        type=SuggestionType.CREATIVE_FATIGUE,
        priority=Priority.HIGH if recent_ctr <= best_ctr / 2 else Priority.MEDIUM,
        channel=channel,
        description=f"Creative fatigue: CTR over {windows[0]} is {100 * recent_ctr:.2f}%, down "
        f"from {100 * best_ctr:.2f}% over {windows[1]}; rotate in a new variant.",
        estimated_improvement_pct=round(100 * lost / (best_ctr * recent_impr), 1),
        improvement_basis=f"clicks recovered at the asset's own {windows[1]} CTR: "
        f"{lost:.0f} over {windows[0]}",
        trigger=f"fatigue:{windows[0]}<{windows[1]}",
        evidence={
            "recent_window": windows[0],
            "best_window": windows[1],
            "recent_ctr": recent_ctr,
            "best_ctr": best_ctr,
            "p_value": p_value,
            "ratio_threshold": rules.fatigue_ratio,
        },
    )


def _kib(size: int | float) -> str:
    return f"{size / 1024:,.0f} KiB"
