"""What one benchmark run does (sizes, durations) and the names it runs under.

Every run gets a fresh namespace, `bench-<date>-<time>-<random>`: its topics are
`<namespace>.<role>` like the service's `media.<role>`, and each measured process
(the plain consumer, the worker) has its own consumer group and Redis key prefix
`<namespace>-<process>`, so the two never share offsets or keys and the cleanup
can find everything a run created, and nothing else, by that one prefix.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service.config import Settings

# Settings fields that name a topic (the others starting with `topic_` configure them).
_NOT_TOPIC_NAMES = ("topic_partitions", "topic_replication_factor")


@dataclass(frozen=True, slots=True)
class Plan:
    """The sizes of one run; the defaults are the documented benchmark."""

    events: int = 1_000_000
    second_pass_events: int = 500_000
    assets: int = 10_000
    campaigns: int = 50
    days: int = 40
    partitions: int = 8
    max_records: int = 2000
    latency_seconds: float = 20.0
    probe_every: int = 200
    phase_timeout_seconds: float = 600.0
    seed: int = 7


@dataclass(frozen=True, slots=True)
class RunNames:
    """The unique names of one run, derived from its namespace."""

    namespace: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def new(cls) -> RunNames:
        now = datetime.now(UTC)
        return cls(f"bench-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}", now)

    @property
    def run_id(self) -> str:
        return self.namespace.removeprefix("bench-")

    def identity(self, process: str) -> str:
        """App id, consumer group and Redis key prefix of one measured process."""
        return f"{self.namespace}-{process}"

    @property
    def key_pattern(self) -> str:
        """SCAN pattern matching every Redis key of every process of this run."""
        return f"{self.namespace}-*"


def topic_names(namespace: str) -> dict[str, str]:
    """Every topic setting of the service, renamed into the run's namespace."""
    return {
        name: f"{namespace}.{name.removeprefix('topic_').replace('_', '-')}"
        for name in Settings.model_fields
        if name.startswith("topic_") and name not in _NOT_TOPIC_NAMES
    }


def process_settings(names: RunNames, process: str, plan: Plan, web_port: int) -> Settings:
    """Settings of one measured process: the stack's Kafka and Redis (from the
    environment, as `deploy/with-stack-env.sh` sets it), the run's topics, and the
    process's own group and key prefix. Faust's directory goes to a temporary one."""
    identity = names.identity(process)
    return Settings(
        app_id=identity,
        redis_key_prefix=identity,
        topic_partitions=plan.partitions,
        kafka_max_poll_records=plan.max_records,
        web_port=web_port,
        data_dir=Path(tempfile.gettempdir()) / identity,
        **topic_names(names.namespace),  # type: ignore[arg-type]
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The MEDIA_* variables that make a `service worker` process read these settings."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue  # unset stays unset
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"MEDIA_{name.upper()}"] = str(value)
    return env
