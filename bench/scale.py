"""Scale-out: 1 and 2 workers against one Redis or a Redis Cluster (`make bench-scale`).

What a team sizing a deployment asks: how many events a second do a number of worker
cores and Redis cores carry? One run measures it on the local stack it finds (one Redis,
or with `MEDIA_STACK_REDIS=cluster` the three-primary cluster), under a namespace of its
own:

1. Produce the events once (the workload of `make bench`: `bench/events.py`).
2. For each number of workers N (`--workers`, 1 and 2 by default): start N
   `service worker` processes in a consumer group and key prefix of their own; they read
   the topic from its start. Time them until Redis counts every event, and take the CPU
   seconds each component spent meanwhile: the workers (summed), every `redis-server` of
   the stack (summed, and the busiest one), Kafka.
3. Report, per N, the rate without start-up and the CPU microseconds per event of each
   component, and rewrite this stack's block of docs/benchmarks.md.

The CPU per event is what sizes a deployment: a component that spends `c` us per event
carries about 1,000,000 / c events a second per core it is given (docs/benchmarks.md,
"Scale-out"). On a machine with fewer cores than processes the rates only show the
contention; the CPU per event still holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import cleanup, kafka, report
from bench.events import EventFactory
from bench.phases import STACK_DIR
from bench.plan import Plan, RunNames, process_settings, settings_env
from bench.progress import PhaseTimeout, within
from bench.resources import cpu_seconds, pid_from_file
from bench.throughput import StackUnavailable, free_port, preflight
from bench.worker import WorkerExited, WorkerIgnoredStop, WorkerProcess
from service.config import Settings
from service.store.client import connect
from service.store.keys import Keys
from service.store.metrics import MetricsStore
from service.store.scripts import Scripts
from service.topics import ensure_topics

POLL_SECONDS = 0.1
MARKERS = {
    "single": ("<!-- bench:scale:single:start -->", "<!-- bench:scale:single:end -->"),
    "cluster": ("<!-- bench:scale:cluster:start -->", "<!-- bench:scale:cluster:end -->"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """N workers on the whole topic, measured from the moment Redis counted a tenth of the
    events (start-up left out: imports, group join) until it counted all of them."""

    workers: int
    events: int  # counted while measured
    seconds: float
    worker_cpu: float
    redis_cpu: float
    busiest_redis_cpu: float
    kafka_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def us_per_event(self, cpu: float) -> float:
        return cpu * 1e6 / self.events

    def cores(self, cpu: float) -> float:
        return cpu / self.seconds


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    applied: int
    workers: float
    redis: dict[int, float]
    kafka: float


@dataclass(frozen=True, slots=True)
class ScaleResult:
    run: str
    date: str
    revision: str
    stack: str  # single or cluster
    redis_nodes: int
    partitions: int
    events: int
    steps: list[Step]


def stack_dir(settings: Settings) -> Path:
    """Where `deploy/stack.sh` keeps the pid files of the stack these settings name."""
    return STACK_DIR / "cluster" if settings.redis_cluster else STACK_DIR


def redis_pids(directory: Path) -> list[int]:
    pids = [pid_from_file(path) for path in sorted(directory.glob("redis*.pid"))]
    return [pid for pid in pids if pid is not None]


async def run_step(plan: Plan, names: RunNames, workers: int, events: int, directory: Path) -> Step:
    settings = process_settings(names, f"w{workers}", plan, free_port())
    redis = connect(settings)
    store = MetricsStore(
        redis,
        Keys(settings.redis_key_prefix),
        Scripts.register(redis),
        settings.topic_asset_performance,
    )
    nodes = redis_pids(directory)
    kafka_pid = pid_from_file(directory / "kafka.pid")
    processes: list[WorkerProcess] = []

    def snapshot(applied: int) -> CpuSnapshot:
        return CpuSnapshot(
            at=time.monotonic(),
            applied=applied,
            workers=sum(p.cpu_seconds() for p in processes),
            redis={pid: cpu_seconds(pid) for pid in nodes},
            kafka=cpu_seconds(kafka_pid) if kafka_pid else 0.0,
        )

    async def counted(target: int) -> int:
        while True:
            applied = (await store.counters(plan.partitions)).applied
            if applied >= target:
                return applied
            for process in processes:
                process.check_alive()
            await asyncio.sleep(POLL_SECONDS)

    try:
        for n in range(workers):
            env = settings_env(settings.model_copy(update={"web_port": free_port()}))
            process = WorkerProcess(env, directory / f"{names.namespace}-w{workers}-{n}.log")
            process.start()
            processes.append(process)
        phase = f"{workers} worker(s)"
        begin = snapshot(await within(phase, plan.phase_timeout_seconds, counted(events // 10)))
        end = snapshot(await within(phase, plan.phase_timeout_seconds, counted(events)))
        redis_cpu = [end.redis[pid] - begin.redis[pid] for pid in nodes]
        return Step(
            workers=workers,
            events=end.applied - begin.applied,
            seconds=end.at - begin.at,
            worker_cpu=end.workers - begin.workers,
            redis_cpu=sum(redis_cpu),
            busiest_redis_cpu=max(redis_cpu, default=0.0),
            kafka_cpu=end.kafka - begin.kafka,
        )
    finally:
        for process in processes:
            with contextlib.suppress(WorkerIgnoredStop):
                await asyncio.to_thread(process.stop)
        await cleanup.delete_keys(redis, f"{settings.redis_key_prefix}:*")
        await redis.aclose()


async def measure(plan: Plan, worker_counts: list[int], names: RunNames) -> ScaleResult:
    settings = process_settings(names, "producer", plan, free_port())
    directory = stack_dir(settings)
    nodes = redis_pids(directory)
    if not nodes:
        raise StackUnavailable(f"no running redis-server pid file in {directory}")
    await ensure_topics(settings)
    factory = EventFactory(
        run_id=names.run_id, assets=plan.assets, campaigns=plan.campaigns, days=plan.days,
        partitions=plan.partitions, seed=plan.seed,
    )  # fmt: skip
    produced = await within(
        "producing",
        plan.phase_timeout_seconds,
        kafka.produce(
            settings, settings.topic_asset_performance, factory.events(plan.events, time.time())
        ),
    )
    print(f"produced {produced.events:,} events in {produced.seconds:.1f} s", flush=True)
    steps = []
    for workers in worker_counts:
        step = await run_step(plan, names, workers, plan.events, directory)
        steps.append(step)
        print(
            f"{workers} worker(s): {step.rate:,.0f} events/s; CPU us/event: workers "
            f"{step.us_per_event(step.worker_cpu):.1f}, Redis "
            f"{step.us_per_event(step.redis_cpu):.1f}, Kafka "
            f"{step.us_per_event(step.kafka_cpu):.1f}",
            flush=True,
        )
    return ScaleResult(
        run=names.run_id,
        date=f"{names.started_at:%Y-%m-%d %H:%M} UTC",
        revision=await asyncio.to_thread(report.git_revision),
        stack="cluster" if settings.redis_cluster else "single",
        redis_nodes=len(nodes),
        partitions=plan.partitions,
        events=plan.events,
        steps=steps,
    )


def markdown(result: ScaleResult) -> str:
    redis = (
        "one Redis"
        if result.stack == "single"
        else f"a Redis Cluster of {result.redis_nodes} primaries"
    )
    rows = []
    for s in result.steps:
        rows.append(
            f"| {s.workers} | {s.rate:,.0f} | {s.us_per_event(s.worker_cpu):.1f} "
            f"({s.cores(s.worker_cpu):.2f}) | {s.us_per_event(s.redis_cpu):.1f} "
            f"({s.cores(s.redis_cpu):.2f}) | {s.us_per_event(s.busiest_redis_cpu):.1f} | "
            f"{s.us_per_event(s.kafka_cpu):.1f} ({s.cores(s.kafka_cpu):.2f}) |"
        )
    return "\n".join(
        [
            f"Run `{result.run}` ({result.date}, code `{result.revision}`): {redis}, "
            f"{result.partitions} partitions, {result.events:,} events; each row from the "
            "moment Redis counted a tenth of them to the last (start-up left out).",
            "",
            "| workers | events/s | workers: CPU us/event (cores) | Redis: CPU us/event "
            "(cores) | busiest Redis node: us/event | Kafka: CPU us/event (cores) |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def update_docs(result: ScaleResult, path: Path = report.DOCS) -> None:
    report.rewrite_block(MARKERS[result.stack], markdown(result), path)


async def run(plan: Plan, worker_counts: list[int], write_docs: bool) -> int:
    names = RunNames.new()
    settings = process_settings(names, "producer", plan, free_port())
    redis = connect(settings)
    print(f"scale-out benchmark {names.namespace}: workers {worker_counts}", flush=True)
    try:
        await preflight(settings, redis)
        try:
            result = await measure(plan, worker_counts, names)
        finally:
            for line in await cleanup.clean_up(settings, redis, names, []):
                print(f"cleanup: {line}", flush=True)
    finally:
        await redis.aclose()
    print("\n" + markdown(result))
    path = STACK_DIR / f"{names.namespace}-scale.json"
    path.write_text(json.dumps(asdict(result), indent=2))
    print(f"\nresult: {path}")
    if write_docs:
        update_docs(result)
        print(f"updated {report.DOCS.relative_to(report.ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    plan = Plan(events=args.events)
    try:
        return asyncio.run(run(plan, counts, write_docs=not args.no_docs))
    except (PhaseTimeout, WorkerExited, StackUnavailable) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
