"""The result of a run: the machine, the figures, and how they are shown and kept.

`Result` is what `.stack/bench-<run>.json` holds; `text` is the compact report
printed at the end; `update_docs` rewrites the generated block of
docs/benchmarks.md (between its `bench:latest` markers) and appends one row to
its history table, leaving the hand-written analysis around them alone.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.latency import Latency
from bench.profile import Profile
from bench.reader import Reads
from bench.resources import Footprint, ScriptHolds

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
LATEST = ("<!-- bench:latest:start -->", "<!-- bench:latest:end -->")
HISTORY = ("<!-- bench:history:start -->", "<!-- bench:history:end -->")
HISTORY_HEADER = (
    "| date (UTC) | run | events | ceiling ev/s | worker ev/s | ratio | worker from start ev/s "
    "| p50 / p99 ms | peak RSS MiB | RSS growth |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)
TOP_FUNCTIONS = 12
# Outermost frames of every sample: their total time says nothing.
ENTRY_POINTS = frozenset({"service/__main__.py", "service/cli.py"})
MEASURED_PATHS = ("service", "bench", "pyproject.toml")
GROWTH_TOLERANCE = 0.05  # RSS within 5 % after the second pass counts as stable


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    kafka: str
    redis: str
    libraries: dict[str, str]


@dataclass(frozen=True, slots=True)
class Production:
    events: int
    seconds: float
    rate: float


@dataclass(frozen=True, slots=True)
class Consumption:
    """One measured consumer: rates, start-up, and what each process spent on it."""

    events: int
    seconds: float
    rate: float
    startup_seconds: float
    steady_rate: float
    consumer_cpu_seconds: float
    redis_cpu_seconds: float
    kafka_cpu_seconds: float
    script_calls: int
    script_seconds: float
    redis_commands: dict[str, int]
    redis_forks: int
    late: int
    duplicates: int

    @property
    def commands_per_event(self) -> float:
        return sum(self.redis_commands.values()) / self.events if self.events else 0.0

    @property
    def script_us_per_event(self) -> float:
        return self.script_seconds * 1e6 / self.events if self.events else 0.0

    def cpu_share(self, seconds: float) -> float:
        """CPU seconds as a share of one core over the whole phase."""
        return seconds / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Memory:
    """The worker's RSS per pass: its peak, and its settled value when the pass ended."""

    first_peak_mib: float
    first_end_mib: float
    second_peak_mib: float
    second_end_mib: float
    second_pass_events: int
    series: list[tuple[float, float]]
    second_mid_mib: float = 0.0  # settled half-way through the second pass (0: unknown)

    @property
    def peak_mib(self) -> float:
        return max(self.first_peak_mib, self.second_peak_mib)

    @property
    def growth(self) -> float:
        return _growth(self.first_end_mib, self.second_end_mib)

    @property
    def verdict(self) -> str:
        """Growing only if both the settled value and the peak grew beyond the noise, and
        the second half of the second pass still did (otherwise it levelled off: caches
        filling up to their bounds early in the pass)."""
        peak_growth = _growth(self.first_peak_mib, self.second_peak_mib)
        grows = self.growth > GROWTH_TOLERANCE and peak_growth > GROWTH_TOLERANCE
        if not grows:
            return "stable"
        if self.second_mid_mib and _growth(self.second_mid_mib, self.second_end_mib) <= (
            GROWTH_TOLERANCE
        ):
            return f"levelled off (flat over the second half of that pass: {self.flat_text})"
        return "still grows"

    @property
    def flat_text(self) -> str:
        return f"{self.second_mid_mib:.0f} MiB half-way, {self.second_end_mib:.0f} at the end"


def _growth(before: float, after: float) -> float:
    return after / before - 1 if before else 0.0


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    seconds: int
    phase: str
    samples: int
    threads_busy: dict[str, float]
    packages: list[tuple[str, float]]
    own: list[tuple[str, float]]
    service_total: list[tuple[str, float]]
    raw_path: str

    @classmethod
    def of(cls, profile: Profile, *, seconds: int, phase: str, raw_path: Path) -> ProfileSummary:
        def shares(counter: Any, limit: int) -> list[tuple[str, float]]:
            return [(str(k), profile.share(v)) for k, v in counter.most_common(limit)]

        service_total = [
            (str(frame), profile.share(count))
            for frame, count in profile.total.most_common()
            if frame.file.startswith("service/") and frame.file not in ENTRY_POINTS
        ][:TOP_FUNCTIONS]
        return cls(
            seconds=seconds,
            phase=phase,
            samples=profile.samples,
            threads_busy={
                name: profile.threads_busy[name] / count
                for name, count in profile.threads.most_common()
            },
            packages=shares(profile.packages, 10),
            own=shares(profile.own, TOP_FUNCTIONS),
            service_total=service_total,
            raw_path=str(raw_path),
        )


