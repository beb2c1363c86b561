"""The Faust application, built from settings: input handlers, the leader's timers, the web API.

`create_app` builds a worker: it consumes the input topics and serves the API.
`create_api_app` builds an API server: the same routes, no consumer (Faust's
producer-only mode: its web server and a producer for the manual suggestions), so
that reads never wait behind a batch on a worker's event loop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.exceptions import ProducerSendError
from faust.web import drivers as web_drivers

from service import collector
from service.api import middleware
from service.api.views import register_views
from service.config import Settings
from service.domain.decoding import RawMessage, decode
from service.domain.events import (
    AssetLifecycle,
    AssetRegistered,
    Event,
    LibraryUpdated,
    SuggestionFeedback,
)
from service.domain.registry import Outcome
from service.handlers.leaderboards import RefreshTurns, lease_seconds
from service.handlers.sequential import SequentialHandler
from service.observability import Instruments
from service.resilience import is_transient
from service.runtime import Runtime
from service.streaming.batching import BatchHandler, BatchingConsumer, BatchingTransport
from service.streaming.kafka_client import faust_credentials
from service.streaming.watchdog import Liveness, consumer_problem, end_process

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    """Group membership as the rebalance signals report it."""

    assigned: bool = False
    rebalancing: bool = False


class FaustProducer:
    """The handlers' producer port, on the app's own Kafka producer."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send and wait for the acknowledgement. Faust wraps the client's error in its
        own `ProducerSendError`; the client's is raised instead, so that a broker away
        is recognised as transient (`service.resilience.is_transient`)."""
        try:
            await self._app.producer.send_and_wait(
                topic, key, value, partition=None, timestamp=None, headers=None
            )
        except ProducerSendError as exc:
            if exc.__cause__ is None:
                raise
            raise exc.__cause__ from None


class MediaApp(faust.App):
    """A Faust app that owns the service's runtime and closes it when stopping.

    Its transport is `BatchingTransport`: topics named in `batch_handlers` are
    consumed a whole fetch at a time (service/streaming/batching.py).
    """

    runtime: Runtime
    batch_handlers: dict[str, BatchHandler]
    # True for an API server: no consumer, no timers (health and readiness say so).
    api_only: bool = False
    fetch_wait_ms: int = 100
    retry_max_seconds: float = 5.0
    readiness: Readiness
    liveness: Liveness

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def _new_web(self) -> Any:
        """Faust's web driver without any of Faust's own blueprints.

        They report the cluster's layout, tables and statistics to anyone who asks; the
        service serves only its own routes (service/api/views.py).
        """
        driver = web_drivers.by_url(self.conf.web)
        return type(
            "ServiceWeb",
            (driver,),
            {
                "default_blueprints": (),
                "production_blueprints": (),
                "debug_blueprints": (),
                "optional_blueprints": (),
            },
        )(self)

    async def on_started(self) -> None:
        await super().on_started()
        collector.freeze()  # what exists now lives as long as the worker (service/collector.py)

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.runtime.close()


def create_app(settings: Settings, *, evicts_nothing: bool = False) -> MediaApp:
    """A worker: the input handlers, the leader's timers, readiness, the watchdog, the API.
    `evicts_nothing`: Redis was read as `noeviction` (`RequirementsReport`)."""
    app = _base_app(settings, evicts_nothing=evicts_nothing)
    _handlers(app, settings)
    _timers(app, settings)
    _readiness(app)
    _watchdog(app, settings)
    register_views(app)
    return app


def create_api_app(settings: Settings) -> MediaApp:
    """An API server: the worker's routes over the same Redis, and a Kafka producer for the
    manual suggestions; it joins no consumer group and runs no timer."""
    app = _base_app(settings)
    app.producer_only = True  # Faust starts only the web server and the producer
    app.api_only = True
    register_views(app)
    return app


def _base_app(settings: Settings, *, evicts_nothing: bool = False) -> MediaApp:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust does not create parents
    instruments = Instruments.create()  # the handlers' and the web server's
    app = MediaApp(
        settings.app_id,
        broker=settings.kafka_broker_url,
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_request_timeout=settings.kafka_producer_timeout_seconds,
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_seconds,
        broker_commit_interval=settings.kafka_commit_interval_seconds,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_application_options={
            "middlewares": middleware.build(
                settings.api_tokens, settings.metrics_tokens, instruments
            )
        },
        # Faust's own pages (/router, /table, /stats, /graph, /performance, its index) are
        # off; MediaApp._new_web also drops them, so only the service's routes exist.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=str(settings.data_dir / f"{settings.app_id}-data"),
        broker_max_poll_records=settings.kafka_max_poll_records,
    )
    app.runtime = Runtime.build(
        settings, FaustProducer(app), instruments, evicts_nothing=evicts_nothing
    )
    app.batch_handlers = {}
    app.fetch_wait_ms = settings.kafka_fetch_wait_ms
    app.readiness = Readiness()
    app.liveness = Liveness()
    app.retry_max_seconds = settings.redis_retry_max_seconds
    return app


def _topic(app: faust.App, name: str) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def _handlers(app: MediaApp, settings: Settings) -> None:
    """One batch handler per input topic (service/streaming/batching.py consumes them)."""
    runtime = app.runtime
    max_bytes = settings.max_message_bytes
    metrics = runtime.instruments

    async def measured(event: Event, outcome: Awaitable[Outcome]) -> Outcome:
        started = time.perf_counter()
        result = await outcome
        metrics.redis_seconds.observe(time.perf_counter() - started)
        if result.result == "applied":
            topic = result.source.topic
            metrics.applied.labels(topic=topic).inc()
            age = time.time() - event.occurred_at.timestamp()
            metrics.event_age.labels(topic=topic).observe(max(0.0, age))
        return result

    async def registration(message: RawMessage) -> object:
        metrics.consumed.labels(topic=message.topic).inc()
        event = decode(AssetRegistered, message, max_bytes=max_bytes)
        return await measured(event, runtime.registry.registration(event, message.source()))

    async def lifecycle(message: RawMessage) -> object:
        metrics.consumed.labels(topic=message.topic).inc()
        event = decode(AssetLifecycle, message, max_bytes=max_bytes)
        return await measured(event, runtime.registry.lifecycle(event, message.source()))

    async def feedback(message: RawMessage) -> object:
        metrics.consumed.labels(topic=message.topic).inc()
        event = decode(SuggestionFeedback, message, max_bytes=max_bytes)
        return await runtime.suggestions.feedback(event)

    async def library(message: RawMessage) -> object:
        metrics.consumed.labels(topic=message.topic).inc()
        event = decode(LibraryUpdated, message, max_bytes=max_bytes, key_field="library_id")
        started = time.perf_counter()
        applied = await runtime.libraries.updated(event)
        metrics.redis_seconds.observe(time.perf_counter() - started)
        if applied:
            metrics.applied.labels(topic=message.topic).inc()
            age = time.time() - event.occurred_at.timestamp()
            metrics.event_age.labels(topic=message.topic).observe(max(0.0, age))
        return applied

    sequential: dict[str, SequentialHandler] = {
        topic: SequentialHandler(topic, handle, runtime.positions, runtime.dead_letters)
        for topic, handle in (
            (settings.topic_asset_registered, registration),
            (settings.topic_asset_lifecycle, lifecycle),
            (settings.topic_suggestion_feedback, feedback),
            (settings.topic_library_updated, library),
        )
    }
    handlers: dict[str, BatchHandler] = {
        **sequential,
        settings.topic_asset_performance: runtime.performance,
    }
    app.batch_handlers.update(handlers)
    for topic in handlers:
        app.topics.add(_topic(app, topic))

    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        cast(BatchingConsumer, app.consumer).forget_paused()
        for handler in handlers.values():
            handler.on_assignment()

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # mode typing


def _timers(app: MediaApp, settings: Settings) -> None:
    """Work the group leader does on a schedule; a failure postpones it, never stops the worker."""
    runtime = app.runtime

    async def sweep_held_lifecycle_events() -> None:
        try:
            expired = await runtime.registry.sweep_held(
                budget_seconds=settings.held_sweep_budget_seconds
            )
        except Exception as exc:
            _postponed("held-event sweep", exc)
            return
        if expired:
            log.info("dead-lettered %d lifecycle event(s) whose asset never registered", expired)

    app.timer(interval=settings.held_sweep_interval_seconds, on_leader=True)(
        sweep_held_lifecycle_events
    )

    if not settings.leaderboard_refresh_in_worker:
        return
    turns = RefreshTurns(
        runtime.leaderboards,
        runtime.refresh_lease,
        f"worker:{socket.gethostname()}:{os.getpid()}",
        lease_seconds=lease_seconds(settings.leaderboard_refresh_seconds),
        keep=False,
    )

    async def refresh_leaderboards() -> None:
        try:
            await turns.run()
        except Exception as exc:
            _postponed("leaderboard refresh", exc)

    app.timer(interval=settings.leaderboard_refresh_seconds, on_leader=True)(refresh_leaderboards)


def _postponed(what: str, exc: Exception) -> None:
    if is_transient(exc):
        log.warning("%s postponed: %r", what, exc)
    else:
        log.exception("%s failed; it runs again at its next interval", what)


def _readiness(app: MediaApp) -> None:
    """Ready once the worker joined its group and between rebalances (see ReadyView)."""
    state = app.readiness

    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        state.rebalancing = True

    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        state.assigned = True
        state.rebalancing = False

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode typing
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.runtime.instruments.watch_lag(lambda: cast(BatchingConsumer, app.consumer).lag())


def _watchdog(app: MediaApp, settings: Settings) -> None:
    """End the worker when its consumer died (service/streaming/watchdog.py)."""

    async def watch() -> None:
        if app.should_stop:
            return
        problem = consumer_problem(app, stall_seconds=settings.consumer_stall_seconds)
        if problem is not None:
            end_process(app.liveness, problem)

    app.timer(interval=2.0)(watch)
