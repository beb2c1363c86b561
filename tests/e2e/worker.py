"""A real `service worker` process for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Worker:
    """Starts `python -m service worker` with the given MEDIA_* settings; logs go to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.port = int(env["MEDIA_WEB_PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log()}")
            try:
                status, _ = await self.get("/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.3)
        raise AssertionError(f"worker did not answer /healthz within {seconds}s:\n{self.log()}")

    async def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"

        def fetch() -> tuple[int, Any]:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        return await asyncio.to_thread(fetch)

    async def get_text(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        return await asyncio.to_thread(fetch)

    def stop(self, sig: int = signal.SIGINT, seconds: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            message = f"worker ignored signal {sig} for {seconds}s:\n{self.log()}"
            raise AssertionError(message) from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


async def eventually(check: Any, seconds: float = 60, every: float = 0.5) -> Any:
    """Wait until `await check()` returns a truthy value; fail with its last value."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {seconds}s; last value: {last!r}")
