"""Each rule at its boundaries, per channel, with the shipped thresholds."""

from __future__ import annotations

from importlib import resources

import pytest

from service.domain.enums import Channel, Priority, SuggestionType
from service.domain.registry import Asset
from service.domain.rules_config import parse_rules
from service.domain.suggestions import (
    creative_fatigue,
    file_rules,
    refresh_design,
    suggestion_id,
)
from tests.unit.factories import registration, source

CONFIG = parse_rules((resources.files("service") / "rules.toml").read_text())


def asset(**overrides: object) -> Asset:
    from service.domain import registry as rules

    state = rules.register(None, registration(**overrides), source()).state
    assert state.asset is not None
    return state.asset


def types(drafts: list) -> set[tuple[str, str | None]]:  # type: ignore[type-arg]
    return {(d.type.value, d.channel and d.channel.value) for d in drafts}


def test_channels_inherit_defaults_and_override_them() -> None:
    assert CONFIG.for_channel(Channel.DISPLAY).max_file_bytes == 153_600
    assert CONFIG.for_channel(Channel.EMAIL).ctr_benchmark == 0.026
    assert CONFIG.for_channel(Channel.EMAIL).fatigue_ratio == 0.7  # inherited
    assert CONFIG.for_channel(Channel.VIDEO) == CONFIG.defaults
    assert CONFIG.for_channel(None) == CONFIG.defaults


@pytest.mark.parametrize(
    ("channel", "size", "expected"),
    [
        ("display", 153_600, None),
        ("display", 153_601, Priority.MEDIUM),
        ("display", 307_201, Priority.HIGH),
        ("email", 1_000_000, None),
        ("email", 1_000_001, Priority.MEDIUM),
        ("social", 5_242_880, None),
        ("social", 6_000_000, Priority.MEDIUM),
    ],
)
def test_compress_at_each_channels_limit(
    channel: str, size: int, expected: Priority | None
) -> None:
    drafts = [
        d
        for d in file_rules(
            asset(intended_channels=[channel], file_size_bytes=size, width=1200, height=628), CONFIG
        )
        if d.type is SuggestionType.COMPRESS
    ]
    assert [d.priority for d in drafts] == ([] if expected is None else [expected])
    if drafts:
        limit = CONFIG.for_channel(Channel(channel)).max_file_bytes
        assert drafts[0].estimated_improvement_pct == round(100 * (size - limit) / size, 1)


def test_webp_only_where_the_channel_shows_it() -> None:
    jpeg = asset(
        format="jpeg",
        width=1000,
        height=1000,
        file_size_bytes=400_000,
        intended_channels=["web", "email", "display"],
    )
    webp = [d for d in file_rules(jpeg, CONFIG) if d.type is SuggestionType.CONVERT_TO_WEBP]
    assert [d.channel for d in webp] == [Channel.WEB]
    assert webp[0].estimated_improvement_pct == 50.0  # 400,000 -> 200,000 bytes
    # under Lighthouse's 8 KiB threshold: nothing
    small = asset(
        format="png",
        width=100,
        height=100,
        file_size_bytes=2_000 + 8_191,
        intended_channels=["web"],
    )
    assert not [d for d in file_rules(small, CONFIG) if d.type is SuggestionType.CONVERT_TO_WEBP]
    already = asset(format="webp", intended_channels=["web"], file_size_bytes=900_000)
    assert not [d for d in file_rules(already, CONFIG) if d.type is SuggestionType.CONVERT_TO_WEBP]


def test_gif_to_video_uses_lighthouses_fit() -> None:
    at_limit = asset(media_type="gif", format="gif", file_size_bytes=102_400)
    assert not [d for d in file_rules(at_limit, CONFIG) if d.type is SuggestionType.GIF_TO_VIDEO]
    [draft] = [
        d
        for d in file_rules(asset(media_type="gif", format="gif", file_size_bytes=102_401), CONFIG)
        if d.type is SuggestionType.GIF_TO_VIDEO
    ]
    assert draft.estimated_improvement_pct == 45.1  # 29.1 x log10(102,401) - 100.7
    video = asset(media_type="gif", format="mp4", file_size_bytes=5_000_000)
    assert not [d for d in file_rules(video, CONFIG) if d.type is SuggestionType.GIF_TO_VIDEO]


@pytest.mark.parametrize(
    ("channel", "width", "height", "fires"),
    [
        ("display", 1200, 628, False),  # 1.911
        ("display", 1000, 1000, False),
        ("display", 1200, 600, True),  # 2.0
        ("social", 1080, 1350, False),  # 0.8
        ("social", 1080, 1400, True),  # 0.771, outside 3 %
        ("email", 1200, 600, False),  # not an ad upload
    ],
)
def test_aspect_ratio_for_ads(channel: str, width: int, height: int, fires: bool) -> None:
    drafts = file_rules(
        asset(intended_channels=[channel], width=width, height=height, file_size_bytes=10_000),
        CONFIG,
    )
    assert ((SuggestionType.FIX_ASPECT_RATIO.value, channel) in types(drafts)) is fires


