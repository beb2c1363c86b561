"""A real `service worker` process for end-to-end tests, with its HTTP API."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.worker import WorkerIgnoredStop, WorkerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Worker(WorkerProcess):
    """A `service worker` process (bench/worker.py) and its HTTP API on MEDIA_WEB_PORT
    (or another command of the service, which has no API)."""

    def __init__(self, env: dict[str, str], log_path: Path, command: str = "worker") -> None:
        super().__init__(env, log_path, command)
        self.port = int(env["MEDIA_WEB_PORT"])

    async def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"worker exited early:\n{self.log()}")
            try:
                status, _ = await self.get("/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.3)
        raise AssertionError(f"worker did not answer /healthz within {seconds}s:\n{self.log()}")

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers=headers or {}
        )

        def fetch() -> tuple[int, Any]:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        return await asyncio.to_thread(fetch)

    async def get_text(self, path: str, headers: dict[str, str] | None = None) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers=headers or {}
        )

        def fetch() -> str:
            with urllib.request.urlopen(request, timeout=5) as response:
                return str(response.read().decode())

        return await asyncio.to_thread(fetch)

    def stop(self, sig: int = signal.SIGINT, seconds: float = 60) -> int:
        try:
            return super().stop(sig, seconds)
        except WorkerIgnoredStop as exc:
            raise AssertionError(str(exc)) from None

    def log(self) -> str:
        return self.tail(8000)


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
