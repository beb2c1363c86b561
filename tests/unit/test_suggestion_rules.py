"""Each rule at its boundaries, per channel, with the shipped thresholds."""

from __future__ import annotations

from importlib import resources

import pytest

from service.domain.enums import Channel, MediaKind, Priority, SuggestionType
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
    assert CONFIG.for_channel(Channel.EMAIL).ctr_benchmark == 0.026
    assert CONFIG.for_channel(Channel.EMAIL).fatigue_min_drop == 0.3  # inherited
    assert CONFIG.for_channel(Channel.VIDEO) == CONFIG.defaults
    assert CONFIG.for_channel(None) == CONFIG.defaults
    social_video = CONFIG.file_spec(Channel.SOCIAL, MediaKind.VIDEO)
    assert social_video.max_file_bytes == 4 * 1024**3
    assert social_video.density == 2.0  # inherited from [files.default.video]
    # a channel without an entry for the kind is held to [files.default.<kind>]
    assert CONFIG.file_spec(Channel.VIDEO, MediaKind.IMAGE) == CONFIG.file_spec(
        None, MediaKind.IMAGE
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[files.tv.image]\nmax_file_bytes = 1", "names no channel"),
        ("[files.web.audio]\nmax_file_bytes = 1", "media kind must be one of"),
        ("[files.web.image]\nratios = [[2.0, 1.0]]", "0 < low <= high"),
        ("[files.web.image]\nmax_bytes = 1", "max_bytes"),
    ],
)
def test_a_wrong_platform_table_says_what_to_fix(text: str, message: str) -> None:
    shipped = (resources.files("service") / "rules.toml").read_text()
    defaults = shipped[: shipped.index("[channels.email]")]
    with pytest.raises(ValueError, match=message):
        parse_rules(defaults + text)


@pytest.mark.parametrize(
    ("channel", "media_type", "fmt", "size", "expected"),
    [
        ("display", "image", "jpeg", 153_600, None),  # IAB 150 KB initial load
        ("display", "image", "jpeg", 153_601, Priority.MEDIUM),
        ("display", "image", "jpeg", 307_201, Priority.HIGH),
        ("email", "image", "jpeg", 1_000_000, None),
        ("email", "image", "jpeg", 1_000_001, Priority.MEDIUM),
        ("social", "image", "jpeg", 30 * 1024**2, None),  # Meta images: 30 MB
        ("social", "image", "jpeg", 30 * 1024**2 + 1, Priority.MEDIUM),
        ("social", "video", "mp4", 20_000_000, None),  # Meta video: 4 GB
        ("social", "video", "mp4", 4 * 1024**3, None),
        ("social", "video", "mp4", 4 * 1024**3 + 1, Priority.MEDIUM),
        ("web", "video", "mp4", 500_000_000, None),  # no platform limit known for video
        ("web", "image", "png", 5 * 1024**2 + 1, Priority.MEDIUM),
    ],
)
def test_compress_at_each_channels_limit_for_the_media_kind(
    channel: str, media_type: str, fmt: str, size: int, expected: Priority | None
) -> None:
    width, height = (1920, 1080) if media_type == "video" else (1200, 628)
    a = asset(
        intended_channels=[channel],
        media_type=media_type,
        format=fmt,
        file_size_bytes=size,
        width=width,
        height=height,
    )
    drafts = [d for d in file_rules(a, CONFIG) if d.type is SuggestionType.COMPRESS]
    assert [d.priority for d in drafts] == ([] if expected is None else [expected])
    if drafts:
        limit = drafts[0].evidence["max_file_bytes"]
        assert isinstance(limit, int)
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
    ("channel", "media_type", "fmt", "width", "height", "fires"),
    [
        ("display", "image", "jpeg", 1200, 628, False),  # 1.911: Google's landscape
        ("display", "image", "jpeg", 1000, 1000, False),
        ("display", "image", "png", 600, 500, False),  # a 300x250 unit at 2x
        ("display", "image", "png", 1456, 180, False),  # 728x90 at 2x
        ("display", "image", "jpeg", 1200, 600, True),  # 2:1 is no display ratio
        ("social", "image", "jpeg", 1200, 628, False),  # Meta feed: 1.91:1 ..
        ("social", "image", "jpeg", 1080, 1350, False),  # .. to 4:5, a range
        ("social", "image", "jpeg", 1080, 1200, False),  # 0.9: inside the range
        ("social", "image", "jpeg", 1080, 1920, True),  # 9:16 image: cropped
        ("social", "image", "jpeg", 1600, 628, True),  # 2.55:1: wider than 1.91:1
        ("social", "video", "mp4", 1920, 1080, False),  # Meta video: 16:9 ..
        ("social", "video", "mp4", 1080, 1920, False),  # .. to 9:16
        ("social", "video", "mp4", 1080, 1080, False),
        ("social", "video", "mp4", 2560, 1080, True),  # 21:9
        ("search", "image", "jpeg", 1200, 1200, False),
        ("search", "image", "jpeg", 1080, 1350, True),  # no 4:5 image assets on search
        ("email", "image", "jpeg", 1200, 600, False),  # not an ad upload
        ("web", "image", "jpeg", 3000, 500, False),
    ],
)
def test_aspect_ratio_ranges_per_channel_and_kind(
    channel: str, media_type: str, fmt: str, width: int, height: int, fires: bool
) -> None:
    a = asset(
        intended_channels=[channel],
        media_type=media_type,
        format=fmt,
        width=width,
        height=height,
        file_size_bytes=10_000,
    )
    assert (
        (SuggestionType.FIX_ASPECT_RATIO.value, channel) in types(file_rules(a, CONFIG))
    ) is fires


