"""What the service tells the people who run it: Prometheus metrics and structured logs.

Metrics live in a registry of their own per runtime (no process-global state), and
are exposed at `/metrics`. Counters here are per process; the exact, shared totals
live in Redis (`/v1/dead-letters/stats`, `/v1/performance/stats`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Event ages from seconds to a month; Redis rounds from half a millisecond to seconds.
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86_400, 2_592_000)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# On the performance path one event in this many records its age (the histogram then
# describes the ages, its count is not the number of events: see events_applied).
AGE_SAMPLE_EVERY = 16

Lag = Callable[[], Iterable[tuple[str, int, int]]]  # (topic, partition, records behind)


@dataclass(frozen=True)
class Instruments:
    registry: CollectorRegistry
    consumed: Counter
    applied: Counter
    dead_letters: Counter
    duplicates: Counter
    suggestions: Counter
    redis_seconds: Histogram
    event_age: Histogram
    http_requests: Counter
    http_seconds: Histogram

    @classmethod
    def create(cls) -> Instruments:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            consumed=Counter(
                "media_events_consumed", "Records consumed", ["topic"], registry=registry
            ),
            applied=Counter(
                "media_events_applied", "Events applied to Redis", ["topic"], registry=registry
            ),
            dead_letters=Counter(
                "media_dead_letters",
                "Messages sent to the dead-letter topic",
                ["reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "media_duplicates_detected",
                "duplicates-detected events sent",
                registry=registry,
            ),
            suggestions=Counter(
                "media_suggestions_emitted",
                "Optimization suggestions sent",
                ["type", "priority"],
                registry=registry,
            ),
            redis_seconds=Histogram(
                "media_redis_batch_seconds",
                "One Redis round of a batch or a message",
                buckets=REDIS_BUCKETS,
                registry=registry,
            ),
            event_age=Histogram(
                "media_event_age_seconds",
                "now - occurred_at when an event is applied",
                ["topic"],
                buckets=AGE_BUCKETS,
                registry=registry,
            ),
            http_requests=Counter(
                "media_http_requests",
                "HTTP requests answered, by declared route, method and status",
                ["route", "method", "status"],
                registry=registry,
            ),
            http_seconds=Histogram(
                "media_http_request_seconds",
                "Time from a request's arrival to its answer, by declared route",
                ["route"],
                buckets=HTTP_BUCKETS,
                registry=registry,
            ),
        )

    def watch_lag(self, lag: Lag) -> None:
        """Report consumer lag per partition, read from the consumer at each scrape."""
        self.registry.register(_LagCollector(lag))


class _LagCollector(Collector):
    def __init__(self, lag: Lag) -> None:
        self._lag = lag

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "media_consumer_lag", "Records behind the high watermark", labels=["topic", "partition"]
        )
        try:
            lags = list(self._lag())
        except Exception:  # no consumer yet (starting, stopping): no samples, no error
            lags = []
        for topic, partition, behind in lags:
            family.add_metric([topic, str(partition)], behind)
        yield family


# --- logs -------------------------------------------------------------------------

# A URL's userinfo runs to the LAST `@` before the host: a password may itself hold
# `@`, `:` or `/`, so everything from `scheme://` to that `@` is credentials.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s'\"<>]*)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"']+")


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group(2).partition(":")
    # user:password keeps the user; a lone userinfo (often a token) is masked whole.
    return f"{match.group(1)}{user}:***@" if colon else f"{match.group(1)}***@"


def redact(text: str) -> str:
    """The text with credentials in URLs and bearer tokens masked."""
    return _BEARER.sub(r"\1***", _URL_USERINFO.sub(_mask_userinfo, text))


class RedactingFilter(logging.Filter):
    """Masks credentials in every record, whatever logged them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, times in UTC: what log pipelines in production expect."""

    converter = time.gmtime  # type: ignore[assignment]  # the documented way

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, credentials masked in the message and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker: JSON or readable text, secrets masked."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"()": f"{__name__}.TextFormatter", "format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.RedactingFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
