"""The handler alone: the service's `PerformanceHandler` on the stack's Redis, no Kafka.

What one event costs the handler itself, without a consumer, Faust or the broker
sharing the measure: the benchmark's events (bench/events.py, the same workload as
`make bench`) are built as consumed records (`RawMessage`), grouped per partition,
and given to the handler (built by `Runtime.build`, as the worker builds it) in
fetches of N records per partition, one partition after the other, as
`BatchingConsumer` does. Each fetch size is measured on events of its own, after a
warm-up that fills what the handler keeps (pointers, sums, buckets of ids).

Per event: the process's CPU time and wall time, Redis's CPU time, its time inside
transactions (`EXEC`, the commands it runs included; scripts too, though the step runs
none) and its commands, read as `make bench` reads them (`bench.resources`). The baseline,
measured in the same run on the same records: decoding alone (what the floor of
`make bench` does per record), so `handler / decode` compares machines and days
better than microseconds do. From two fetch sizes, the cost of a step splits into a
fixed part and a part per event: at half the full rate a fetch brings a few dozen
records a partition, and the fixed part is what makes those steps dear.

    python -m bench.handler [--events 150000] [--warm-up 100000] [--records 250 20]

Keys go under a prefix of the run's own and are removed at the end. Nothing else
should use the stack's Redis meanwhile: its CPU and commands are read from INFO.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.cleanup import delete_keys
from bench.events import EventFactory
from bench.plan import Plan, RunNames
from bench.resources import server_snapshot
from service import collector
from service.config import Settings
from service.domain.decoding import RawMessage, decode
from service.domain.events import AssetPerformance
from service.runtime import Runtime
from service.store.client import connect
from service.store.requirements import check_redis_requirements

TOPIC = "bench.asset-performance"
_OWN_COMMANDS = ("info", "scan", "unlink", "config|get")  # the bench's, not the handler's


class DiscardingPort:
    """The dead letters' producer port: counts what would be sent (none is expected)."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent += 1


@dataclass(frozen=True, slots=True)
class Measure:
    """One fetch size, per event."""

    records: int  # per partition and fetch
    events: int
    cpu_us: float
    wall_us: float
    decode_us: float
    redis_cpu_us: float
    script_us: float
    commands: float

    @property
    def ratio(self) -> float:
        return self.cpu_us / self.decode_us if self.decode_us else 0.0


class Feed:
    """The workload's events as per-partition records, with offsets that go on."""

    def __init__(self, plan: Plan, run_id: str) -> None:
        self._factory = EventFactory(
            run_id=run_id,
            assets=plan.assets,
            campaigns=plan.campaigns,
            days=plan.days,
            partitions=plan.partitions,
            seed=plan.seed,
        )
        self._offsets: dict[int, int] = defaultdict(int)

    def fetches(self, events: int, records: int) -> list[tuple[int, list[RawMessage]]]:
        """`events` new events in fetches of `records` a partition, the partitions in turn."""
        by_partition: dict[int, list[RawMessage]] = defaultdict(list)
        for partition, key, value in self._factory.events(events, time.time()):
            offset = self._offsets[partition]
            self._offsets[partition] = offset + 1
            by_partition[partition].append(RawMessage(TOPIC, partition, offset, key, value))
        fetches: list[tuple[int, list[RawMessage]]] = []
        for start in range(0, max(map(len, by_partition.values()), default=0), records):
            for partition in sorted(by_partition):
                chunk = by_partition[partition][start : start + records]
                if chunk:
                    fetches.append((partition, chunk))
        return fetches


async def apply_all(runtime: Runtime, fetches: Sequence[tuple[int, list[RawMessage]]]) -> None:
    handler = runtime.performance
    for partition, records in fetches:
        seek = await handler(partition, records)
        if seek is not None:
            raise RuntimeError(f"the handler asked to seek partition {partition} to {seek}")


def decode_cpu(fetches: Sequence[tuple[int, list[RawMessage]]], max_bytes: int) -> float:
    started = time.process_time()
    for _, records in fetches:
        for record in records:
            decode(AssetPerformance, record, max_bytes=max_bytes)
    return time.process_time() - started


