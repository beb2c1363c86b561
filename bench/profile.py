"""A py-spy profile of the running worker, boiled down to where its time goes.

py-spy samples the worker's Python stacks from outside (100 times a second), so
the worker runs unmodified. It is optional: `pip install py-spy` into the
virtualenv (it is deliberately not a project dependency), or the run says it
skipped the profile. The raw collapsed stacks are kept next to the JSON result
(a flame graph tool such as flamegraph.pl or speedscope draws them).

Samples whose innermost frame waits (the event loop's `select`, a thread's lock
or condition) count as idle; the rest are attributed to the innermost function
("own time") and to every function on the stack ("total time"). The share of
busy samples per thread says whether a process is bound by its own CPU (its
event loop thread busy nearly all the time) or waits on something else.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Innermost frames that mean "waiting": the event loop, or a thread blocked on a lock.
IDLE_FUNCTIONS = frozenset(
    {
        "select",
        "EpollSelector.select",
        "KqueueSelector.select",
        "wait",
        "Condition.wait",
        "Event.wait",
        "_wait_for_tstate_lock",
        "Thread.join",
        "sleep",
    }
)
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \(\w+\): ?(?P<name>.*)$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str

    def __str__(self) -> str:
        return f"{self.function} ({self.file})"


@dataclass
class Profile:
    """Sample counts: in total, idle, by thread, by own and by total time."""

    samples: int = 0
    idle: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    threads_busy: Counter[str] = field(default_factory=Counter)
    own: Counter[Frame] = field(default_factory=Counter)
    total: Counter[Frame] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)

    @property
    def busy(self) -> int:
        return self.samples - self.idle

    def share(self, count: int) -> float:
        """A count as a fraction of the busy samples."""
        return count / self.busy if self.busy else 0.0


def find_py_spy() -> str | None:
    """py-spy on PATH or next to this interpreter (a virtualenv's bin/)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


async def record(py_spy: str, pid: int, seconds: int, out: Path) -> Profile:
    """Sample the process for `seconds` and parse the collapsed stacks."""
    process = await asyncio.create_subprocess_exec(
        py_spy,
        *("record", "--threads", "--idle", "--format", "raw"),
        *("--duration", str(seconds), "--pid", str(pid), "--output", str(out)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed ({process.returncode}): {output.decode()[-2000:]}")
    return parse(await asyncio.to_thread(out.read_text))


def parse(collapsed: str) -> Profile:
    """Aggregate `frame;frame;... count` lines (outermost frame first)."""
    profile = Profile()
    for line in collapsed.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        names = stack_text.split(";")
        thread = _THREAD.match(names[0])
        thread_name = "?"
        if thread:
            thread_name = thread.group("name") or "?"
            names = names[1:]
        frames = [_frame(name) for name in names]
        profile.samples += count
        profile.threads[thread_name] += count
        if not frames or frames[-1].function in IDLE_FUNCTIONS:
            profile.idle += count
            continue
        profile.threads_busy[thread_name] += count
        profile.own[frames[-1]] += count
        profile.packages[package_of(frames[-1].file)] += count
        for frame in set(frames):
            profile.total[frame] += count
    return profile


def package_of(file: str) -> str:
    """`service/handlers/performance.py` -> `service`; `json/decoder.py` -> `json`."""
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def _frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    if not match:
        return Frame(text.strip(), "?")
    return Frame(match.group("function"), match.group("file"))
