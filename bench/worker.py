"""The service worker as a separate process, as it runs in production.

`python -m service worker` with the run's settings in its environment (like
tests/e2e/worker.py); its output goes to a log file under `.stack/` that the
report names when something fails.
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
    """The worker process ended while it was being measured."""


class WorkerProcess:
    """Starts, watches and stops one `service worker` process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env}
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the worker was not started"
        return self._process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "service", "worker"],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check_alive(self) -> None:
        """Raise with the end of its log if the worker has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise WorkerExited(
                f"the worker exited with status {self._process.returncode}; "
                f"end of {self.log_path}:\n{self.tail()}"
            )

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        """Ctrl-C (a clean Faust shutdown); SIGKILL if it does not end in time."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