async def measure(
    runtime: Runtime, redis: Any, feed: Feed, settings: Settings, *, events: int, records: int
) -> Measure:
    fetches = feed.fetches(events, records)
    count = sum(len(r) for _, r in fetches)
    before = await server_snapshot(redis, kafka_pid=None)
    cpu, wall = time.process_time(), time.perf_counter()
    await apply_all(runtime, fetches)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    spent = (await server_snapshot(redis, kafka_pid=None)).minus(before)
    commands = sum(n for name, n in spent.commands.items() if name not in _OWN_COMMANDS)
    decoded = decode_cpu(fetches, settings.max_message_bytes)
    micro = 1e6 / count
    return Measure(
        records=records,
        events=count,
        cpu_us=cpu * micro,
        wall_us=wall * micro,
        decode_us=decoded * micro,
        redis_cpu_us=spent.redis_cpu * micro,
        script_us=spent.script_usec / count,
        commands=commands / count,
    )


def step_cost(measures: Sequence[Measure]) -> tuple[float, float] | None:
    """(fixed µs per step, µs per event) from the smallest and largest fetch sizes."""
    small = min(measures, key=lambda m: m.records)
    large = max(measures, key=lambda m: m.records)
    if small.records == large.records:
        return None
    per_event = (large.cpu_us * large.records - small.cpu_us * small.records) / (
        large.records - small.records
    )
    return small.cpu_us * small.records - per_event * small.records, per_event


def report(measures: Sequence[Measure], run: str, command: str, dead_letters: int) -> str:
    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"Run `{run}`, `{command}`, code at {code or 'unknown'}.",
        "",
        "| records a partition and step | events | handler CPU µs/event | wall µs/event "
        "| decode only µs/event | handler / decode | Redis CPU µs/event "
        "| in scripts and MULTI/EXEC µs/event | Redis commands/event |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in measures:
        lines.append(
            f"| {m.records} | {m.events:,} | {m.cpu_us:.1f} | {m.wall_us:.1f} "
            f"| {m.decode_us:.1f} | {m.ratio:.1f} | {m.redis_cpu_us:.1f} | {m.script_us:.2f} "
            f"| {m.commands:.2f} |"
        )
    split = step_cost(measures)
    if split is not None:
        fixed, per_event = split
        lines += ["", f"A step's CPU: {fixed:,.0f} µs fixed + {per_event:.1f} µs per event."]
    if dead_letters:
        lines += ["", f"Warning: {dead_letters} record(s) went to the dead letters."]
    return "\n".join(lines)


async def run(plan: Plan, *, events: int, warm_up: int, sizes: Sequence[int], command: str) -> str:
    names = RunNames.new()
    identity = names.identity("handler")
    settings = Settings(
        app_id=identity,
        redis_key_prefix=identity,
        topic_partitions=plan.partitions,
        topic_asset_performance=TOPIC,
    )
    redis = connect(settings)
    port = DiscardingPort()
    try:
        requirements = await check_redis_requirements(redis, settings)
        runtime = Runtime.build(settings, port, evicts_nothing=requirements.evicts_nothing)
        try:
            feed = Feed(plan, names.run_id)
            with collector.tuned():  # as a worker's collector is (service/collector.py)
                await apply_all(runtime, feed.fetches(warm_up, max(sizes)))
                measures = [
                    await measure(runtime, redis, feed, settings, events=events, records=size)
                    for size in sizes
                ]
        finally:
            await runtime.close()
        return report(measures, names.run_id, command, port.sent)
    finally:
        await delete_keys(redis, names.key_pattern)
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handler", description=__doc__)
    parser.add_argument("--events", type=int, default=150_000, help="measured, per size")
    parser.add_argument("--warm-up", type=int, default=100_000)
    parser.add_argument("--records", type=int, nargs="+", default=[250, 20])
    defaults = Plan()
    parser.add_argument("--assets", type=int, default=defaults.assets)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    if args.events < 1 or args.warm_up < 0 or min(args.records) < 1:
        parser.error("--events and --records must be at least 1, --warm-up at least 0")
    plan = Plan(assets=args.assets, seed=args.seed)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m bench.handler", *given])
    print(
        asyncio.run(
            run(plan, events=args.events, warm_up=args.warm_up, sizes=args.records, command=command)
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
