"""The phases of a benchmark run, in the order `measure` runs them.

Each phase is bounded by the plan's timeout and leaves its figures in plain
dataclasses (bench/report.py); everything a phase needs from the others lives in
the `Context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench import cleanup, kafka, report
from bench.ceiling import run_ceiling
from bench.events import EventFactory, check_contract
from bench.floor import run_floor
from bench.latency import Latency, measure_latency
from bench.plan import Plan, RunNames, settings_env
from bench.profile import find_py_spy, record
from bench.progress import Progress, wait_applied, within
from bench.reader import Reads, read_until, registrations, routes
from bench.resources import (
    Footprint,
    RssSampler,
    ScriptHolds,
    ServerSnapshot,
    SlowScripts,
    cpu_seconds,
    footprint,
    server_snapshot,
)
from bench.worker import WorkerIgnoredStop, WorkerProcess
from service.config import Settings
from service.store.keys import Keys
from service.store.metrics import MetricsStore
from service.store.scripts import Scripts
from service.streaming.kafka_client import client_options
from service.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
STACK_DIR = Path(os.environ.get("STACK_DIR", ROOT / ".stack"))
PROFILE_SECONDS = 20
MIN_PROFILE_SECONDS = 3


@dataclass
class Context:
    """What every phase shares: the plan, the run's names, clients and the event source."""

    plan: Plan
    names: RunNames
    ceiling: Settings
    worker: Settings
    redis: Any
    factory: EventFactory
    profile: bool
    kafka_pid: int | None = field(default=None)
    notes: list[str] = field(default_factory=list)
    api_port: int = 0  # of the API server the reader asks besides the worker (0: none)

    def artifact(self, suffix: str) -> Path:
        """A file of this run under .stack/ (never committed)."""
        return STACK_DIR / f"{self.names.namespace}{suffix}"

    def store(self, settings: Settings) -> MetricsStore:
        """A reader of the counters a process writes under its own key prefix."""
        keys = Keys(settings.redis_key_prefix)
        return MetricsStore(
            self.redis, keys, Scripts.register(self.redis), settings.topic_asset_performance
        )


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """What the worker phases measured, on one worker process."""

    consumption: report.Consumption
    memory: report.Memory
    latency: Latency
    profile: report.ProfileSummary | None
    reads: dict[str, Reads]  # "worker" and, when there is one, "api server"
    holds: ScriptHolds
    footprint: Footprint


# --- the phases ------------------------------------------------------------------------------


async def produce_events(ctx: Context, count: int) -> report.Production:
    """Fill the performance topic; timed on its own, never inside a measurement."""
    produced = await within(
        f"producing {count:,} events",
        ctx.plan.phase_timeout_seconds,
        kafka.produce(
            ctx.worker,
            ctx.worker.topic_asset_performance,
            ctx.factory.events(count, time.time()),
        ),
    )
    return report.Production(produced.events, produced.seconds, produced.rate)


def consumption(
    progress: Progress, events: int, consumer_cpu: float, server: ServerSnapshot
) -> report.Consumption:
    """The figures of one measured consumer, from its progress and the server counters."""
    return report.Consumption(
        events=events,
        seconds=progress.seconds,
        rate=progress.rate(events),
        startup_seconds=progress.startup_seconds,
        steady_rate=progress.steady_rate(),
        consumer_cpu_seconds=consumer_cpu,
        redis_cpu_seconds=server.redis_cpu,
        kafka_cpu_seconds=server.kafka_cpu,
        script_calls=server.script_calls,
        script_seconds=server.script_usec / 1e6,
        redis_commands=server.commands,
        redis_forks=server.forks,
        late=progress.late,
        duplicates=progress.duplicates,
    )


async def measure_ceiling(ctx: Context) -> report.Consumption:
    """(a): the handler behind a plain consumer, in this process."""
    before, cpu_before = await server_snapshot(ctx.redis, ctx.kafka_pid), cpu_seconds(os.getpid())
    progress = await within(
        "(a) the plain consumer",
        ctx.plan.phase_timeout_seconds,
        run_ceiling(ctx.ceiling, events=ctx.plan.events, max_records=ctx.plan.max_records),
    )
    cpu = cpu_seconds(os.getpid()) - cpu_before
    server = (await server_snapshot(ctx.redis, ctx.kafka_pid)).minus(before)
    # Its keys are not needed any more: free Redis before the worker runs.
    await cleanup.delete_keys(ctx.redis, f"{ctx.ceiling.redis_key_prefix}:*")
    return consumption(progress, ctx.plan.events, cpu, server)


async def measure_floor(ctx: Context) -> report.Consumption:
    """(c): reading and parsing only, in this process, on the same topic."""
    before, cpu_before = await server_snapshot(ctx.redis, ctx.kafka_pid), cpu_seconds(os.getpid())
    progress = await within(
        "(c) the floor",
        ctx.plan.phase_timeout_seconds,
        run_floor(ctx.ceiling, events=ctx.plan.events, max_records=ctx.plan.max_records),
    )
    cpu = cpu_seconds(os.getpid()) - cpu_before
    server = (await server_snapshot(ctx.redis, ctx.kafka_pid)).minus(before)
    return consumption(progress, ctx.plan.events, cpu, server)