def test_aspect_ratio_names_the_accepted_range_and_the_recommended_sizes() -> None:
    a = asset(intended_channels=["social"], width=1080, height=1920, file_size_bytes=10_000)
    [draft] = [d for d in file_rules(a, CONFIG) if d.type is SuggestionType.FIX_ASPECT_RATIO]
    assert "0.8:1 to 1.91:1" in draft.description
    assert "1080x1080" in draft.description
    assert draft.evidence["accepted_ratios"] == [[0.8, 1.91]]
    # Meta centre-crops other ratios: medium; display rejects them: high
    assert draft.priority is Priority.MEDIUM and "centre-cropped" in draft.description
    banner = asset(intended_channels=["display"], width=1200, height=600, file_size_bytes=10_000)
    [rejected] = [
        d for d in file_rules(banner, CONFIG) if d.type is SuggestionType.FIX_ASPECT_RATIO
    ]
    assert rejected.priority is Priority.HIGH and "rejected" in rejected.description


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


def days(*periods: tuple[int, float, int]) -> list[tuple[int, int]]:
    """Daily (clicks, impressions), newest first, from (days, CTR, impressions a day)
    periods listed newest first; clicks are the expected ones (no noise)."""
    series: list[tuple[int, int]] = []
    for count, ctr, impressions in periods:
        series += [(round(ctr * impressions), impressions)] * count
    return series


def test_fatigue_catches_a_drop_that_began_days_ago() -> None:
    # ~3 % for two weeks, then ~1 % for the last six days
    series = days((6, 0.01, 1_000), (14, 0.03, 1_000), (10, 0.0, 0))
    draft = creative_fatigue(series, (10, 1_000), Channel.EMAIL, CONFIG)
    assert draft is not None and draft.priority is Priority.HIGH
    # the period with the strongest evidence: exactly where the decline began
    assert draft.evidence["recent_period"] == "the last 6 days"
    assert draft.evidence["baseline_period"] == "days 7-30"
    assert draft.evidence["baseline_ctr"] == 0.03


def test_fatigue_that_began_ten_days_ago_is_still_fatigue() -> None:
    series = days((10, 0.01, 1_000), (20, 0.03, 1_000))
    draft = creative_fatigue(series, (10, 1_000), Channel.EMAIL, CONFIG)
    assert draft is not None
    assert draft.evidence["recent_period"] == "the last 7 days"


def test_fatigue_catches_a_sharp_drop_in_the_last_day() -> None:
    series = days((1, 0.005, 2_000), (29, 0.03, 2_000))
    draft = creative_fatigue(series, (10, 2_000), Channel.EMAIL, CONFIG)
    assert draft is not None
    assert draft.evidence["recent_period"] in ("the last 24 hours", "today (UTC)")


@pytest.mark.parametrize(
    ("series", "last_24h", "why"),
    [
        (days((7, 0.024, 1_000), (23, 0.03, 1_000)), (24, 1_000), "a 20 % dip: below 30 %"),
        (days((7, 0.03, 1_000), (23, 0.03, 1_000)), (30, 1_000), "steady"),
        (days((7, 0.01, 1_000), (23, 0.01, 1_000)), (10, 1_000), "always low: not fatigue"),
        (days((7, 0.01, 10), (23, 0.03, 10)), (0, 10), "too few impressions to tell"),
        (days((7, 0.01, 1_000)), (10, 1_000), "no earlier run to compare with"),
        (
            [(1, 20)] + [(0, 20)] * 6 + [(1, 20)] * 8 + [(0, 20)] * 15,
            (1, 20),
            "0.71 % of 140 against 1.74 % of 460: p = 0.19",
        ),
    ],
)
def test_no_fatigue_without_a_sustained_significant_drop_of_30_percent(
    series: list[tuple[int, int]], last_24h: tuple[int, int], why: str
) -> None:
    assert creative_fatigue(series, last_24h, Channel.EMAIL, CONFIG) is None, why


