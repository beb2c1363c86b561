"""`make bench`: throughput of the performance pipeline, its ceiling, memory and latency.

One run, on one machine, against the local stack:

1. Produce `--events` realistic performance events into fresh 8-partition topics
   (timed, but not part of any measurement).
2. (a) The ceiling: the service's own batch handler behind a plain aiokafka
   consumer (bench/ceiling.py). (b) A real `service worker` process on the same
   events, in its own consumer group and key prefix. Both are timed until Redis
   reflects every event; the ratio (b)/(a) is what running inside the service
   (Faust, and the worker's other duties such as the leaderboard timer) costs.
3. Memory: the worker's RSS after the first pass and after `--second-pass-events`
   more (is it still growing?); py-spy profiles the worker during that pass.
4. Latency: events at half the worker's rate, with probes, send to visible.
5. Report (printed, `.stack/bench-<run>.json`, docs/benchmarks.md), then delete
   the run's topics and Redis keys, also when something failed.

Phases run one after the other (the machine has few cores; nothing measured may
compete with anything else), each bounded by `--phase-timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from bench import cleanup, kafka, report
from bench.events import EventFactory
from bench.phases import STACK_DIR, Context, measure, shown
from bench.plan import Plan, RunNames, process_settings
from bench.progress import PhaseTimeout
from bench.resources import pid_from_file
from bench.worker import WorkerExited
from service.config import Settings
from service.store.client import connect

HOW_TO_START = "start the local stack with `deploy/stack.sh up` (or `make stack-up`)"


class StackUnavailable(RuntimeError):
    """Kafka or Redis does not answer."""


async def preflight(settings: Settings, redis: Any) -> None:
    """Fail at once, with what to do, when the stack is not running."""
    try:
        await kafka.reachable(settings)
    except Exception as exc:
        raise StackUnavailable(
            f"Kafka at {settings.kafka_bootstrap_servers} does not answer ({exc!r}): "
            + HOW_TO_START
        ) from None
    try:
        await asyncio.wait_for(redis.ping(), 10)
    except Exception as exc:
        raise StackUnavailable(f"Redis does not answer ({exc!r}): {HOW_TO_START}") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_context(plan: Plan, profile: bool) -> Context:
    names = RunNames.new()
    ceiling = process_settings(names, "ceiling", plan, free_port())
    worker = process_settings(names, "worker", plan, free_port())
    factory = EventFactory(
        run_id=names.run_id, assets=plan.assets, campaigns=plan.campaigns, days=plan.days,
        partitions=plan.partitions, seed=plan.seed,
    )  # fmt: skip
    return Context(
        plan=plan,
        names=names,
        ceiling=ceiling,
        worker=worker,
        redis=connect(worker),
        factory=factory,
        profile=profile,
        kafka_pid=pid_from_file(STACK_DIR / "kafka.pid"),
        api_port=free_port(),
    )


async def run(plan: Plan, *, profile: bool, write_docs: bool, command: str) -> int:
    ctx = new_context(plan, profile)
    print(f"benchmark run {ctx.names.namespace}: {plan}", flush=True)
    try:
        await preflight(ctx.worker, ctx.redis)
        try:
            result = await measure(ctx, command)
        finally:
            directories = [ctx.ceiling.data_dir, ctx.worker.data_dir]
            for line in await cleanup.clean_up(ctx.worker, ctx.redis, ctx.names, directories):
                print(f"cleanup: {line}", flush=True)
    finally:
        await ctx.redis.aclose()
    print("\n" + report.text(result))
    json_path = ctx.artifact(".json")
    report.write_json(result, json_path)
    print(f"\nresult: {json_path}")
    if write_docs:
        report.update_docs(result)
        print(f"updated {shown(report.DOCS)}")
    return 0


def parse_args(argv: list[str] | None) -> tuple[Plan, argparse.Namespace]:
    defaults = Plan()
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--second-pass-events", type=int, default=defaults.second_pass_events)
    parser.add_argument("--assets", type=int, default=defaults.assets)
    parser.add_argument("--campaigns", type=int, default=defaults.campaigns)
    parser.add_argument("--latency-seconds", type=float, default=defaults.latency_seconds)
    parser.add_argument("--phase-timeout", type=float, default=defaults.phase_timeout_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--partitions", type=int, default=defaults.partitions, help="of the performance topic"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    plan = Plan(
        events=args.events,
        second_pass_events=args.second_pass_events,
        assets=args.assets,
        campaigns=args.campaigns,
        latency_seconds=args.latency_seconds,
        phase_timeout_seconds=args.phase_timeout,
        seed=args.seed,
        partitions=args.partitions,
    )
    return plan, args


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    plan, args = parse_args(arguments)
    command = " ".join(["python -m bench.throughput", *arguments])
    if os.environ.get("MAKELEVEL"):  # started by make: say so, it is what people type
        command = "make bench" + (f" BENCH_ARGS='{' '.join(arguments)}'" if arguments else "")
    try:
        return asyncio.run(
            run(plan, profile=not args.no_profile, write_docs=not args.no_docs, command=command)
        )
    except (PhaseTimeout, WorkerExited, StackUnavailable) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "benchmark interrupted (the cleanup lines above say what was removed)", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
