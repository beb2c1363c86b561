"""Everything the handlers and views share, built once from settings (no globals)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from service.config import Settings
from service.domain.enums import Channel
from service.domain.metrics import Totals
from service.domain.rules_config import RulesConfig, parse_rules
from service.domain.windows import Window
from service.handlers.emit import DeadLetters, Producer
from service.handlers.leaderboards import LeaderboardRefresher
from service.handlers.libraries import LibraryHandler
from service.handlers.performance import PerformanceHandler
from service.handlers.ports import utc_now
from service.handlers.registry import RegistryHandler
from service.handlers.suggestions import SuggestionEngine
from service.observability import Instruments
from service.store.client import connect
from service.store.dead_letters import DeadLetterCounters
from service.store.keys import Keys
from service.store.leaderboards import LeaderboardStore
from service.store.leases import Lease
from service.store.libraries import LibraryStore
from service.store.metrics import MetricsStore
from service.store.positions import PositionStore
from service.store.registry import RegistryStore
from service.store.scripts import Scripts
from service.store.suggestions import SuggestionStore


def load_rules(path: Path | None) -> RulesConfig:
    """The suggestion thresholds from `path`, or the defaults shipped with the service."""
    if path is None:
        return parse_rules((resources.files("service") / "rules.toml").read_text("utf-8"))
    return parse_rules(path.read_text("utf-8"))


@dataclass
class Runtime:
    settings: Settings
    redis: Any
    registry_store: RegistryStore
    dead_letter_counters: DeadLetterCounters
    dead_letters: DeadLetters
    registry: RegistryHandler
    metrics_store: MetricsStore
    performance: PerformanceHandler
    leaderboard_store: LeaderboardStore
    leaderboards: LeaderboardRefresher
    refresh_lease: Lease
    instruments: Instruments
    suggestion_store: SuggestionStore
    suggestions: SuggestionEngine
    positions: PositionStore
    library_store: LibraryStore
    libraries: LibraryHandler

    @classmethod
    def build(
        cls,
        settings: Settings,
        producer: Producer,
        instruments: Instruments | None = None,
        *,
        evicts_nothing: bool = False,
    ) -> Runtime:
        """`instruments`: when the web server's middleware records into them too;
        `evicts_nothing`: Redis was read as `noeviction` on every server at start (the
        metrics step then sends a bucket's expiry once, `MetricsStore`)."""
        redis = connect(settings)
        instruments = Instruments.create() if instruments is None else instruments
        keys = Keys(settings.redis_key_prefix)
        scripts = Scripts.register(redis)
        store = RegistryStore(
            redis,
            keys,
            scripts,
            settings.seen_event_ttl_seconds,
            history_max=settings.history_max_per_asset,
        )
        counters = DeadLetterCounters(redis, keys, scripts, settings.seen_event_ttl_seconds)
        dead_letters = DeadLetters(
            producer,
            settings.topic_dead_letter,
            counters,
            instruments.dead_letters,
            max_original_bytes=settings.dead_letter_max_original_bytes,
            now=utc_now,
        )
        boards = LeaderboardStore(
            redis, keys, scripts, kept_seconds=settings.leaderboard_refresh_seconds
        )
        metrics = MetricsStore(
            redis,
            keys,
            scripts,
            settings.topic_asset_performance,
            kept_sums=settings.metrics_kept_sums,
            kept_id_buckets=settings.metrics_kept_id_buckets,
            known_expiry=evicts_nothing,
        )

        async def lifetime(asset_id: str, channel: Channel | None) -> Totals:
            totals = await metrics.totals(asset_id, Window.LIFETIME, time.time(), channel=channel)
            return totals or Totals()

        async def daily(asset_id: str, now: float) -> list[Mapping[Channel, Totals]]:
            return [day.by_channel for day in await metrics.daily(asset_id, now)]

        suggestion_store = SuggestionStore(redis, keys)
        library_store = LibraryStore(redis, keys, scripts)
        suggestions = SuggestionEngine(
            suggestion_store,
            producer,
            settings.topic_optimization_suggestions,
            load_rules(settings.suggestion_rules_file),
            timedelta(seconds=settings.suggestion_cooldown_seconds),
            instruments.suggestions,
            lifetime,
            daily=daily,
            now=utc_now,
        )
        registry = RegistryHandler(
            store=store,
            producer=producer,
            dead_letters=dead_letters,
            duplicates_topic=settings.topic_duplicates_detected,
            hold_for=timedelta(seconds=settings.lifecycle_hold_seconds),
            max_held_per_asset=settings.max_held_events_per_asset,
            on_change=boards.mark_dirty,
            duplicates_sent=instruments.duplicates,
            on_registered=suggestions.on_registered,
            now=utc_now,
        )
        performance = PerformanceHandler(
            metrics,
            dead_letters,
            max_message_bytes=settings.max_message_bytes,
            future_tolerance_seconds=settings.future_tolerance_seconds,
            instruments=instruments,
        )
        refresher = LeaderboardRefresher(
            boards, metrics, store, partitions=settings.topic_partitions, suggestions=suggestions
        )
        return cls(
            settings=settings,
            redis=redis,
            registry_store=store,
            dead_letter_counters=counters,
            dead_letters=dead_letters,
            registry=registry,
            metrics_store=metrics,
            performance=performance,
            leaderboard_store=boards,
            leaderboards=refresher,
            refresh_lease=Lease(keys.boards_refresh_lease, scripts),
            instruments=instruments,
            suggestion_store=suggestion_store,
            suggestions=suggestions,
            positions=PositionStore(redis, keys, scripts),
            library_store=library_store,
            libraries=LibraryHandler(library_store),
        )

    async def close(self) -> None:
        await self.redis.aclose()
