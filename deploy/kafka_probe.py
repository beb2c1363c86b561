"""Does a Kafka broker serve clients? The readiness probe of deploy/stack.sh.

    python3 deploy/kafka_probe.py HOST:PORT [--timeout SECONDS]

Speaks the Kafka protocol itself: ApiVersions (v0) and then Metadata (v4) must both
succeed, and the metadata must list at least one broker. A broker that is still starting
or is fenced lists none, so this means "clients can use it", not merely "the port is
open". Prints `brokers=N cluster_id=X` and exits 0, or prints why not and exits 1
(2 for a wrong command line or settings).

It connects as the service would, with the service's settings from the environment:
`MEDIA_KAFKA_SECURITY_PROTOCOL` (SSL and SASL_SSL wrap the connection in TLS, verified
against `MEDIA_KAFKA_SSL_CAFILE`, with the client certificate of `MEDIA_KAFKA_SSL_CERTFILE`,
`_KEYFILE` and `_KEY_PASSWORD`), and for SASL_* a login (SaslHandshake v1,
SaslAuthenticate v1) with `MEDIA_KAFKA_SASL_MECHANISM` (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) as `MEDIA_KAFKA_SASL_USERNAME`. The password never reaches the output.

Only the standard library: `deploy/stack.sh up` runs it with the system's python3,
before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import math
import os
import socket
import ssl
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

CLIENT_ID = b"stack-probe"
API_VERSIONS = (18, 0)  # (api key, version)
METADATA = (3, 4)
SASL_HANDSHAKE = (17, 1)
SASL_AUTHENTICATE = (36, 1)
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
DEFAULT_TIMEOUT = 3.0

T = TypeVar("T")


class ProbeError(Exception):
    """The broker answered, but not as a broker that serves clients."""


@dataclass(frozen=True)
class Metadata:
    brokers: int
    cluster_id: str | None


@dataclass(frozen=True)
class Security:
    """How to connect: the service's MEDIA_KAFKA_* security settings."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    key_password: str | None = None
    check_hostname: bool = True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Security:
        def get(name: str) -> str | None:
            return environ.get(f"MEDIA_KAFKA_{name}") or None

        protocol = (get("SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"MEDIA_KAFKA_SECURITY_PROTOCOL={protocol} is not supported")
        security = cls(
            protocol=protocol,
            mechanism=(get("SASL_MECHANISM") or "").upper() or None,
            username=get("SASL_USERNAME"),
            password=get("SASL_PASSWORD"),
            cafile=get("SSL_CAFILE"),
            certfile=get("SSL_CERTFILE"),
            keyfile=get("SSL_KEYFILE"),
            key_password=get("SSL_KEY_PASSWORD"),
            check_hostname=(get("SSL_CHECK_HOSTNAME") or "true").lower() not in ("false", "0"),
        )
        if security.sasl and (
            security.mechanism not in ("PLAIN", *SCRAM_HASHES)
            or security.username is None
            or security.password is None
        ):
            raise ValueError(
                f"{protocol} needs MEDIA_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, "
                "SCRAM-SHA-512), MEDIA_KAFKA_SASL_USERNAME and MEDIA_KAFKA_SASL_PASSWORD"
            )
        return security

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        context.check_hostname = self.check_hostname
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile, password=self.key_password)
        return context


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


def _kafka_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def check_handshake(body: bytes, mechanism: str) -> None:
    """The SaslHandshake v1 response: no error, or the mechanisms the broker offers."""
    (error,) = struct.unpack_from(">h", body)
    if error:
        offered = []
        try:
            (count,) = struct.unpack_from(">i", body, 2)
            pos = 6
            for _ in range(max(count, 0)):
                name, pos = _string(body, pos)
                offered.append(name or "")
        except (struct.error, ProbeError):
            pass
        raise ProbeError(
            f"the broker does not offer SASL mechanism {mechanism} "
            f"(it offers {', '.join(offered) or 'none'}; error code {error})"
        )


def parse_authenticate(body: bytes) -> bytes:
    """The server's bytes of a SaslAuthenticate v1 response, or the refusal as an error."""
    try:
        (error,) = struct.unpack_from(">h", body)
        message, pos = _string(body, 2)
        (size,) = struct.unpack_from(">i", body, pos)
        data = body[pos + 4 : pos + 4 + max(size, 0)]
    except struct.error:
        raise ProbeError("SaslAuthenticate response cut short") from None
    if error:
        raise ProbeError(f"login refused (error code {error}): {message or 'no message'}")
    return data


def scram_login(
    exchange: Callable[[bytes], bytes],
    mechanism: str,
    user: str,
    password: str,
    nonce: str | None = None,
) -> None:
    """The client side of SCRAM (RFC 5802) over `exchange` (send bytes, get the answer).

    `nonce` is for tests (RFC 7677's example); a login draws a fresh one."""
    digest = SCRAM_HASHES[mechanism]
    nonce = nonce or base64.b64encode(os.urandom(24)).decode()
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={nonce}"
    server_first = exchange(f"n,,{first_bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(",") if "=" in item)
    if not fields.get("r", "").startswith(nonce) or "s" not in fields or "i" not in fields:
        raise ProbeError("unexpected SCRAM server-first message")
    salted = hashlib.pbkdf2_hmac(
        digest, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = hashlib.new(digest, client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"  # biws: base64 of the GS2 header "n,,"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    server_final = exchange(f"{without_proof},p={proof.decode()}".encode()).decode()
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    expected = base64.b64encode(hmac.new(server_key, auth_message, digest).digest()).decode()
    if server_final != f"v={expected}":
        raise ProbeError("the broker's SCRAM signature does not match: not the expected broker")


def login(sock: socket.socket, security: Security, correlation_id: int) -> int:
    """SaslHandshake and SaslAuthenticate; returns the next free correlation id."""
    mechanism = security.mechanism or ""
    check_handshake(
        _request(sock, SASL_HANDSHAKE, correlation_id, _kafka_string(mechanism)), mechanism
    )
    ids = iter(range(correlation_id + 1, correlation_id + 10))

    def exchange(data: bytes) -> bytes:
        body = struct.pack(">i", len(data)) + data
        return parse_authenticate(_request(sock, SASL_AUTHENTICATE, next(ids), body))

    assert security.username is not None and security.password is not None
    if mechanism == "PLAIN":
        exchange(f"\0{security.username}\0{security.password}".encode())
    else:
        scram_login(exchange, mechanism, security.username, security.password)
    return next(ids)


def probe(
    host: str, port: int, timeout: float = DEFAULT_TIMEOUT, security: Security | None = None
) -> Metadata:
    """Ask the broker; `timeout` bounds the connection and each reply."""
    security = security or Security()
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = security.context().wrap_socket(raw, server_hostname=host) if security.tls else raw
        with sock:
            sock.settimeout(timeout)
            check_api_versions(_request(sock, API_VERSIONS, 1, b""))
            correlation_id = login(sock, security, 2) if security.sasl else 2
            # topics = null (all of them), allow_auto_topic_creation = false
            request = struct.pack(">ib", -1, 0)
            return parse_metadata(_request(sock, METADATA, correlation_id, request))


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
        security = Security.from_environment(os.environ)
    except ValueError as exc:
        print(f"invalid settings: {exc}")
        return 2
    try:
        found = probe(host, port, args.timeout, security)
    except Exception as exc:  # any failure means "not answering yet"
        print(f"{type(exc).__name__}: {exc}")
        return 1
    print(f"brokers={found.brokers} cluster_id={found.cluster_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