@pytest.mark.parametrize(
    ("channel", "clicks", "impressions", "expected"),
    [
        ("display", 0, 652, None),  # below the rule-of-three sample (653)
        ("display", 0, 653, None),  # Wilson upper bound 0.59 % is not below 0.46 %
        ("display", 0, 1_000, Priority.MEDIUM),  # upper 0.38 % < 0.46 %, not < 0.23 %
        ("display", 0, 2_000, Priority.HIGH),  # upper 0.19 % < half the benchmark
        ("email", 20, 1_000, None),  # 2 %, but the upper bound 3.07 % is not below 2.6 %
        ("email", 10, 1_000, Priority.MEDIUM),  # 1 %: upper 1.83 % < 2.6 %
        ("email", 260, 10_000, None),  # at the benchmark
        ("search", 1, 94, None),  # too few impressions
    ],
)
def test_refresh_design_needs_sample_and_confidence(
    channel: str, clicks: int, impressions: int, expected: Priority | None
) -> None:
    draft = refresh_design(clicks, impressions, Channel(channel), "7d", CONFIG)
    assert (draft and draft.priority) == expected
    if draft is not None:
        assert draft.evidence["ci95"][1] < draft.evidence["benchmark"]  # type: ignore[index]


def test_creative_fatigue_needs_a_drop_and_significance() -> None:
    email = Channel.EMAIL
    windows = ("24h", "7d")
    assert creative_fatigue((20, 2_000), (60, 2_000), email, windows, CONFIG) is not None
    assert creative_fatigue((2, 200), (6, 200), email, windows, CONFIG) is None  # not significant
    assert creative_fatigue((45, 2_000), (60, 2_000), email, windows, CONFIG) is None  # 0.75
    assert creative_fatigue((5, 50), (60, 2_000), email, windows, CONFIG) is None  # sample
    high = creative_fatigue((10, 2_000), (60, 2_000), email, windows, CONFIG)
    assert high is not None and high.priority is Priority.HIGH


def test_ids_are_deterministic_per_asset_type_channel_and_trigger() -> None:
    draft = refresh_design(0, 5_000, Channel.DISPLAY, "7d", CONFIG)
    assert draft is not None
    assert suggestion_id("a1", draft) == suggestion_id("a1", draft)
    assert suggestion_id("a1", draft) != suggestion_id("a2", draft)
    other = refresh_design(0, 5_000, Channel.DISPLAY, "24h", CONFIG)
    assert other is not None and suggestion_id("a1", other) != suggestion_id("a1", draft)


@pytest.mark.parametrize(
    ("channel", "width", "fires"),
    [
        ("email", 600, False),
        ("email", 601, False),
        ("email", 1200, True),
        ("web", 1920, False),
        ("web", 3840, True),
    ],
)
def test_resize_beyond_what_the_channel_shows(channel: str, width: int, fires: bool) -> None:
    # 601 px in a 600 px email saves 0.3 % of 200 KB: under Lighthouse's 4 KiB threshold
    drafts = file_rules(
        asset(
            format="jpeg",
            width=width,
            height=width // 2,
            file_size_bytes=200_000,
            intended_channels=[channel],
        ),
        CONFIG,
    )
    assert ((SuggestionType.RESIZE.value, channel) in types(drafts)) is fires


def test_reformat_video_containers_players_do_not_take() -> None:
    mov = asset(
        media_type="video", format="mov", file_size_bytes=1_000, intended_channels=["web", "social"]
    )
    assert {(t, c) for t, c in types(file_rules(mov, CONFIG)) if t == "reformat"} == {
        ("reformat", "web"),
        ("reformat", "social"),
    }
    mp4 = asset(media_type="video", format="mp4", file_size_bytes=1_000, intended_channels=["web"])
    assert not [d for d in file_rules(mp4, CONFIG) if d.type is SuggestionType.REFORMAT]


def test_background_removal_is_opt_in_by_tag() -> None:
    product = asset(tags=["Product", "summer"], file_size_bytes=1_000)
    [draft] = [d for d in file_rules(product, CONFIG) if d.type is SuggestionType.REMOVE_BG]
    assert draft.priority is Priority.LOW and draft.estimated_improvement_pct == 0.0
    plain = asset(tags=["summer"], file_size_bytes=1_000)
    assert not [d for d in file_rules(plain, CONFIG) if d.type is SuggestionType.REMOVE_BG]


def test_a_missing_rules_file_is_a_clear_settings_error(tmp_path: object) -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError, match="no rules file at"):
        Settings(suggestion_rules_file=f"{tmp_path}/nope.toml")