async def measure_worker(ctx: Context) -> WorkerFigures:
    """(b) with a reader of the API (of the worker and of an API server), then memory
    over a second pass (profiled), then latency, on one worker."""
    await register_assets(ctx)
    worker = WorkerProcess(settings_env(ctx.worker), ctx.artifact("-worker.log"))
    bases = {"worker": f"http://127.0.0.1:{ctx.worker.web_port}"}
    api = None
    if ctx.api_port:
        server_env = settings_env(ctx.worker.model_copy(update={"web_port": ctx.api_port}))
        api = WorkerProcess(server_env, ctx.artifact("-api.log"), command="api")
        api.start()
        bases["api server"] = f"http://127.0.0.1:{ctx.api_port}"
    store = ctx.store(ctx.worker)
    scripts = Scripts.register(ctx.redis)
    slow = SlowScripts(
        ctx.redis, {getattr(scripts, name).sha: name for name in Scripts.__dataclass_fields__}
    )
    await slow.start()
    before = await server_snapshot(ctx.redis, ctx.kafka_pid)
    started = time.monotonic()
    worker.start()
    sampler = RssSampler(worker.pid)
    sampling = asyncio.create_task(sampler.run())
    stop_reading = asyncio.Event()
    reading = asyncio.create_task(read_until(bases, routes(ctx.factory), stop_reading))
    try:
        try:
            progress = await within(
                "(b) the worker's first pass",
                ctx.plan.phase_timeout_seconds,
                wait_applied(
                    store,
                    partitions=ctx.plan.partitions,
                    target=ctx.plan.events,
                    started=started,
                    check=worker.check_alive,
                ),
            )
        finally:
            stop_reading.set()
            holds = await slow.stop()
        reads = await reading
        if api is not None:
            api.check_alive()  # its reads are only figures while it served them all
        sampler.now()
        server = (await server_snapshot(ctx.redis, ctx.kafka_pid)).minus(before)
        first = consumption(progress, ctx.plan.events, worker.cpu_seconds(), server)
        held = await footprint(ctx.redis, ctx.worker.redis_key_prefix)
        second_done, profile = await second_pass(ctx, worker, store, first.steady_rate)
        sampler.now()
        memory = report.Memory(
            first_peak_mib=sampler.peak(until=progress.done_at),
            first_end_mib=sampler.settled(progress.done_at),
            second_peak_mib=sampler.peak(since=progress.done_at),
            second_end_mib=sampler.settled(second_done),
            second_pass_events=ctx.plan.second_pass_events,
            series=sampler.series(),
            second_mid_mib=sampler.settled((progress.done_at + second_done) / 2),
        )
        latency = await latency_phase(ctx, worker, store, first.steady_rate / 2)
        return WorkerFigures(first, memory, latency, profile, reads, holds, held)
    finally:
        sampling.cancel()
        reading.cancel()
        for process in (worker, api):
            if process is not None:
                with contextlib.suppress(WorkerIgnoredStop):  # killed: the figures are taken
                    await asyncio.to_thread(process.stop)


async def register_assets(ctx: Context) -> None:
    """Register the most popular assets in one library, so that boards fill (bench/reader.py)."""
    await within(
        "registering the read assets",
        ctx.plan.phase_timeout_seconds,
        kafka.produce(
            ctx.worker,
            ctx.worker.topic_asset_registered,
            registrations(ctx.factory, ctx.plan.partitions, time.time()),
        ),
    )


async def second_pass(
    ctx: Context, worker: WorkerProcess, store: MetricsStore, rate: float
) -> tuple[float, report.ProfileSummary | None]:
    """More events into the same topic, for the RSS trend; returns when they were all
    applied, and a profile of the worker while it worked through them (taken after
    production, so nothing else competes)."""
    target = ctx.plan.events + ctx.plan.second_pass_events
    if ctx.plan.second_pass_events == 0:
        return time.monotonic(), None
    await produce_events(ctx, ctx.plan.second_pass_events)
    profiling = await start_profile(ctx, worker, store, target, rate)
    try:
        done = await within(
            "the worker's second pass",
            ctx.plan.phase_timeout_seconds,
            wait_applied(
                store,
                partitions=ctx.plan.partitions,
                target=target,
                started=time.monotonic(),
                baseline=ctx.plan.events,
                check=worker.check_alive,
            ),
        )
    except BaseException:
        if profiling is not None:
            profiling.cancel()
        raise
    return done.done_at, await finish_profile(ctx, profiling)


