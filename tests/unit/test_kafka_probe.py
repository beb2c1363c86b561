"""deploy/kafka_probe.py, the Kafka readiness probe of deploy/stack.sh, without a broker.

A fake broker on a free loopback port answers the two requests the probe makes; the
local stack is never touched.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import kafka_probe

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "deploy" / "kafka_probe.py"
STACK = ROOT / "deploy" / "stack.sh"


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def metadata_body(brokers: list[tuple[int, str, int]], cluster_id: str | None) -> bytes:
    """A Metadata v4 response body after the correlation id."""
    body = struct.pack(">ii", 0, len(brokers))  # throttle_time_ms, brokers
    for node_id, host, port in brokers:
        body += struct.pack(">i", node_id) + _string(host) + struct.pack(">i", port)
        body += _string(None)  # rack
    body += _string(cluster_id) + struct.pack(">ii", 1, 0)  # controller_id, no topics
    return body


class FakeBroker:
    """Answers ApiVersions and Metadata like a broker with `brokers` brokers."""

    def __init__(self, brokers: int = 1, api_versions_error: int = 0) -> None:
        self.brokers = brokers
        self.api_versions_error = api_versions_error
        self.requests: list[tuple[int, int, bytes]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return  # closed
            with connection:
                try:
                    while self._answer(connection):
                        pass
                except OSError:
                    pass

    def _answer(self, connection: socket.socket) -> bool:
        head = connection.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return False
        (size,) = struct.unpack(">i", head)
        request = connection.recv(size, socket.MSG_WAITALL)
        api_key, version, correlation_id, client_size = struct.unpack_from(">hhih", request)
        self.requests.append((api_key, version, request[10 : 10 + client_size]))
        if api_key == 18:
            body = struct.pack(">hi", self.api_versions_error, 0)
        else:
            body = metadata_body(
                [(n, "127.0.0.1", self.port) for n in range(1, self.brokers + 1)], "fake-cluster"
            )
        reply = struct.pack(">i", correlation_id) + body
        connection.sendall(struct.pack(">i", len(reply)) + reply)
        return True

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the pure parts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:19092", ("127.0.0.1", 19092)),
        ("kafka.kafka.svc:9092", ("kafka.kafka.svc", 9092)),
        ("[::1]:9092", ("::1", 9092)),
    ],
)
def test_an_address_is_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert kafka_probe.parse_address(text) == expected


@pytest.mark.parametrize("text", ["19092", ":19092", "host:", "host:port", "host:0", "h:65536"])
def test_a_wrong_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        kafka_probe.parse_address(text)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_is_a_positive_number_of_seconds(text: str) -> None:
    with pytest.raises(ValueError):
        kafka_probe.positive_seconds(text)
    assert kafka_probe.positive_seconds("0.5") == 0.5


def test_the_command_line_defaults_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    args = kafka_probe.parse_args(["127.0.0.1:19092"])
    assert args.address == ("127.0.0.1", 19092)
    assert args.timeout == kafka_probe.DEFAULT_TIMEOUT
    assert kafka_probe.parse_args(["h:1", "--timeout", "7.5"]).timeout == 7.5
    for argv in (["h:1", "--timeout", "0"], ["nohost"], []):
        with pytest.raises(SystemExit) as exit_info:
            kafka_probe.parse_args(argv)
        assert exit_info.value.code == 2
    assert "the timeout must be more than 0 seconds" in capsys.readouterr().err


def test_a_request_carries_its_size_and_header() -> None:
    encoded = kafka_probe.encode_request(3, 4, 2, b"\x01")
    client = kafka_probe.CLIENT_ID
    assert struct.unpack_from(">i", encoded)[0] == len(encoded) - 4
    assert struct.unpack_from(">hhih", encoded, 4) == (3, 4, 2, len(client))
    assert encoded[14:] == client + b"\x01"


def test_metadata_gives_the_brokers_and_cluster_id() -> None:
    body = metadata_body([(1, "a", 9092), (2, "b", 9092)], "cluster-x")
    assert kafka_probe.parse_metadata(body) == kafka_probe.Metadata(2, "cluster-x")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (metadata_body([], "c"), "no broker"),
        (metadata_body([(1, "a", 9092)], "c")[:12], "cut short"),
        (b"\x00\x00", "cut short"),
    ],
)
def test_metadata_without_a_usable_broker_fails(body: bytes, reason: str) -> None:
    with pytest.raises(kafka_probe.ProbeError, match=reason):
        kafka_probe.parse_metadata(body)


def test_an_api_versions_error_fails() -> None:
    kafka_probe.check_api_versions(struct.pack(">hi", 0, 0))
    with pytest.raises(kafka_probe.ProbeError, match="error code 35"):
        kafka_probe.check_api_versions(struct.pack(">hi", 35, 0))


# --- against a fake broker ------------------------------------------------------------


def test_a_broker_that_lists_itself_answers(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kafka_probe.main([f"127.0.0.1:{broker.port}", "--timeout", "2"]) == 0
    assert capsys.readouterr().out == "brokers=1 cluster_id=fake-cluster\n"
    assert [(key, version) for key, version, _ in broker.requests] == [(18, 0), (3, 4)]
    assert {client for _, _, client in broker.requests} == {kafka_probe.CLIENT_ID}


def test_a_broker_that_lists_no_broker_does_not_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeBroker(brokers=0)
    try:
        assert kafka_probe.main([f"127.0.0.1:{fake.port}"]) == 1
    finally:
        fake.close()
    assert capsys.readouterr().out == "ProbeError: metadata lists no broker yet\n"


def test_a_closed_port_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_probe.main([f"127.0.0.1:{_free_port()}", "--timeout", "1"]) == 1
    assert "ConnectionRefusedError" in capsys.readouterr().out


def test_the_probe_needs_only_the_standard_library(broker: FakeBroker) -> None:
    """stack.sh runs it with the system's python3, before the virtualenv exists."""
    done = subprocess.run(
        # -I: no environment, no user site; -S: no site-packages at all.
        [sys.executable, "-I", "-S", str(PROBE), f"127.0.0.1:{broker.port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "brokers=1 cluster_id=fake-cluster\n",
        "",
    )


def test_stack_status_asks_the_probe(tmp_path: Path, broker: FakeBroker) -> None:
    """`stack.sh status` with a stand-in for the broker process and the fake broker."""
    stack_dir = tmp_path / "stack"
    props = stack_dir / "kafka" / "server.properties"
    # A process whose command line names the broker's properties file, as the JVM's does.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(props)])
    try:
        stack_dir.mkdir()
        (stack_dir / "kafka.pid").write_text(f"{stand_in.pid}\n")
        done = subprocess.run(
            ["bash", str(STACK), "status"],
            env={
                "PATH": "/usr/bin:/bin",
                "STACK_DIR": str(stack_dir),
                "MEDIA_STACK_KAFKA_PORT": str(broker.port),
                "MEDIA_STACK_REDIS_PORT": str(_free_port()),
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        stand_in.kill()
        stand_in.wait()
    assert "answering=yes (brokers=1 cluster_id=fake-cluster)" in done.stdout, done
    assert done.returncode == 1  # Redis is not running
