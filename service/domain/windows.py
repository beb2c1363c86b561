"""Event-time buckets and the rolling windows built from them.

Counters are kept per bucket of event time at three resolutions; a window is the
bucket that contains "now" and the ones before it, so every window is exact in
bucket terms and a replay lands in the same buckets:

| window   | buckets                    | a bucket lives for          |
|----------|----------------------------|-----------------------------|
| 1h       | the last 12 of 5 minutes   | its end + 1 hour            |
| 24h      | the last 24 of 1 hour      | its end + 24 hours          |
| 7d       | the last 7 of 1 day (UTC)  | its end + 30 days (shared)  |
| 30d      | the last 30 of 1 day (UTC) | its end + 30 days           |
| lifetime | one counter set, forever   |                             |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MINUTE = 60
HOUR = 3600
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    seconds: int
    retention: int  # how long a bucket is kept after it ends

    def start(self, epoch_seconds: float) -> int:
        """The start of the bucket holding this instant."""
        moment = int(epoch_seconds)
        return moment - moment % self.seconds

    def expires_at(self, bucket_start: int) -> int:
        return bucket_start + self.seconds + self.retention


FIVE_MINUTES = Resolution("m5", 5 * MINUTE, HOUR)
ONE_HOUR = Resolution("h1", HOUR, DAY)
ONE_DAY = Resolution("d1", DAY, 30 * DAY)
RESOLUTIONS = (FIVE_MINUTES, ONE_HOUR, ONE_DAY)


class Window(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"
    LIFETIME = "lifetime"


# Each rolling window: the resolution it reads and how many buckets.
WINDOW_BUCKETS: dict[Window, tuple[Resolution, int]] = {
    Window.HOUR: (FIVE_MINUTES, 12),
    Window.DAY: (ONE_HOUR, 24),
    Window.WEEK: (ONE_DAY, 7),
    Window.MONTH: (ONE_DAY, 30),
}

LONGEST_WINDOW_SECONDS = 30 * DAY


def window_buckets(window: Window, now: float) -> tuple[Resolution, list[int]]:
    """The bucket starts a window covers at `now`, newest first."""
    resolution, count = WINDOW_BUCKETS[window]
    newest = resolution.start(now)
    return resolution, [newest - i * resolution.seconds for i in range(count)]


def live_resolutions(event_time: float, now: float) -> list[Resolution]:
    """The resolutions whose bucket for this event still exists at `now`."""
    return [r for r in RESOLUTIONS if r.expires_at(r.start(event_time)) > now]


def is_late(event_time: float, now: float) -> bool:
    """Older than the longest window: the event only counts in lifetime."""
    return event_time < now - LONGEST_WINDOW_SECONDS


def is_future(event_time: float, now: float, tolerance_seconds: float) -> bool:
    return event_time > now + tolerance_seconds


def departed_buckets(
    windows: tuple[Window, ...], after: float, until: float
) -> set[tuple[Resolution, int]] | None:
    """Where to find the assets whose sums over `windows` changed between two instants
    without any event: the buckets that dropped out of a window at each of its boundaries
    in (after, until]. Each is named at the finest resolution that still holds it at
    `until` (an hour that expired is found in its day: more assets, never fewer), or the
    answer is None when none does (then who moved cannot be told)."""
    found: set[tuple[Resolution, int]] = set()
    for window in windows:
        resolution, count = WINDOW_BUCKETS[window]
        boundary = resolution.start(after) + resolution.seconds
        while boundary <= until:
            start = boundary - count * resolution.seconds
            holder = next(
                (
                    r
                    for r in RESOLUTIONS
                    if r.seconds >= resolution.seconds and r.expires_at(r.start(start)) > until
                ),
                None,
            )
            if holder is None:
                return None
            found.add((holder, holder.start(start)))
            boundary += resolution.seconds
    return found


# --- time series: one point per bucket of a resolution, over a rolling window ----------


class SeriesResolution(StrEnum):
    """The API's names of the bucket resolutions."""

    FIVE_MINUTES = "5m"
    HOUR = "1h"
    DAY = "1d"


SERIES_RESOLUTIONS: dict[SeriesResolution, Resolution] = {
    SeriesResolution.FIVE_MINUTES: FIVE_MINUTES,
    SeriesResolution.HOUR: ONE_HOUR,
    SeriesResolution.DAY: ONE_DAY,
}
SERIES_WINDOWS = (Window.HOUR, Window.DAY, Window.WEEK, Window.MONTH)

WINDOW_SECONDS: dict[Window, int] = {
    Window.HOUR: HOUR,
    Window.DAY: DAY,
    Window.WEEK: 7 * DAY,
    Window.MONTH: 30 * DAY,
}


def series_points(resolution: Resolution, window: Window) -> int | None:
    """How many buckets of `resolution` make up `window`, or None when the store cannot
    serve that series: the window is not a whole number of buckets (lifetime is none),
    or its oldest bucket expires before the window has moved past it."""
    seconds = WINDOW_SECONDS.get(window)
    if seconds is None or seconds < resolution.seconds or seconds % resolution.seconds:
        return None
    points = seconds // resolution.seconds
    # The oldest bucket ends (points - 1) buckets before the one holding "now" ends, and
    # must still be kept then: its retention covers that.
    if (points - 1) * resolution.seconds > resolution.retention:
        return None
    return points


def servable_series() -> dict[SeriesResolution, list[Window]]:
    """Each resolution and the windows it can serve (for error messages and docs)."""
    return {
        name: [w for w in SERIES_WINDOWS if series_points(resolution, w) is not None]
        for name, resolution in SERIES_RESOLUTIONS.items()
    }


def series_starts(resolution: Resolution, window: Window, now: float) -> list[int]:
    """The bucket starts of a servable series at `now`, oldest first (the last holds now)."""
    points = series_points(resolution, window)
    if points is None:
        raise ValueError(f"{resolution.name} buckets cannot serve the {window} window")
    newest = resolution.start(now)
    return [newest - i * resolution.seconds for i in range(points - 1, -1, -1)]