def test_fatigue_has_one_identity_whichever_period_fired_it() -> None:
    weeks = creative_fatigue(
        days((7, 0.01, 1_000), (23, 0.03, 1_000)), (10, 1_000), Channel.EMAIL, CONFIG
    )
    day = creative_fatigue(
        days((1, 0.005, 2_000), (29, 0.03, 2_000)), (10, 2_000), Channel.EMAIL, CONFIG
    )
    assert weeks is not None and day is not None
    assert suggestion_id("a1", weeks) == suggestion_id("a1", day)


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
        ("email", 1200, False),  # a 600 px body at 2x: what email guides ask for
        ("email", 1300, True),
        ("display", 1200, False),  # Google's recommended 1200x628
        ("display", 1940, False),  # the 970 px unit at 2x
        ("display", 2400, True),
        ("social", 1200, False),  # Meta: at least 1080 px wide
        ("social", 2160, False),
        ("social", 3000, True),
        ("web", 3840, False),  # a 1920 px hero at 2x
        ("web", 5000, True),
    ],
)
def test_resize_only_beyond_twice_what_the_channel_shows(
    channel: str, width: int, fires: bool
) -> None:
    drafts = file_rules(
        asset(
            format="jpeg",
            width=width,
            height=round(width / 1.91),
            file_size_bytes=100_000,
            intended_channels=[channel],
        ),
        CONFIG,
    )
    assert ((SuggestionType.RESIZE.value, channel) in types(drafts)) is fires


def test_resize_needs_lighthouses_4_kib_saving() -> None:
    # 1210 px in a 1200 px budget saves 1.6 % of 100 KB: under 4 KiB
    a = asset(
        format="jpeg", width=1210, height=634, file_size_bytes=100_000, intended_channels=["email"]
    )
    assert not [d for d in file_rules(a, CONFIG) if d.type is SuggestionType.RESIZE]


@pytest.mark.parametrize(
    ("channel", "media_type", "fmt", "fires"),
    [
        ("web", "video", "mov", True),  # browsers do not reliably play MOV
        ("web", "video", "mkv", True),
        ("web", "video", "mp4", False),
        ("social", "video", "mov", False),  # Meta takes MP4 and MOV
        ("social", "video", "mkv", True),
        ("email", "image", "webp", True),  # Outlook for Windows shows no WebP
        ("email", "image", "svg", True),
        ("email", "image", "gif", False),
        ("web", "image", "webp", False),
        ("social", "image", "webp", True),  # Meta images: JPG or PNG
        ("video", "video", "mkv", False),  # no format list for this channel
    ],
)
def test_reformat_to_what_the_channel_accepts(
    channel: str, media_type: str, fmt: str, fires: bool
) -> None:
    a = asset(media_type=media_type, format=fmt, file_size_bytes=1_000, intended_channels=[channel])
    found = [d for d in file_rules(a, CONFIG) if d.type is SuggestionType.REFORMAT]
    assert bool(found) is fires
    if found:
        assert found[0].evidence["format"] == fmt
        assert fmt not in str(found[0].evidence["accepted"]).split(",")


def test_gif_to_video_only_where_a_video_can_replace_it() -> None:
    def gif(*channels: str) -> set[tuple[str, str | None]]:
        a = asset(
            media_type="gif", format="gif", file_size_bytes=500_000, intended_channels=[*channels]
        )
        return {t for t in types(file_rules(a, CONFIG)) if t[0] == "gif_to_video"}

    assert gif("web") == {("gif_to_video", None)}
    assert gif() == {("gif_to_video", None)}
    assert gif("email") == set()  # email clients play GIFs, not videos
    assert gif("display") == set()  # an image banner slot
    assert gif("email", "social") == {("gif_to_video", None)}


def test_a_20_mb_16_9_video_for_social_is_fine() -> None:
    a = asset(
        media_type="video",
        format="mp4",
        width=1920,
        height=1080,
        file_size_bytes=20_000_000,
        intended_channels=["social"],
    )
    assert file_rules(a, CONFIG) == []


@pytest.mark.parametrize("channel", ["display", "email", "social", "search"])
def test_a_1200x628_jpeg_of_150_kb_is_fine_on_every_ad_channel(channel: str) -> None:
    a = asset(
        format="jpeg", width=1200, height=628, file_size_bytes=150_000, intended_channels=[channel]
    )
    assert file_rules(a, CONFIG) == []


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