@dataclass(frozen=True, slots=True)
class Result:
    run: str
    date: str
    command: str
    revision: str
    machine: Machine
    plan: dict[str, Any]
    production: Production
    ceiling: Consumption
    worker: Consumption
    memory: Memory
    latency: Latency
    profile: ProfileSummary | None
    notes: list[str]
    floor: Consumption | None = None  # reading and parsing only (bench/floor.py)
    reads: Reads | None = None  # the API reader during the worker's first pass
    api_reads: Reads | None = None  # the same reads, of an API server (`service api`)
    holds: ScriptHolds | None = None  # script calls over 1 ms during that pass
    footprint: Footprint | None = None  # Redis memory of the metrics after that pass

    @property
    def floor_share(self) -> float | None:
        """Worker over floor, without start-up: the share of a bare Python consumer's
        rate that the worker keeps while doing its work."""
        return None if self.floor is None else self.worker.steady_rate / self.floor.steady_rate

    @property
    def ratio(self) -> float:
        """Worker over ceiling, both without start-up: what running inside the service
        costs (Faust's consumer path and the worker's other duties)."""
        return self.worker.steady_rate / self.ceiling.steady_rate

    @property
    def ratio_from_start(self) -> float:
        return self.worker.rate / self.ceiling.rate


def machine(redis_version: str) -> Machine:
    """What the figures depend on; absolute rates only compare on the same machine."""
    return Machine(
        cpus=len(os.sched_getaffinity(0)),  # what `nproc` says
        cpu_model=_cpu_model(),
        memory_gib=_memory_kib() / 1024**2,
        kernel=platform.release(),
        python=platform.python_version(),
        kafka=_kafka_version(),
        redis=redis_version,
        libraries={
            name: importlib.metadata.version(name)
            for name in ("faust-streaming", "aiokafka", "redis", "hiredis", "pydantic")
        },
    )


