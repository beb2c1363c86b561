"""The `service` command: run a worker or a board refresher, manage topics, generate
schemas, produce demo traffic."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import sys
from pathlib import Path

from pydantic import ValidationError

from service.config import Settings
from service.errors import ConfigurationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("worker", help="run a stream worker (Ctrl-C stops it cleanly)")
    commands.add_parser(
        "api",
        help="serve the HTTP API in a process of its own, off the workers' event loop",
    )
    commands.add_parser(
        "refresher",
        help="refresh the leaderboards in a process of their own, off the workers' event loop",
    )

    topics = commands.add_parser("topics", help="create or describe the service's topics")
    topics.add_argument("action", choices=["create", "describe"])

    schemas = commands.add_parser("schemas", help="write the JSON Schemas of every topic")
    schemas.add_argument("--dir", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")

    commands.add_parser(
        "check-config",
        help="validate the settings, reach Kafka and Redis, print the effective configuration",
    )

    dead = commands.add_parser("dead-letter", help="work with the dead-letter topic")
    dead_commands = dead.add_subparsers(dest="dead_letter_command", required=True)
    replay = dead_commands.add_parser(
        "replay", help="produce dead-lettered messages again to their source topics"
    )
    replay.add_argument(
        "--reason", action="append", default=[], help="only this reason code (repeatable)"
    )
    replay.add_argument(
        "--source-topic",
        action="append",
        default=[],
        help="only dead letters from this topic (repeatable)",
    )
    replay.add_argument("--limit", type=int, default=None, help="at most this many")
    replay.add_argument("--dry-run", action="store_true", help="list, produce nothing")

    demo = commands.add_parser("demo", help="produce realistic synthetic traffic")
    demo.add_argument("--libraries", type=int, default=4)
    demo.add_argument("--assets", type=int, default=200, help="assets to register")
    demo.add_argument("--rate", type=float, default=500.0, help="events per second")
    demo.add_argument("--seed", type=int, default=7)

    args = parser.parse_args(argv)
    try:
        settings = Settings()
        check_tls_files(settings)
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2

    if args.command == "worker":
        return _serve(settings, api_only=False)
    if args.command == "api":
        return _serve(settings, api_only=True)
    if args.command == "refresher":
        from service.refresher import main as refresher

        return refresher(settings)
    if args.command == "topics":
        return asyncio.run(_topics(settings, args.action))
    if args.command == "schemas":
        from service.schema_files import check_schemas, write_schemas

        if args.check:
            stale = check_schemas(args.dir)
            for name in stale:
                print(f"stale: {args.dir / name} (run `service schemas`)", file=sys.stderr)
            return 1 if stale else 0
        for path in write_schemas(args.dir):
            print(f"wrote {path}")
        return 0
    if args.command == "check-config":
        from service.operations import check_config

        return 0 if asyncio.run(check_config(settings, print)) else 1
    if args.command == "dead-letter":
        from service.operations import ReplayFilter, replay_dead_letters

        wanted = ReplayFilter(set(args.reason), set(args.source_topic))
        asyncio.run(
            replay_dead_letters(settings, wanted, print, dry_run=args.dry_run, limit=args.limit)
        )
        return 0
    if args.command == "demo":
        from service.demo import DemoPlan, run_demo

        plan = DemoPlan(
            libraries=args.libraries, assets=args.assets, rate=args.rate, seed=args.seed
        )
        return asyncio.run(run_demo(settings, plan))
    return 2


DESCRIBE_ATTEMPTS = 6


def check_tls_files(settings: Settings) -> None:
    """Load every CA, certificate and key the settings name, so that a file the service
    cannot use stops each command at once with its setting's name (ConfigurationError)."""
    from service.store.client import security_options
    from service.streaming.kafka_client import ssl_context

    ssl_context(settings)
    security_options(settings)