async def start_profile(
    ctx: Context, worker: WorkerProcess, store: MetricsStore, target: int, rate: float
) -> asyncio.Task[report.ProfileSummary] | None:
    """py-spy for as long as the backlog lasts (at most PROFILE_SECONDS), if installed."""
    if not ctx.profile:
        return None
    py_spy = find_py_spy()
    if py_spy is None:
        ctx.notes.append("py-spy not installed (`pip install py-spy` in the venv): no profile")
        return None
    backlog = target - (await store.counters(ctx.plan.partitions)).applied
    seconds = int(min(PROFILE_SECONDS, 0.9 * backlog / rate)) if rate > 0 else 0
    if seconds < MIN_PROFILE_SECONDS:
        ctx.notes.append(f"backlog of {backlog:,} events too small to profile")
        return None
    raw = ctx.artifact("-profile.txt")

    async def profile() -> report.ProfileSummary:
        parsed = await record(py_spy, worker.pid, seconds, raw)
        return report.ProfileSummary.of(
            parsed, seconds=seconds, phase="second pass", raw_path=shown(raw)
        )

    return asyncio.create_task(profile())


async def finish_profile(
    ctx: Context, profiling: asyncio.Task[report.ProfileSummary] | None
) -> report.ProfileSummary | None:
    """The profile's summary, or None with a note: a profile never fails the run."""
    if profiling is None:
        return None
    try:
        return await asyncio.wait_for(profiling, PROFILE_SECONDS * 3)
    except Exception as exc:
        ctx.notes.append(f"profile failed: {exc!r}")
        return None


async def latency_phase(
    ctx: Context, worker: WorkerProcess, store: MetricsStore, rate: float
) -> Latency:
    """Probes at half the worker's rate; then every event must be applied exactly once."""
    producer = kafka.new_producer(ctx.worker)
    await producer.start()
    observer = AIOKafkaConsumer(**client_options(ctx.worker), enable_auto_commit=False)
    await observer.start()
    before = await server_snapshot(ctx.redis, ctx.kafka_pid)
    try:
        latency = await within(
            "the latency phase",
            ctx.plan.phase_timeout_seconds,
            measure_latency(
                producer,
                ctx.worker.topic_asset_performance,
                ctx.factory,
                ctx.redis,
                Keys(ctx.worker.redis_key_prefix),
                rate=rate,
                seconds=ctx.plan.latency_seconds,
                probe_every=ctx.plan.probe_every,
                observer=observer,
                partitions=ctx.plan.partitions,
            ),
        )
    finally:
        await observer.stop()
        await producer.stop()
    forks = (await server_snapshot(ctx.redis, ctx.kafka_pid)).minus(before).forks
    if forks:
        # Each rewrite's child takes a core for a while: probes sent meanwhile wait longer.
        ctx.notes.append(f"Redis forked {forks}x during the latency phase (AOF rewrite)")
    total = ctx.plan.events + ctx.plan.second_pass_events + latency.events
    final = await within(
        "the last events",
        ctx.plan.phase_timeout_seconds,
        wait_applied(
            store,
            partitions=ctx.plan.partitions,
            target=total,
            started=time.monotonic(),
            check=worker.check_alive,
        ),
    )
    if final.applied != total or final.duplicates:
        ctx.notes.append(
            f"Redis counted {final.applied:,} applied and {final.duplicates:,} duplicate "
            f"events for {total:,} produced"
        )
    return latency


async def measure(ctx: Context, command: str) -> report.Result:
    """Every phase, in order; the caller cleans up whatever happens."""
    sample = EventFactory(
        run_id="check", assets=ctx.plan.assets, campaigns=ctx.plan.campaigns,
        days=ctx.plan.days, partitions=ctx.plan.partitions, seed=ctx.plan.seed,
    )  # fmt: skip
    check_contract(list(sample.events(1000, time.time())), ctx.worker.topic_asset_performance)
    await ensure_topics(ctx.worker)
    production = await produce_events(ctx, ctx.plan.events)
    print(f"produced {production.events:,} events in {production.seconds:.1f} s", flush=True)
    floor = await measure_floor(ctx)
    print(f"(c) floor: {floor.steady_rate:,.0f} events/s", flush=True)
    ceiling = await measure_ceiling(ctx)
    print(f"(a) ceiling: {ceiling.steady_rate:,.0f} events/s", flush=True)
    figures = await measure_worker(ctx)
    print(f"(b) worker: {figures.consumption.steady_rate:,.0f} events/s", flush=True)
    for name, c in (("ceiling", ceiling), ("worker", figures.consumption)):
        if c.redis_forks:
            ctx.notes.append(f"Redis forked {c.redis_forks}x during the {name} (AOF rewrite)")
    info = await ctx.redis.info("server")
    return report.Result(
        run=ctx.names.run_id,
        date=f"{ctx.names.started_at:%Y-%m-%d %H:%M} UTC",
        command=command,
        revision=await asyncio.to_thread(report.git_revision),
        machine=await asyncio.to_thread(report.machine, str(info.get("redis_version", "?"))),
        plan=asdict(ctx.plan),
        production=production,
        ceiling=ceiling,
        worker=figures.consumption,
        memory=figures.memory,
        latency=figures.latency,
        profile=figures.profile,
        notes=ctx.notes,
        floor=floor,
        reads=figures.reads["worker"],
        api_reads=figures.reads.get("api server"),
        holds=figures.holds,
        footprint=figures.footprint,
    )


def shown(path: Path) -> Path:
    """A path relative to the repository when it is inside it (for the docs)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