def git_revision() -> str:
    """The commit measured, and whether the measured code (the service, the benchmark,
    the dependencies) differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", *MEASURED_PATHS],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return "unknown"
    dirty = sorted({line[3:].split("/", 1)[0] for line in status.splitlines() if line})
    return f"{head or 'unknown'}" + (
        f" + uncommitted changes in {', '.join(dirty)}" if dirty else ""
    )


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_kib() -> int:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _kafka_version() -> str:
    pom = _read(str(ROOT / "deploy" / "kafka" / "pom.xml"))
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    return match.group(1) if match else "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_json(result: Result, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(result)
    data["ratio"] = result.ratio
    data["ratio_from_start"] = result.ratio_from_start
    data["floor_share"] = result.floor_share
    memory = result.memory
    data["memory"].update(peak_mib=memory.peak_mib, growth=memory.growth, verdict=memory.verdict)
    if result.footprint is not None:
        data["footprint"].update(
            bytes_per_asset=result.footprint.bytes_per_asset,
            bytes_per_id=result.footprint.bytes_per_id,
        )
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# --- rendering ---------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def consumption_rows(result: Result) -> list[list[str]]:
    """One row per measured consumer, the same columns in the text and in the docs."""
    rows = []
    consumers = [("(a) ceiling: aiokafka + handler", result.ceiling),
                 ("(b) service worker (Faust)", result.worker)]  # fmt: skip
    if result.floor is not None:
        consumers.append(("(c) floor: aiokafka + parse only", result.floor))
    for name, c in consumers:
        rows.append(
            [
                name,
                _n(c.steady_rate),
                _n(c.rate),
                f"{c.seconds:.1f} s",
                f"{c.startup_seconds:.1f} s",
                _pct(c.cpu_share(c.consumer_cpu_seconds)),
                _pct(c.cpu_share(c.redis_cpu_seconds)),
                _pct(c.cpu_share(c.script_seconds)),
                _pct(c.cpu_share(c.kafka_cpu_seconds)),
                f"{c.script_us_per_event:.1f}",
                f"{c.commands_per_event:.1f}",
            ]
        )
    return rows


CONSUMPTION_HEADER = [
    "consumer",
    "events/s (excl. start-up)",
    "events/s (from start)",
    "time to all visible",
    "start-up",
    "consumer CPU",
    "Redis CPU",
    "in scripts and MULTI/EXEC",
    "Kafka CPU",
    "scripts and MULTI/EXEC µs/event",
    "Redis commands/event",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def memory_line(m: Memory, events: int) -> str:
    return (
        f"RSS {m.first_end_mib:.0f} MiB after {_n(events)} events (peak {m.first_peak_mib:.0f}), "
        f"{m.second_end_mib:.0f} MiB after {_n(m.second_pass_events)} more "
        f"(peak {m.second_peak_mib:.0f}; {m.growth * 100:+.1f} %): {m.verdict}"
    )


def latency_line(lat: Latency) -> str:
    delivery = (
        ""
        if lat.delivery_p50_ms is None or lat.delivery_p99_ms is None
        else f"; of which Kafka (send to a plain consumer) p50 {lat.delivery_p50_ms:.0f} ms, "
        f"p99 {lat.delivery_p99_ms:.0f} ms"
    )
    return (
        f"at {_n(lat.rate)} events/s for {lat.seconds:.0f} s: p50 {lat.p50_ms:.0f} ms, "
        f"p90 {lat.p90_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms, max {lat.max_ms:.0f} ms "
        f"({lat.seen}/{lat.probes} probes seen){delivery}"
    )


def machine_line(m: Machine) -> str:
    return (
        f"{m.cpus} CPUs ({m.cpu_model}), {m.memory_gib:.1f} GiB, Linux {m.kernel}, "
        f"Python {m.python}, Kafka {m.kafka}, Redis {m.redis}, "
        + ", ".join(f"{k} {v}" for k, v in m.libraries.items())
    )


def text(result: Result) -> str:
    """The compact report printed at the end of a run."""
    p, w = result.production, result.worker
    lines = [
        f"== benchmark {result.run} ({result.date}, code at {result.revision}) ==",
        f"machine: {machine_line(result.machine)}",
        f"produced {_n(p.events)} events in {p.seconds:.1f} s ({_n(p.rate)}/s), not measured",
        "",
    ]
    widths = [32, 12, 11, 9, 9, 9, 9, 9, 9, 10, 8]
    header = ["consumer", "ev/s steady", "ev/s total", "all seen", "start-up",
              "cons.CPU", "RedisCPU", "scr+tx", "KafkaCPU", "scr+tx µs/ev", "cmds/ev"]  # fmt: skip
    for row in [header, *consumption_rows(result)]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    lines += [
        "",
        f">>> worker / ceiling = {result.ratio:.2f} (excluding start-up; "
        f"{result.ratio_from_start:.2f} from process start) <<<",
        *floor_lines(result),
        "",
        f"late events (lifetime only): {_n(w.late)}; duplicates: {_n(w.duplicates)}",
        f"worker memory: {memory_line(result.memory, w.events)}",
        f"latency {latency_line(result.latency)}",
        *redis_lines(result),
    ]
    if result.profile:
        prof = result.profile
        lines.append(f"profile ({prof.phase}, {prof.seconds} s): busy {threads_busy(prof)}")
        lines += [f"  {share:5.1%}  {name}" for name, share in prof.own[:8]]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def markdown(result: Result) -> str:
    """The generated block of docs/benchmarks.md."""
    parts = [
        f"Run `{result.run}`, {result.date}, `{result.command}`, code at {result.revision}.",
        "",
        f"Machine: {machine_line(result.machine)}.",
        "",
        f"Workload: {_n(result.production.events)} events, {result.plan['assets']:,} assets, "
        f"{result.plan['campaigns']} campaigns, 7 channels, event time over the last "
        f"{result.plan['days']} days ({_n(result.worker.late)} late), "
        f"{result.plan['partitions']} partitions; produced in {result.production.seconds:.1f} s "
        f"({_n(result.production.rate)} events/s, not part of any measurement).",
        "",
        markdown_table(CONSUMPTION_HEADER, consumption_rows(result)),
        "",
        f"**Worker / ceiling: {result.ratio:.2f}** (excluding start-up; "
        f"{result.ratio_from_start:.2f} from process start)."
        + "".join(f" {line}" for line in floor_lines(result)),
        "",
        f"- Worker memory: {memory_line(result.memory, result.worker.events)}.",
        f"- Latency (send to visible in Redis) {latency_line(result.latency)}.",
        *(f"- {line}." for line in redis_lines(result)),
    ]
    parts += [f"- Note: {note}" for note in result.notes]
    if result.profile:
        parts += ["", profile_markdown(result.profile)]
    return "\n".join(parts)


def redis_lines(result: Result) -> list[str]:
    """API reads, long script calls and Redis memory, when the run measured them."""
    lines = []
    for reads, of in ((result.reads, "the worker"), (result.api_reads, "an API server")):
        if reads is not None:
            lines.append(
                f"API reads of {of} during the worker's first pass: {_n(reads.count)} "
                f"({len(reads.routes)} routes in turn), p50 {reads.p50_ms:.1f} ms, "
                f"p99 {reads.p99_ms:.1f} ms, max {reads.max_ms:.0f} ms, {reads.errors} errors"
                + "".join(f"; {n} x {failure}" for failure, n in reads.failures.items())
            )
    if result.holds is not None:
        h = result.holds
        which = ", ".join(f"{name} {n}" for name, n in h.over_5ms_by_script.items())
        lines.append(
            f"Script and transaction calls over 1 ms during that pass: {_n(h.slow_calls)}, "
            f"over 5 ms: {_n(h.over_5ms)}" + (f" ({which})" if which else "") + ", "
            f"longest {h.longest_ms:.1f} ms"
        )
    if result.footprint is not None:
        f = result.footprint
        lines.append(
            f"Redis memory of the metrics after that pass: {f.bytes_per_asset:,.0f} bytes per "
            f"asset ({_n(f.assets)} assets: buckets, lifetime, pointer), "
            f"{f.bytes_per_id:.1f} bytes per remembered event id ({_n(f.remembered_ids)} ids)"
        )
    return lines


def floor_lines(result: Result) -> list[str]:
    """The worker's share of the floor, when the run measured one."""
    if result.floor_share is None:
        return []
    return [f"Worker / floor (reading and parsing only) = {result.floor_share:.2f}."]


