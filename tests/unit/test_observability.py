from __future__ import annotations

import json
import logging

from prometheus_client import generate_latest

from service.observability import Instruments, JsonFormatter, RedactingFilter, redact


def test_credentials_never_reach_the_log() -> None:
    assert redact("redis://user:hunter2@db:6379/0") == "redis://user:***@db:6379/0"
    assert redact("rediss://:hunter2@db") == "rediss://:***@db"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("redis://db:6379/0") == "redis://db:6379/0"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "url %s", ("redis://u:p@h",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "url redis://u:***@h"


def test_json_lines() -> None:
    record = logging.LogRecord("svc", logging.WARNING, __file__, 1, "hello %d", (3,), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["message"] == "hello 3"
    assert entry["logger"] == "svc" and entry["ts"].endswith("Z")


def test_each_runtime_has_its_own_registry() -> None:
    first, second = Instruments.create(), Instruments.create()
    first.dead_letters.labels(reason="oversize").inc()
    first.watch_lag(lambda: [("t", 3, 7)])
    text = generate_latest(first.registry).decode()
    assert 'media_dead_letters_total{reason="oversize"} 1.0' in text
    assert 'media_consumer_lag{partition="3",topic="t"} 7.0' in text
    assert "oversize" not in generate_latest(second.registry).decode()
