"""The benchmark's verdict on the worker's RSS (bench/report.py)."""

from __future__ import annotations

from bench.report import Memory


def memory(first_end: float, second_mid: float, second_end: float) -> Memory:
    return Memory(
        first_peak_mib=first_end + 2,
        first_end_mib=first_end,
        second_peak_mib=max(second_mid, second_end) + 2,
        second_end_mib=second_end,
        second_pass_events=500_000,
        series=[],
        second_mid_mib=second_mid,
    )


def test_rss_within_the_noise_is_stable() -> None:
    assert memory(150, 151, 152).verdict == "stable"


def test_rss_that_grew_early_in_the_second_pass_then_held_levelled_off() -> None:
    verdict = memory(150, 161, 162).verdict
    assert verdict.startswith("levelled off") and "161 MiB half-way, 162 at the end" in verdict


def test_rss_still_rising_in_the_second_half_still_grows() -> None:
    assert memory(150, 155, 170).verdict == "still grows"


def test_without_a_half_way_figure_growth_is_growth() -> None:
    assert memory(150, 0, 170).verdict == "still grows"
