"""The service worker as a separate process, as it runs in production.

`python -m service worker` with the given settings in its environment; its output
goes to a log file. The benchmark and the end-to-end tests (tests/e2e/worker.py
adds the HTTP side) both run workers through this one class.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bench.resources import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
STOP_SECONDS = 60


class WorkerExited(RuntimeError):
    """The worker process ended while it was expected to run."""


class WorkerIgnoredStop(RuntimeError):
    """The worker did not end within the time after its stop signal (it was killed)."""


class WorkerProcess:
    """Starts, watches and stops one `service worker` process (or another long-running
    command of the service, such as `refresher`)."""

    def __init__(self, env: dict[str, str], log_path: Path, command: str = "worker") -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the worker was not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check_alive(self) -> None:
        """Raise with the end of its log if the worker has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise WorkerExited(
                f"the worker exited with status {self.process.returncode}; "
                f"end of {self.log_path}:\n{self.tail()}"
            )

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, sig: int = signal.SIGINT, seconds: float = STOP_SECONDS) -> int:
        """Send `sig` (Ctrl-C by default: a clean shutdown) and return the exit status;
        kill it and raise WorkerIgnoredStop if it does not end within `seconds`."""
        process = self.process
        assert process is not None, "the worker was not started"
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise WorkerIgnoredStop(
                f"the worker ignored signal {sig} for {seconds:g} s (killed); "
                f"end of {self.log_path}:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL, also when it is frozen (SIGSTOP), and wait until it is gone."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
