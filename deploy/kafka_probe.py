"""Does a Kafka broker serve clients? The readiness probe of deploy/stack.sh.

    python3 deploy/kafka_probe.py HOST:PORT [--timeout SECONDS]

Speaks the Kafka protocol itself: ApiVersions (v0) and then Metadata (v4) must both
succeed, and the metadata must list at least one broker. A broker that is still starting
or is fenced lists none, so this means "clients can use it", not merely "the port is
open". Prints `brokers=N cluster_id=X` and exits 0, or prints why not and exits 1
(2 for a wrong command line).

Only the standard library: `deploy/stack.sh up` runs it with the system's python3,
before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import math
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

CLIENT_ID = b"stack-probe"
API_VERSIONS = (18, 0)  # (api key, version)
METADATA = (3, 4)
DEFAULT_TIMEOUT = 3.0

T = TypeVar("T")


class ProbeError(Exception):
    """The broker answered, but not as a broker that serves clients."""


@dataclass(frozen=True)
class Metadata:
    brokers: int
    cluster_id: str | None


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port`, as a (host, port) pair."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def positive_seconds(text: str) -> float:
    """A timeout: a finite number of seconds above zero."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{text!r}: the timeout must be more than 0 seconds")
    return seconds


def encode_request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    """A size-prefixed request with a v1 header (api key, version, correlation id, client)."""
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    message = header + body
    return struct.pack(">i", len(message)) + message


def _string(data: bytes, pos: int) -> tuple[str | None, int]:
    """A nullable int16-length string at pos, and the position after it."""
    (size,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if size < 0:
        return None, pos
    if pos + size > len(data):
        raise ProbeError("metadata response cut short")
    return data[pos : pos + size].decode(), pos + size


def check_api_versions(body: bytes) -> None:
    """The ApiVersions v0 response body (after the correlation id) has no error."""
    if len(body) < 2:
        raise ProbeError("ApiVersions response cut short")
    (error,) = struct.unpack_from(">h", body)
    if error:
        raise ProbeError(f"ApiVersions error code {error}")


def parse_metadata(body: bytes) -> Metadata:
    """The brokers and cluster id of a Metadata v4 response body (after the correlation id)."""
    try:
        pos = 4  # throttle_time_ms
        (brokers,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(brokers):
            pos += 4  # node_id
            _, pos = _string(body, pos)  # host
            pos += 4  # port
            _, pos = _string(body, pos)  # rack
        cluster_id, pos = _string(body, pos)
    except struct.error:
        raise ProbeError("metadata response cut short") from None
    if brokers < 1:
        raise ProbeError("metadata lists no broker yet")
    return Metadata(brokers, cluster_id)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buffer = b""
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            raise EOFError("connection closed by broker")
        buffer += chunk
    return buffer


def _request(sock: socket.socket, api: tuple[int, int], correlation_id: int, body: bytes) -> bytes:
    """Send a request and return its response body, after the correlation id."""
    sock.sendall(encode_request(api[0], api[1], correlation_id, body))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    if len(data) < 4 or struct.unpack_from(">i", data)[0] != correlation_id:
        raise ProbeError("correlation id mismatch")
    return data[4:]


def probe(host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Metadata:
    """Ask the broker; `timeout` bounds the connection and each reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        check_api_versions(_request(sock, API_VERSIONS, 1, b""))
        # topics = null (all of them), allow_auto_topic_creation = false
        return parse_metadata(_request(sock, METADATA, 2, struct.pack(">ib", -1, 0)))


def _argument(convert: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type that shows the converter's ValueError as the error message."""

    def checked(text: str) -> T:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kafka_probe.py",
        description="Exit 0 when the Kafka broker at HOST:PORT serves clients, 1 otherwise.",
    )
    parser.add_argument("address", type=_argument(parse_address), help="HOST:PORT")
    parser.add_argument(
        "--timeout",
        type=_argument(positive_seconds),
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the connection and for each reply (default {DEFAULT_TIMEOUT})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    host, port = args.address
    try:
        found = probe(host, port, args.timeout)
    except Exception as exc:  # any failure means "not answering yet"
        print(f"{type(exc).__name__}: {exc}")
        return 1
    print(f"brokers={found.brokers} cluster_id={found.cluster_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
