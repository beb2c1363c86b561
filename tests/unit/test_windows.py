from __future__ import annotations

import itertools

import pytest

from service.domain.enums import Channel
from service.domain.metrics import Totals, WindowTotals, ratio
from service.domain.windows import (
    DAY,
    FIVE_MINUTES,
    HOUR,
    ONE_DAY,
    ONE_HOUR,
    Window,
    departed_buckets,
    is_future,
    is_late,
    live_resolutions,
    window_buckets,
)

NOW = 1_780_000_000  # a Tuesday in 2026, 20:26:40 UTC


def test_bucket_starts_align_on_utc_boundaries() -> None:
    assert FIVE_MINUTES.start(NOW) % 300 == 0 and NOW - FIVE_MINUTES.start(NOW) < 300
    assert ONE_HOUR.start(NOW) == NOW - NOW % 3600
    assert ONE_DAY.start(NOW) % DAY == 0
    assert ONE_HOUR.start(NOW + 0.9) == ONE_HOUR.start(NOW)


@pytest.mark.parametrize(
    ("window", "resolution", "count"),
    [
        (Window.HOUR, FIVE_MINUTES, 12),
        (Window.DAY, ONE_HOUR, 24),
        (Window.WEEK, ONE_DAY, 7),
        (Window.MONTH, ONE_DAY, 30),
    ],
)
def test_windows_cover_consecutive_buckets_ending_now(
    window: Window, resolution: object, count: int
) -> None:
    used, starts = window_buckets(window, NOW)
    assert used is resolution
    assert len(starts) == count
    assert starts[0] <= NOW < starts[0] + used.seconds
    assert all(a - b == used.seconds for a, b in itertools.pairwise(starts))


def test_buckets_are_only_written_while_they_live() -> None:
    assert live_resolutions(NOW, NOW) == [FIVE_MINUTES, ONE_HOUR, ONE_DAY]
    two_hours_ago = NOW - 2 * HOUR
    assert live_resolutions(two_hours_ago, NOW) == [ONE_HOUR, ONE_DAY]
    assert live_resolutions(NOW - 3 * DAY, NOW) == [ONE_DAY]
    assert live_resolutions(NOW - 32 * DAY, NOW) == []


def test_late_and_future_events() -> None:
    assert not is_late(NOW - 30 * DAY + 1, NOW)
    assert is_late(NOW - 30 * DAY - 1, NOW)
    assert not is_future(NOW + 300, NOW, 300)
    assert is_future(NOW + 301, NOW, 300)


def test_rates_never_divide_by_zero() -> None:
    assert ratio(5, 0) == 0.0
    totals = Totals(impressions=200, clicks=10, engagements=30, conversions=2)
    assert totals.ctr == pytest.approx(0.05)
    assert totals.engagement_rate == pytest.approx(0.15)
    assert totals.conversion_rate == pytest.approx(0.2)
    assert Totals().as_dict()["ctr"] == 0.0


def test_window_totals_add_up_per_channel_and_campaign() -> None:
    email = Totals(impressions=10, clicks=1)
    web = Totals(impressions=5)
    totals = WindowTotals(
        by_channel={Channel.EMAIL: email, Channel.WEB: web},
        by_campaign={"c1": email, "c2": web},
    )
    assert totals.total == Totals(impressions=15, clicks=1)
    assert totals.channel(Channel.WEB) == web and totals.channel(Channel.VIDEO) == Totals()
    assert totals.campaign("c1") == email and totals.campaign("c9") == Totals()
    assert WindowTotals().total == Totals()


# 2026-03-01 12:20 UTC; `H` its hour, `D` its day.
T = 1_772_366_400 + 20 * 60
H = T - 20 * 60
D = H - 12 * HOUR


def test_departed_buckets_within_an_hour() -> None:
    assert departed_buckets((Window.DAY, Window.WEEK), T, T + 30 * 60) == set()


def test_departed_buckets_name_the_hour_that_left_the_24h_window() -> None:
    # At 13:00 the 24h window drops yesterday's 13:00 hour, which lives until 14:00 today.
    assert departed_buckets((Window.DAY,), T, H + HOUR + 5 * 60) == {(ONE_HOUR, H - 23 * HOUR)}
    assert departed_buckets((Window.DAY,), T, H + 2 * HOUR - 1) == {(ONE_HOUR, H - 23 * HOUR)}


def test_an_hour_that_expired_is_named_by_its_day() -> None:
    assert departed_buckets((Window.DAY,), T, H + 2 * HOUR) == {
        (ONE_DAY, D - DAY),  # yesterday 13:00, gone as an hour
        (ONE_HOUR, H - 22 * HOUR),
    }


def test_departed_buckets_at_midnight_name_the_day_that_left_the_7d_window() -> None:
    midnight = D + DAY
    assert departed_buckets((Window.WEEK,), T, midnight - 1) == set()
    assert departed_buckets((Window.WEEK,), T, midnight) == {(ONE_DAY, midnight - 7 * DAY)}


def test_departed_buckets_are_unknown_once_no_resolution_holds_them() -> None:
    assert departed_buckets((Window.WEEK,), T - 40 * DAY, T) is None
    assert departed_buckets((Window.DAY,), T - 40 * DAY, T) is None
