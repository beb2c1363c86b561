"""Leaderboards at scale: one library of 200,000 ranked assets (`make bench-boards`).

What a team asks before it puts a large library on the service: does a change still reach
the boards within the refresh interval, and what does the hourly move of the windows cost?
One run, against the local stack, under a namespace of its own:

1. Seed (timed, not a result): every asset registered through the registry store, one
   performance event each through the metrics store (1 % of them in the hour that leaves
   the 24h window at the next hour, the others in the last five days), and each asset's
   board entries written through the store the refresh uses, their totals computed from
   that one event. This is the state a refresh of every asset leaves, without the hours it
   would take here to compute it.
2. Refresh runs: K assets get one more event each, then one refresh run is timed
   (K = 100, then 1,000): the cost per changed asset.
3. Change to board: a `service refresher` process refreshes every `--interval` seconds;
   one asset at a time gets an event at a random moment, and the time until its entry on
   the library's 24h board shows the event is measured.
4. Hourly sweep, as at the next hour: the assets counted in the hour that leaves the 24h
   window (the sweep now) against every ranked asset (the sweep before, in the same run),
   with the time to queue them and the refresh work each queue implies at the cost per
   asset of step 2. The queue of the sweep now is checked against the seeded assets.
5. Reads of the library's 24h top list and of a label (the board's pool and the asset's
   own entry), as the API does them: the first read of each scans the whole board, the
   next ones find it kept.

Everything the run created is deleted at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench import cleanup, report
from bench.phases import STACK_DIR
from bench.plan import Plan, RunNames, process_settings, settings_env
from bench.throughput import free_port, preflight
from bench.worker import WorkerProcess
from service.config import Settings
from service.domain import leaderboard as lb
from service.domain.enums import Channel
from service.domain.events import AssetRegistered
from service.domain.metrics import Totals, WindowTotals
from service.domain.registry import SourceRef, register
from service.domain.windows import HOUR, Window, window_buckets
from service.refresher import KafkaProducer, started_producer
from service.runtime import Runtime
from service.store.client import connect
from service.store.codecs import decode_board_entry
from service.store.keys import Keys
from service.store.metrics import PerfRow
from service.topics import ensure_topics

MARKERS = ("<!-- bench:boards:start -->", "<!-- bench:boards:end -->")
LIBRARY = "big"
CHANNELS = (Channel.EMAIL, Channel.WEB, Channel.SOCIAL, Channel.DISPLAY)
STEP = 1_000  # events per metrics script call while seeding
CONCURRENCY = 16  # store calls in flight while seeding (each may use a few connections)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BoardPlan:
    assets: int = 200_000
    moved_share: float = 0.01
    partitions: int = 8
    interval: float = 5.0
    changes: int = 20
    seed: int = 7


@dataclass(frozen=True, slots=True)
class RefreshRun:
    changed: int
    recomputed: int
    seconds: float

    @property
    def ms_per_asset(self) -> float:
        return self.seconds * 1000 / self.recomputed if self.recomputed else 0.0


@dataclass(frozen=True, slots=True)
class Sweep:
    queued: int
    seconds: float


@dataclass(frozen=True, slots=True)
class BoardFigures:
    run: str
    date: str
    revision: str
    plan: dict[str, Any]
    seed_seconds: dict[str, float]
    runs: list[RefreshRun]
    interval: float
    visible_seconds: list[float]
    sweep_now: Sweep
    sweep_before: Sweep
    sweep_exact: bool
    top_read_ms: list[float]
    label_read_ms: list[float]

    @property
    def ms_per_asset(self) -> float:
        return self.runs[-1].ms_per_asset


# --- seeding ---------------------------------------------------------------------------


def partition_of(asset_id: str, partitions: int) -> int:
    return zlib.crc32(asset_id.encode()) % partitions


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = CONCURRENCY) -> None:
    """Run the calls with at most `limit` in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


