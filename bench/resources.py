"""CPU and memory of the processes involved, read from /proc and Redis INFO.

On a two-core machine the consumer, Redis and Kafka share the CPU, so a rate
alone does not say what limits it; the CPU seconds each process used during a
phase do (a consumer at ~100 % of one core is bound by its own Python code, a
Redis near 100 % by the script). Linux only, like the local stack.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_SECONDS = 0.5
END_WINDOW_SECONDS = 5.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mib(pid: int) -> float | None:
    """Resident set size (VmRSS) in MiB, or None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def pid_from_file(path: Path) -> int | None:
    """The pid a `deploy/stack.sh` pid file names, if that process is alive."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


@dataclass
class RssSampler:
    """Samples a process's RSS every half second, for its peak and its trend."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)

    async def run(self) -> None:
        """Sample until the process is gone (or the task is cancelled)."""
        while alive(self.pid):
            self.now()
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    def now(self) -> float:
        """A fresh sample, recorded like the periodic ones; 0 (not recorded) while the
        process has no memory to show: being exec'ed, or a zombie."""
        rss = rss_mib(self.pid)
        if rss:
            self.samples.append((time.monotonic(), rss))
        return rss or 0.0

    def peak(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max(self._between(since, until), default=0.0)

    def settled(self, until: float) -> float:
        """Median over the last END_WINDOW_SECONDS before `until`: a single sample
        swings by several MiB with the fetch buffers in flight."""
        return statistics.median(self._between(until - END_WINDOW_SECONDS, until) or [0.0])

    def series(self, every: float = 5.0) -> list[tuple[float, float]]:
        """(seconds since the first sample, MiB) about every `every` seconds, for the JSON."""
        if not self.samples:
            return []
        start, kept, last = self.samples[0][0], [], -every
        for at, rss in self.samples:
            if at - start - last >= every:
                last = at - start
                kept.append((round(last, 1), round(rss, 1)))
        return kept

    def _between(self, since: float, until: float) -> list[float]:
        return [rss for at, rss in self.samples if since <= at <= until]


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """Cumulative counters of Redis (and Kafka's CPU), to subtract around a phase."""

    redis_cpu: float
    script_calls: int
    script_usec: int
    forks: int
    kafka_cpu: float
    commands: dict[str, int]  # calls per command, those run inside scripts included

    def minus(self, before: ServerSnapshot) -> ServerSnapshot:
        commands = {
            name: calls - before.commands.get(name, 0)
            for name, calls in self.commands.items()
            if calls > before.commands.get(name, 0)
        }
        return ServerSnapshot(
            redis_cpu=self.redis_cpu - before.redis_cpu,
            script_calls=self.script_calls - before.script_calls,
            script_usec=self.script_usec - before.script_usec,
            forks=self.forks - before.forks,
            kafka_cpu=self.kafka_cpu - before.kafka_cpu,
            commands=dict(sorted(commands.items(), key=lambda item: -item[1])),
        )


async def server_snapshot(redis: Any, kafka_pid: int | None) -> ServerSnapshot:
    """Redis CPU, the calls and time of scripts (EVALSHA) and transactions (EXEC, the
    commands it runs included: the metrics step's read), commands, forks (AOF rewrites),
    Kafka's CPU. Redis is shared: whatever else runs meanwhile is counted too."""
    info = await redis.info("all")
    evalsha = info.get("cmdstat_evalsha", {})
    exec_ = info.get("cmdstat_exec", {})
    return ServerSnapshot(
        redis_cpu=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        script_calls=int(evalsha.get("calls", 0)) + int(exec_.get("calls", 0)),
        script_usec=int(evalsha.get("usec", 0)) + int(exec_.get("usec", 0)),
        forks=int(info.get("total_forks", 0)),
        kafka_cpu=cpu_seconds(kafka_pid) if kafka_pid else 0.0,
        commands={
            name.removeprefix("cmdstat_"): int(stats.get("calls", 0))
            for name, stats in info.items()
            if name.startswith("cmdstat_") and isinstance(stats, dict)
        },
    )


# --- what the metrics take in Redis, and how long a script holds it --------------------------


@dataclass(frozen=True, slots=True)
class Footprint:
    """Redis memory of one process's metrics (MEMORY USAGE, every key measured exactly)."""

    assets: int  # assets with metrics (their pointers)
    metric_bytes: int  # lifetime and bucket hashes, and the assets' pointers
    remembered_ids: int  # event ids in the partitions' tables of ids (live or stale)
    id_bytes: int  # those tables

    @property
    def bytes_per_asset(self) -> float:
        return self.metric_bytes / self.assets if self.assets else 0.0

    @property
    def bytes_per_id(self) -> float:
        return self.id_bytes / self.remembered_ids if self.remembered_ids else 0.0


async def footprint(redis: Any, prefix: str) -> Footprint:
    """Every metrics key under `prefix`: bucket and lifetime hashes, pointers, tables of
    ids (service/store/seen_ids.py: field `c` counts the entries stored)."""
    assets = metric_bytes = ids = id_bytes = 0
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = key.rsplit("}:", 1)[-1]
        if kind == "seen":
            ids += int(await redis.hget(key, "c") or 0)
            id_bytes += await redis.memory_usage(key, samples=0) or 0
        elif kind == "perf-partition":
            assets += 1
            metric_bytes += await redis.memory_usage(key, samples=0) or 0
        elif kind == "life" or kind.startswith("b:"):
            metric_bytes += await redis.memory_usage(key, samples=0) or 0
    return Footprint(assets, metric_bytes, ids, id_bytes)


SLOW_MICROSECONDS = 1000  # scripts slower than this are logged during a phase


@dataclass(frozen=True, slots=True)
class ScriptHolds:
    """Script and transaction calls that held Redis for longer than SLOW_MICROSECONDS
    during a phase."""

    slow_calls: int
    over_5ms: int
    longest_ms: float
    # script name (from the SHA in the slow log) -> its calls over 5 ms, most first
    over_5ms_by_script: dict[str, int] = field(default_factory=dict)


class SlowScripts:
    """Redis's slow log, set to keep every call over SLOW_MICROSECONDS for one phase (of
    which the scripts and transactions count), and put back as it was afterwards."""

    def __init__(self, redis: Any, names: dict[str, str] | None = None) -> None:
        """`names`: script SHA -> name, to say which scripts held Redis longest."""
        self._redis = redis
        self._names = names or {}
        self._saved: dict[str, str] = {}

    async def start(self) -> None:
        for name in ("slowlog-log-slower-than", "slowlog-max-len"):
            self._saved.update(await self._redis.config_get(name))
        await self._redis.config_set("slowlog-log-slower-than", SLOW_MICROSECONDS)
        await self._redis.config_set("slowlog-max-len", 100_000)
        await self._redis.slowlog_reset()

    async def stop(self) -> ScriptHolds:
        entries = await self._redis.slowlog_get(100_000)
        for name, value in self._saved.items():
            await self._redis.config_set(name, value)
        calls: list[tuple[int, list[str]]] = []  # script calls: duration, command words
        for entry in entries:
            words = _command(entry).split()
            if words and words[0].lower().startswith(("evalsha", "eval", "fcall", "exec")):
                calls.append((int(entry["duration"]), words))
        durations = [duration for duration, _ in calls]
        long_ones = Counter(
            _call_name(words, self._names) for duration, words in calls if duration > 5000
        )
        return ScriptHolds(
            slow_calls=len(durations),
            over_5ms=sum(long_ones.values()),
            longest_ms=max(durations, default=0) / 1000,
            over_5ms_by_script=dict(long_ones.most_common()),
        )


def _call_name(words: list[str], names: dict[str, str]) -> str:
    if words[0].lower() == "exec":
        return "MULTI/EXEC"
    return names.get(words[1], "other") if len(words) > 1 else "other"


def _command(entry: dict[str, Any]) -> str:
    command = entry.get("command", "")
    return command.decode(errors="replace") if isinstance(command, bytes) else str(command)
