"""Scored against ground truth: the rules find what is really wrong, and little else.

Simulated assets with known true CTRs per channel (some truly below the benchmark,
some fatiguing, some fine, some with too few impressions to say) and files of known
sizes and formats. The engine's suggestions and the seed prototype's naive rules
(CTR < 5 % -> refresh_design, > 5 MB -> compress, every image -> convert_to_webp) are
scored on the same data: precision and recall per type, printed as a table.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from service.domain import registry as rules
from service.domain.enums import Channel, SuggestionType
from service.domain.registry import Asset
from service.domain.rules_config import parse_rules
from service.domain.suggestions import creative_fatigue, file_rules, refresh_design
from tests.unit.factories import registration, source

CONFIG = parse_rules((resources.files("service") / "rules.toml").read_text())
CHANNELS = [Channel.EMAIL, Channel.SEARCH, Channel.DISPLAY, Channel.SOCIAL, Channel.WEB]
Key = tuple[str, str, str | None]  # (asset, type, channel)


@dataclass
class Simulated:
    asset: Asset
    channel: Channel
    week: tuple[int, int]  # (clicks, impressions) over 7d
    day: tuple[int, int]  # over the last 24h
    truth: set[Key]


def binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(1 for _ in range(n) if rng.random() < p)


def simulate(seed: int = 11, count: int = 400) -> list[Simulated]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        channel = rng.choice(CHANNELS)
        benchmark = CONFIG.for_channel(channel).ctr_benchmark
        kind = rng.choice(["low", "fatigued", "fine", "fine", "sparse"])
        fmt, media = rng.choice(
            [
                ("jpeg", "image"),
                ("png", "banner"),
                ("webp", "image"),
                ("gif", "gif"),
                ("mp4", "video"),
            ]
        )
        size = int(
            rng.choice([40_000, 120_000, 400_000, 2_000_000, 7_000_000]) * rng.uniform(0.8, 1.2)
        )
        width, height = rng.choice([(1200, 628), (1080, 1080), (300, 250), (1080, 1920)])
        asset_id = f"s{n}"
        state = rules.register(
            None,
            registration(
                asset_id,
                media_type=media,
                format=fmt,
                file_size_bytes=size,
                width=width,
                height=height,
                intended_channels=[channel.value],
            ),
            source(),
        ).state
        assert state.asset is not None
        truth: set[Key] = set()
        day_impr, week_impr = (40, 200) if kind == "sparse" else (4_000, 28_000)
        true_week = {"low": 0.4, "fatigued": 1.6, "fine": 1.3, "sparse": 0.3}[kind] * benchmark
        true_day = {"low": 0.4, "fatigued": 0.45, "fine": 1.3, "sparse": 0.3}[kind] * benchmark
        earlier_impr = week_impr - day_impr
        day_clicks = binomial(rng, day_impr, true_day)
        week_clicks = day_clicks + binomial(rng, earlier_impr, true_week)
        if kind == "low":
            truth.add((asset_id, "refresh_design", channel.value))
        if kind == "fatigued":
            truth.add((asset_id, "creative_fatigue", channel.value))
        limit = CONFIG.for_channel(channel).max_file_bytes
        if size > limit:
            truth.add((asset_id, "compress", channel.value))
        if channel is Channel.WEB and fmt in ("jpeg", "png") and size > width * height * 0.2 + 8192:
            truth.add((asset_id, "convert_to_webp", channel.value))
        shown = CONFIG.for_channel(channel).display_width
        if fmt in ("jpeg", "png") and width > shown and size * (1 - (shown / width) ** 2) >= 4096:
            truth.add((asset_id, "resize", channel.value))
        if fmt == "gif" and size > 102_400:
            truth.add((asset_id, "gif_to_video", None))
        ratio = width / height
        accepted = CONFIG.for_channel(channel).accepted_ratios
        if (
            channel in (Channel.DISPLAY, Channel.SOCIAL, Channel.SEARCH)
            and accepted
            and not any(
                abs(ratio - r) <= r * CONFIG.for_channel(channel).ratio_tolerance for r in accepted
            )
        ):
            truth.add((asset_id, "fix_aspect_ratio", channel.value))
        out.append(
            Simulated(state.asset, channel, (week_clicks, week_impr), (day_clicks, day_impr), truth)
        )
    return out


def engine(sim: Simulated) -> set[Key]:
    found: set[Key] = set()
    drafts = file_rules(sim.asset, CONFIG)
    # Fatigue explains a low recent CTR better than a bad design: check it first.
    earlier = (sim.week[0] - sim.day[0], sim.week[1] - sim.day[1])
    fatigue = creative_fatigue(sim.day, earlier, sim.channel, ("24h", "the 6 days before"), CONFIG)
    if fatigue is not None:
        drafts.append(fatigue)
    else:
        refresh = refresh_design(*sim.week, sim.channel, "7d", CONFIG)
        if refresh is not None:
            drafts.append(refresh)
    for d in drafts:
        found.add((sim.asset.asset_id, d.type.value, d.channel and d.channel.value))
    return found


def naive(sim: Simulated) -> set[Key]:
    """The seed prototype: fixed thresholds, blind to channel, sample and format."""
    a, ch = sim.asset, sim.channel.value
    found: set[Key] = set()
    clicks, impressions = sim.week
    if impressions and clicks / impressions < 0.05:
        found.add((a.asset_id, "refresh_design", ch))
    if a.file_size_bytes > 5 * 1024 * 1024:
        found.add((a.asset_id, "compress", ch))
    if a.media_type.value in ("image", "banner", "thumbnail", "icon", "infographic"):
        found.add((a.asset_id, "convert_to_webp", ch))
    return found


def score(found: set[Key], truth: set[Key], kind: str | None = None) -> tuple[float, float]:
    if kind is not None:
        found = {k for k in found if k[1] == kind}
        truth = {k for k in truth if k[1] == kind}
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    return precision, recall


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_engine_beats_the_naive_rules_on_precision_and_recall() -> None:
    sims = simulate()
    truth = set().union(*(s.truth for s in sims))
    ours = set().union(*(engine(s) for s in sims))
    seed = set().union(*(naive(s) for s in sims))
    counts = Counter(k[1] for k in truth)
    per_type: list[tuple[str, float, float, float, float]] = []
    lines = [f"{'type':18} {'truth':>5}  {'engine P / R':>14}  {'naive P / R':>14}"]
    for kind in sorted({t.value for t in SuggestionType} & set(counts)):
        ep, er = score(ours, truth, kind)
        np_, nr = score(seed, truth, kind)
        lines.append(f"{kind:18} {counts[kind]:5}  {ep:6.2f} / {er:4.2f}  {np_:6.2f} / {nr:4.2f}")
        per_type.append((kind, ep, er, np_, nr))
    ep, er = score(ours, truth)
    np_, nr = score(seed, truth)
    lines.append(f"{'all':18} {len(truth):5}  {ep:6.2f} / {er:4.2f}  {np_:6.2f} / {nr:4.2f}")
    print("\n" + "\n".join(lines))
    # Per type, the naive rules may win one side by flagging everything (recall 1.0 at a
    # precision of 0.25): they must not win on both together.
    for kind, ep_k, er_k, np_k, nr_k in per_type:
        assert f1(ep_k, er_k) > f1(np_k, nr_k), kind
    assert ep > np_ and er > nr
    assert ep >= 0.9 and er >= 0.9