def registration(asset_id: str, n: int) -> AssetRegistered:
    return AssetRegistered.model_validate(
        {
            "event_id": f"reg-{asset_id}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "asset_id": asset_id,
            "library_id": LIBRARY,
            "name": f"banner {n}.png",
            "media_type": "image",
            "format": "png",
            "width": 1200,
            "height": 628,
            "file_size_bytes": 150_000,
            "content_sha256": f"{n:064x}",
            "owner": "design@example.com",
        }
    )


async def seed_registry(runtime: Runtime, assets: Sequence[str]) -> None:
    store = runtime.registry_store
    source = SourceRef(topic="bench", partition=0, offset=0, value_base64="e30=")

    def commit(n: int, asset_id: str) -> Callable[[], Awaitable[bool]]:
        state = register(None, registration(asset_id, n), source).state
        return lambda: store.commit(asset_id, 0, state, {})

    await bounded(commit(n, a) for n, a in enumerate(assets))


class Events:
    """Performance events of the run, with an offset sequence per partition."""

    def __init__(self, runtime: Runtime, partitions: int) -> None:
        self._metrics = runtime.metrics_store
        self._partitions = partitions
        self._next = [0] * partitions
        self._ids = 0

    def row(self, asset_id: str, t: float, impressions: int, clicks: int) -> PerfRow:
        self._ids += 1
        channel = CHANNELS[zlib.crc32(asset_id.encode()) % len(CHANNELS)]
        return PerfRow(
            f"b{self._ids}", asset_id, channel.value, "c1", int(t), impressions, clicks, 0, 0, 0, 0
        )

    async def apply(self, rows: Sequence[PerfRow], now: float) -> None:
        by_partition: dict[int, list[PerfRow]] = {}
        for row in rows:
            by_partition.setdefault(partition_of(row[1], self._partitions), []).append(row)

        async def one(partition: int, batch: list[PerfRow]) -> None:
            await self._metrics.point(partition, sorted({r[1] for r in batch}))
            for start in range(0, len(batch), STEP):
                step = batch[start : start + STEP]
                first = self._next[partition]
                self._next[partition] += len(step)
                await self._metrics.apply(partition, first, first + len(step) - 1, step, now)

        await asyncio.gather(*(one(p, b) for p, b in by_partition.items()))


def totals_of(row: PerfRow, now: float) -> dict[Window, WindowTotals]:
    """The windows of the boards that hold this one event, at `now`, with its sums."""
    sums = Totals(*row[5:])
    one = WindowTotals(by_channel={Channel(row[2]): sums}, by_campaign={row[3]: sums})
    windows = {Window.LIFETIME: one}
    for window in (Window.DAY, Window.WEEK):
        resolution, starts = window_buckets(window, now)
        if resolution.start(row[4]) in starts:
            windows[window] = one
    return windows


async def seed_boards(runtime: Runtime, rows: Sequence[PerfRow], now: float) -> None:
    boards = runtime.leaderboard_store

    def place(row: PerfRow) -> Callable[[], Awaitable[None]]:
        return lambda: boards.place(row[1], LIBRARY, None, totals_of(row, now))

    await bounded(place(row) for row in rows)


# --- measuring -------------------------------------------------------------------------


async def refresh_run(
    runtime: Runtime, events: Events, assets: Sequence[str], seeded_at: float
) -> RefreshRun:
    """One run after `assets` changed, at the seeding's hour (so that it never sweeps)."""
    now = time.time()
    await events.apply([events.row(a, now - 30, 1000, 10) for a in assets], now)
    started = time.perf_counter()
    recomputed = await runtime.leaderboards.refresh(seeded_at)
    return RefreshRun(len(assets), recomputed, time.perf_counter() - started)


