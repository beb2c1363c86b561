"""Removing everything a run created: its topics, its Redis keys, Faust's directories.

Runs at the end of every run, also after a failure or Ctrl-C; each step is
bounded and independent, so one that fails (say, Kafka went away) does not keep
the others from running, and the report says what could not be removed.

Consumer groups are left to Kafka: once their topics are deleted the broker drops
their offsets at its next offsets cleanup (every 10 minutes by default), and an
empty group without offsets disappears with them.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from bench.kafka import delete_topics
from bench.plan import RunNames
from service.config import Settings

SCAN_COUNT = 5000
DELETE_CHUNK = 1000
STEP_SECONDS = 300.0


async def delete_keys(redis: Any, pattern: str) -> int:
    """SCAN + UNLINK in chunks: never one huge command, never KEYS on a shared server."""
    deleted = 0
    chunk: list[str] = []
    async for key in redis.scan_iter(match=pattern, count=SCAN_COUNT):
        chunk.append(key)
        if len(chunk) >= DELETE_CHUNK:
            deleted += await redis.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += await redis.unlink(*chunk)
    return deleted


async def clean_up(
    settings: Settings, redis: Any, names: RunNames, directories: list[Path]
) -> list[str]:
    """Delete the run's topics and keys and Faust's directories; returns what it did."""
    done: list[str] = []
    try:
        topics = await asyncio.wait_for(delete_topics(settings, names.namespace), STEP_SECONDS)
        done.append(f"deleted {len(topics)} topic(s) named {names.namespace}*")
    except Exception as exc:
        done.append(f"could NOT delete the topics {names.namespace}*: {exc!r}")
    try:
        keys = await asyncio.wait_for(delete_keys(redis, names.key_pattern), STEP_SECONDS)
        done.append(f"deleted {keys:,} Redis key(s) matching {names.key_pattern}")
    except Exception as exc:
        done.append(f"could NOT delete the Redis keys {names.key_pattern}: {exc!r}")
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    return done
