"""deploy/stack.sh's command line, without touching the running stack.

Every call gets an empty state directory of its own, so no pid file of the shared
stack is ever read and nothing is started or killed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "stack.sh"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={"PATH": "/usr/bin:/bin", "STACK_DIR": str(tmp_path / "stack")},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "args",
    [(), ("restart",), ("kill",), ("kill", "zookeeper"), ("start", "redis", "kafka"), ("up", "x")],
)
def test_a_wrong_command_prints_the_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert "kill redis|kafka" in result.stderr and "start redis|kafka" in result.stderr
    assert "SIGKILL" in result.stderr


@pytest.mark.parametrize("server", ["redis", "kafka"])
def test_killing_a_server_that_does_not_run_fails_and_says_how_to_start_it(
    tmp_path: Path, server: str
) -> None:
    result = run(tmp_path, "kill", server)
    assert result.returncode == 1
    assert f"{server} is not running" in result.stderr
    assert f"start {server}" in result.stderr


def test_the_local_redis_is_started_as_the_service_requires() -> None:
    text = SCRIPT.read_text()
    for option in ("--maxmemory-policy noeviction", "--appendonly yes", "--appendfsync everysec"):
        assert option in text