async def change_to_board(
    runtime: Runtime, events: Events, assets: Sequence[str], interval: float, rng: random.Random
) -> list[float]:
    """For each asset in turn: one more event at a random moment, then the seconds until
    its entry on the 24h board counts it."""
    redis, keys = runtime.redis, Keys(runtime.settings.redis_key_prefix)
    board = keys.board(LIBRARY, Window.DAY.value, None)
    delays = []
    for asset_id in assets:
        await asyncio.sleep(rng.uniform(0, interval))
        before = await redis.hget(board, asset_id)
        seen = 0 if before is None else decode_board_entry(before).impressions
        now = time.time()
        await events.apply([events.row(asset_id, now - 5, 777, 7)], now)
        applied = time.perf_counter()
        deadline = applied + 10 * interval + 60
        while time.perf_counter() < deadline:
            entry = await redis.hget(board, asset_id)
            if entry is not None and decode_board_entry(entry).impressions == seen + 777:
                break
            await asyncio.sleep(0.02)
        else:
            raise RuntimeError(f"{asset_id}: its event never reached the 24h board")
        delays.append(time.perf_counter() - applied)
    return delays


async def sweeps(runtime: Runtime, next_hour: float, moved: set[str]) -> tuple[Sweep, Sweep, bool]:
    """The sweep at `next_hour` as it is (from the last hour's) and as it was (every
    ranked asset); the moved set is emptied after each."""
    redis, keys = runtime.redis, Keys(runtime.settings.redis_key_prefix)
    refresher, boards = runtime.leaderboards, runtime.leaderboard_store
    results = []
    for swept in (int(next_hour) // HOUR - 1, None):
        if swept is None:
            await redis.delete(keys.boards_swept_hour)
        else:
            await boards.set_swept_hour(swept)
        started = time.perf_counter()
        await refresher.sweep(next_hour)
        seconds = time.perf_counter() - started
        queued: set[str] = await redis.smembers(keys.boards_moved)
        results.append((Sweep(len(queued), seconds), queued))
        await redis.delete(keys.boards_moved)
    (now_sweep, queued_now), (before_sweep, _) = results
    return now_sweep, before_sweep, queued_now == moved


async def label_reads(runtime: Runtime, asset_id: str, times: int = 5) -> list[float]:
    """What a label costs on the 24h board for all channels: the board's pool (summed on
    the first read, then kept) and the asset's own entry; ms per read, first read first."""
    boards, least = runtime.leaderboard_store, runtime.settings.leaderboard_min_impressions
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        pool = await boards.pool(LIBRARY, Window.DAY, None, least)
        own = await boards.entry(LIBRARY, Window.DAY, None, asset_id)
        if own is not None:
            pool.without(own, least)
        spent.append((time.perf_counter() - started) * 1000)
    return spent


async def top_reads(runtime: Runtime, times: int = 5) -> list[float]:
    """What the library's 24h CTR top list costs, as `GET /v1/libraries/{id}/top` reads
    it: ranked from the whole board on the first read, then kept; ms per read."""
    least = runtime.settings.leaderboard_min_impressions
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        await runtime.leaderboard_store.top(LIBRARY, Window.DAY, None, lb.RankMetric.CTR, least)
        spent.append((time.perf_counter() - started) * 1000)
    return spent


async def measure(plan: BoardPlan, settings: Settings, names: RunNames) -> BoardFigures:
    rng = random.Random(plan.seed)
    await ensure_topics(settings)
    stop = asyncio.Event()
    producer = await started_producer(settings, stop)
    assert producer is not None
    runtime = Runtime.build(settings, KafkaProducer(producer))
    refresher: WorkerProcess | None = None
    try:
        assets = [f"asset-{n:06d}" for n in range(plan.assets)]
        now = time.time()
        hour = int(now) // HOUR * HOUR
        leaving = hour - 23 * HOUR  # the hour the 24h window drops at the next hour
        moved = set(rng.sample(assets, int(plan.assets * plan.moved_share)))
        events = Events(runtime, plan.partitions)
        rows = [
            events.row(
                a,
                rng.uniform(leaving, leaving + HOUR - 1)
                if a in moved
                else rng.uniform(max(now - 5 * 86_400, leaving + HOUR), now - 60),
                rng.randint(200, 5000),
                rng.randint(0, 150),
            )
            for a in assets
        ]
        seed: dict[str, float] = {}
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("registry", lambda: seed_registry(runtime, assets)),
            ("metrics", lambda: events.apply(rows, now)),
            ("boards", lambda: seed_boards(runtime, rows, now)),
        ]
        for name, step in steps:
            started = time.perf_counter()
            await step()
            seed[name] = time.perf_counter() - started
            print(f"seeded {name} of {plan.assets:,} assets in {seed[name]:.1f} s", flush=True)
        keys = Keys(settings.redis_key_prefix)
        await runtime.redis.delete(*(keys.perf_dirty(p) for p in range(plan.partitions)))
        await runtime.leaderboard_store.set_swept_hour(int(now) // HOUR)

        steady = [a for a in assets if a not in moved]
        runs = []
        for count in (100, 1_000):
            run = await refresh_run(runtime, events, rng.sample(steady, count), now)
            runs.append(run)
            print(f"refresh of {count:,} changed assets: {run.seconds:.2f} s", flush=True)

        env = {
            **settings_env(settings),
            "MEDIA_LEADERBOARD_REFRESH_SECONDS": str(plan.interval),
        }
        refresher = WorkerProcess(env, STACK_DIR / f"{names.namespace}-refresher.log", "refresher")
        refresher.start()
        await wait_for_lease(runtime, refresher)
        visible = await change_to_board(
            runtime, events, rng.sample(steady, plan.changes), plan.interval, rng
        )
        print(f"change to board: max {max(visible):.2f} s, every {plan.interval} s", flush=True)
        refresher.stop(signal.SIGTERM)
        refresher = None

        now_sweep, before_sweep, exact = await sweeps(runtime, hour + HOUR + 60, moved)
        print(f"sweep: {now_sweep.queued:,} vs {before_sweep.queued:,} assets", flush=True)
        reads = await top_reads(runtime)
        labels = await label_reads(runtime, steady[0])
        return BoardFigures(
            run=names.run_id,
            date=f"{names.started_at:%Y-%m-%d %H:%M} UTC",
            revision=await asyncio.to_thread(report.git_revision),
            plan=asdict(plan),
            seed_seconds=seed,
            runs=runs,
            interval=plan.interval,
            visible_seconds=visible,
            sweep_now=now_sweep,
            sweep_before=before_sweep,
            sweep_exact=exact,
            top_read_ms=reads,
            label_read_ms=labels,
        )
    finally:
        if refresher is not None:
            refresher.kill()
        await runtime.close()
        await producer.stop()


async def wait_for_lease(runtime: Runtime, refresher: WorkerProcess, seconds: float = 60) -> None:
    lease = Keys(runtime.settings.redis_key_prefix).boards_refresh_lease
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        refresher.check_alive()
        holder = await runtime.redis.get(lease)
        if holder is not None and holder.startswith("refresher:"):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the refresher did not take the refresh lease within {seconds} s")


# --- the report ------------------------------------------------------------------------


def markdown(f: BoardFigures) -> str:
    runs = "\n".join(
        f"| {r.changed:,} | {r.recomputed:,} | {r.seconds:.2f} | {r.ms_per_asset:.2f} |"
        for r in f.runs
    )
    seeded = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in f.seed_seconds.items())
    visible = sorted(f.visible_seconds)
    implied_now = f.sweep_now.queued * f.ms_per_asset / 1000
    implied_before = f.sweep_before.queued * f.ms_per_asset / 1000
    assets = f.plan["assets"]
    lines = [
        f"Run `{f.run}` ({f.date}, code `{f.revision}`): one library of {assets:,} ranked "
        f"assets, {f.plan['partitions']} partitions; seeded in {seeded}.",
        "",
        "| changed assets | recomputed | refresh run s | ms per asset |",
        "|---|---|---|---|",
        runs,
        "",
        f"- **Change to board** (`service refresher` every {f.interval:g} s, {len(visible)} "
        f"changes at random moments): p50 {statistics.median(visible):.2f} s, max "
        f"{visible[-1]:.2f} s from the event applied to the asset's entry on the 24h board.",
        f"- **Hourly sweep**: {f.sweep_now.queued:,} assets queued in "
        f"{f.sweep_now.seconds * 1000:,.0f} ms (those counted in the hour that leaves the 24h "
        f"window; the same as the seeded ones: {'yes' if f.sweep_exact else 'NO'}), against "
        f"{f.sweep_before.queued:,} in {f.sweep_before.seconds * 1000:,.0f} ms for every "
        f"ranked asset (the sweep before): about {implied_now:,.0f} s of refresh against "
        f"{implied_before:,.0f} s at {f.ms_per_asset:.2f} ms per asset, "
        f"{f.sweep_before.queued / max(f.sweep_now.queued, 1):,.0f} times less work.",
        f"- **Top list read** (the 24h CTR top list, as `GET /v1/libraries/{{id}}/top` reads "
        f"it): {f.top_read_ms[0]:,.0f} ms the first time (it ranks the whole board), then "
        f"{statistics.median(f.top_read_ms[1:]):.3f} ms (median of {len(f.top_read_ms) - 1}) "
        "while the list is kept.",
        f"- **Label read** (the 24h board's pool and the asset's entry, as "
        f"`GET /v1/assets/{{id}}/metrics` labels a channel): {f.label_read_ms[0]:,.0f} ms "
        f"the first time (it sums the board), then "
        f"{statistics.median(f.label_read_ms[1:]):.2f} ms (median of "
        f"{len(f.label_read_ms) - 1}) while the pool is kept.",
        "",
        "Reproduce: `make bench-boards` (options: `BOARDS_ARGS=--help`).",
    ]
    return "\n".join(lines)