class _CannotStart(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _serve(settings: Settings, *, api_only: bool) -> int:
    """Run a worker, or (`api_only`) an API server: check Kafka and Redis first, so that
    a process that cannot work says why and exits instead of retrying in the dark."""
    from faust.worker import Worker

    from service import collector
    from service.app import create_api_app, create_app
    from service.errors import RedisRequirementError
    from service.observability import logging_config, redact
    from service.store.client import connect
    from service.store.client import describe as describe_redis
    from service.store.client import explain as explain_redis
    from service.store.requirements import RequirementsReport, check_redis_requirements
    from service.streaming.kafka_client import describe as describe_kafka
    from service.streaming.kafka_client import diagnose
    from service.streaming.watchdog import EXIT_CONSUMER_DIED
    from service.topics import check_partitions, ensure_topics

    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(log_config)
    log = logging.getLogger("service.api" if api_only else "service.worker")

    async def prepare() -> tuple[list[str], RequirementsReport]:
        try:
            if settings.create_topics:
                await ensure_topics(settings)
            problems = (
                []
                if api_only  # partitions matter to the consumers only
                else [
                    p
                    for p in await check_partitions(settings)
                    if settings.topic_asset_performance in p
                ]
            )
        except Exception as exc:
            reason = await diagnose(settings)
            if reason == "connected":
                reason = redact(repr(exc))
            raise _CannotStart(
                f"cannot use Kafka at {settings.kafka_bootstrap_servers} "
                f"({describe_kafka(settings)}) to prepare topics: {reason}\n"
                "Start the local stack with `make stack-up`, or set "
                "MEDIA_KAFKA_BOOTSTRAP_SERVERS and the MEDIA_KAFKA_* security settings."
            ) from exc
        redis = connect(settings)  # short-lived: the app builds its own client
        try:
            report = await asyncio.wait_for(check_redis_requirements(redis, settings), timeout=30)
        except Exception as exc:
            hint = explain_redis(exc, settings)
            raise _CannotStart(
                f"cannot use Redis ({describe_redis(settings)}) to check its configuration: "
                f"{redact(repr(exc))}" + (f"\n{hint}" if hint else "") + "\n"
                "Start the local stack with `make stack-up`, or set MEDIA_REDIS_URL and the "
                "MEDIA_REDIS_* security settings."
            ) from exc
        finally:
            await redis.aclose()
        return problems, report

    try:
        problems, report = asyncio.run(prepare())
    except _CannotStart as exc:
        print(exc.message, file=sys.stderr)
        return 1
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    log.info(
        "redis: eviction policy %s, persistence %s, requirements %s",
        report.eviction_policy,
        report.persistence,
        report.verdict,
    )
    for warning in report.warnings:
        log.warning("redis: %s", warning)
    try:
        report.raise_if_refused()
    except RedisRequirementError as exc:
        print(f"Redis does not meet the service's requirements: {exc}", file=sys.stderr)
        return 2
    if api_only:
        app = create_api_app(settings)
    else:
        app = create_app(settings, evicts_nothing=report.evicts_nothing)
        collector.tune()  # a fetch's objects die young (service/collector.py)
    worker = Worker(app, loglevel=settings.log_level, quiet=True, logging_config=log_config)
    try:
        worker.execute_from_commandline()  # ends in SystemExit
    except SystemExit as done:
        if app.liveness.reason is not None:
            # Stopped by the watchdog: the consumer had died (service/streaming/watchdog.py).
            return EXIT_CONSUMER_DIED
        return done.code if isinstance(done.code, int) else 1
    return 0


async def _topics(settings: Settings, action: str) -> int:
    from service.topics import describe_topics, ensure_topics

    if action == "create":
        created = await ensure_topics(settings)
        print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")
        return 0
    infos = await describe_topics(settings)
    for _ in range(DESCRIBE_ATTEMPTS - 1):
        # A topic created a moment ago (`make topics` creates, then describes) may not be
        # in the broker's metadata yet: ask again briefly before calling it missing.
        if not any(info.error for info in infos):
            break
        await asyncio.sleep(0.5)
        infos = await describe_topics(settings)
    for info in infos:
        if info.error:
            print(f"{info.name}: {info.error}")
        else:
            print(
                f"{info.name}: {info.partitions} partitions, replication {info.replication_factor}"
            )
    return 1 if any(info.error for info in infos) else 0


if __name__ == "__main__":
    sys.exit(main())