def threads_busy(prof: ProfileSummary) -> str:
    return ", ".join(f"{name} {_pct(share)}" for name, share in prof.threads_busy.items())


def profile_markdown(prof: ProfileSummary) -> str:
    return "\n".join(
        [
            f"Profile: py-spy, {prof.seconds} s during the {prof.phase}, {prof.samples:,} "
            f"samples. Share of the time each thread was busy (not waiting in `select` or on "
            f"a lock): {threads_busy(prof)}. Shares below are of all busy samples; raw "
            f"stacks: `{prof.raw_path}`.",
            "",
            "By package (own time): "
            + ", ".join(f"{name} {share:.0%}" for name, share in prof.packages)
            + ".",
            "",
            markdown_table(
                ["function (own time)", "share"],
                [[f"`{name}`", f"{share:.1%}"] for name, share in prof.own],
            ),
            "",
            markdown_table(
                ["service function (total time, callees included)", "share"],
                [[f"`{name}`", f"{share:.1%}"] for name, share in prof.service_total],
            ),
        ]
    )


def history_row(result: Result) -> str:
    lat = result.latency
    latency = f"{lat.p50_ms:.0f} / {lat.p99_ms:.0f}"
    m = result.memory
    return (
        f"| {result.date} | `{result.run}` | {_n(result.production.events)} "
        f"| {_n(result.ceiling.steady_rate)} | {_n(result.worker.steady_rate)} "
        f"| {result.ratio:.2f} | {_n(result.worker.rate)} | {latency} | {m.peak_mib:.0f} "
        f"| {m.growth * 100:+.1f} % |"
    )


def update_docs(result: Result, path: Path = DOCS) -> None:
    """Replace the latest-run block and append to the history (markers added if missing)."""
    text_ = path.read_text() if path.exists() else "# Benchmarks\n"
    text_ = _replace_block(text_, LATEST, markdown(result), title="## Latest run")
    if HISTORY[0] not in text_:
        text_ = _replace_block(text_, HISTORY, HISTORY_HEADER.rstrip("\n"), title="## History")
    end = text_.index(HISTORY[1])
    text_ = text_[:end] + history_row(result) + "\n" + text_[end:]
    path.write_text(text_)


def rewrite_block(markers: tuple[str, str], body: str, path: Path = DOCS) -> None:
    """Replace what stands between two markers of a page (a benchmark's own block)."""
    text_ = path.read_text()
    start, end = markers
    if start not in text_ or end not in text_:
        raise RuntimeError(f"{path} lacks the markers {start} and {end}")
    path.write_text(_replace_block(text_, markers, body, title=""))


def _replace_block(text_: str, markers: tuple[str, str], body: str, *, title: str) -> str:
    start, end = markers
    block = f"{start}\n{body}\n{end}"
    if start in text_ and end in text_:
        head, rest = text_.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    return text_.rstrip("\n") + f"\n\n{title}\n\n{block}\n"