def update_docs(figures: BoardFigures, path: Path = report.DOCS) -> None:
    report.rewrite_block(MARKERS, markdown(figures), path)


async def run(plan: BoardPlan, write_docs: bool) -> int:
    names = RunNames.new()
    settings = process_settings(
        names, "boards", Plan(partitions=plan.partitions), web_port=free_port()
    ).model_copy(update={"leaderboard_refresh_seconds": plan.interval})
    redis = connect(settings)
    print(f"board benchmark {names.namespace}: {plan}", flush=True)
    try:
        await preflight(settings, redis)
        try:
            figures = await measure(plan, settings, names)
        finally:
            for line in await cleanup.clean_up(settings, redis, names, []):
                print(f"cleanup: {line}", flush=True)
    finally:
        await redis.aclose()
    print("\n" + markdown(figures))
    path = STACK_DIR / f"{names.namespace}-boards.json"
    data = asdict(figures)
    data["ms_per_asset"] = figures.ms_per_asset
    path.write_text(json.dumps(data, indent=2))
    print(f"\nresult: {path}")
    if write_docs:
        update_docs(figures)
        print(f"updated {report.DOCS.relative_to(report.ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    defaults = BoardPlan()
    parser = argparse.ArgumentParser(prog="python -m bench.boards", description=__doc__)
    parser.add_argument("--assets", type=int, default=defaults.assets)
    parser.add_argument("--interval", type=float, default=defaults.interval)
    parser.add_argument("--changes", type=int, default=defaults.changes)
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    plan = BoardPlan(assets=args.assets, interval=args.interval, changes=args.changes)
    return asyncio.run(run(plan, write_docs=not args.no_docs))


if __name__ == "__main__":
    sys.exit(main())
