"""Builds the Redis client from settings: a single server or a Redis Cluster.

Security comes from the settings too: TLS with a `rediss://` URL (the server verified
against `MEDIA_REDIS_SSL_CAFILE`, or the system's CAs; a client certificate when the
server asks for one), and the ACL user and password of `MEDIA_REDIS_USERNAME` and
`MEDIA_REDIS_PASSWORD`, which win over any in the URL. The same options reach every node
of a cluster. docs/security.md lists the ACL rule the service needs.
"""

from __future__ import annotations

import ssl
from typing import Any, cast
from urllib.parse import urlsplit

import hiredis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import DataError
from redis.retry import Retry

from service.config import Settings, variable
from service.errors import ConfigurationError
from service.tls import build_ssl_context, describe_tls

# Opening a TCP connection (and the TLS handshake) never takes longer than this on a
# healthy network; a longer socket timeout would only delay noticing an unreachable Redis.
CONNECT_TIMEOUT_SECONDS = 5.0


class _PackedByHiredis(AbstractConnection):
    """Commands packed by hiredis, in C, as redis-py's synchronous client packs them.

    redis-py's asyncio connections pack in Python and join the packed buffer again for
    every argument: a metrics step of a few thousand arguments cost about 1.5 ms of the
    worker's time to pack, ten times what hiredis takes (docs/benchmarks.md). The bytes
    sent are the same."""

    def pack_command(self, *args: Any) -> list[bytes]:
        command = args[0]
        if isinstance(command, str):  # a name of two words (`CONFIG GET`) is sent as two
            args = (*command.encode().split(), *args[1:])
        elif b" " in command:
            args = (*command.split(), *args[1:])
        packable = cast(Any, args)  # hiredis's stub says a 1-tuple; it takes any length
        try:
            return [hiredis.pack_command(packable)]
        except TypeError:
            # A bytearray (hiredis takes bytes and memoryviews), or a value no command takes.
            fixed = tuple(bytes(a) if isinstance(a, bytearray) else a for a in packable)
            try:
                return [hiredis.pack_command(cast(Any, fixed))]
            except TypeError as exc:
                raise DataError(str(exc)) from None


class HiredisConnection(_PackedByHiredis, Connection):
    pass


class HiredisSSLConnection(_PackedByHiredis, SSLConnection):
    pass


def connect(settings: Settings) -> Any:
    """A lazily connecting client; the first command opens the connection.

    Every command waits at most `redis_socket_timeout_seconds` for its reply, so a Redis
    that stops answering (a frozen process, a dropped network path) raises a TimeoutError,
    which the handlers treat as transient, instead of hanging a partition forever.
    """
    url = settings.redis_url.get_secret_value()
    security = security_options(settings)
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    reply_timeout = settings.redis_socket_timeout_seconds
    connect_timeout = min(CONNECT_TIMEOUT_SECONDS, reply_timeout)
    # The settings accept redis:// and rediss:// only.
    connection_class = (
        HiredisSSLConnection if urlsplit(url).scheme == "rediss" else HiredisConnection
    )
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(
            url,
            decode_responses=True,
            retry=retry,
            socket_timeout=reply_timeout,
            socket_connect_timeout=connect_timeout,
            **security,
        )
        # The cluster client takes no connection class: every node it discovers gets its
        # connections' options, class included, from this mapping.
        cluster.nodes_manager.connection_kwargs["connection_class"] = connection_class
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = connection_class
        return cluster
    return Redis.from_url(
        url,
        connection_class=connection_class,
        decode_responses=True,
        retry=retry,
        health_check_interval=30,
        socket_timeout=reply_timeout,
        socket_connect_timeout=connect_timeout,
        socket_keepalive=True,
        **security,
    )


def security_options(settings: Settings) -> dict[str, Any]:
    """The login and TLS keyword arguments of the client (none for a plain, open Redis).

    The TLS files are loaded once here, so that a CA that is not a certificate or a key
    its password does not open fails at start with the setting's name, not at the first
    command as a connection error that is retried forever.
    """
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
        if settings.redis_username is not None:
            options["username"] = settings.redis_username
    if settings.redis_uses_tls:
        key_password = (
            settings.redis_ssl_key_password.get_secret_value()
            if settings.redis_ssl_key_password is not None
            else None
        )
        build_ssl_context(  # raises ConfigurationError naming the setting
            cafile=settings.redis_ssl_cafile,
            certfile=settings.redis_ssl_certfile,
            keyfile=settings.redis_ssl_keyfile,
            key_password=key_password,
            check_hostname=settings.redis_ssl_check_hostname,
            system="redis",
        )
        if key_password is not None:
            if settings.redis_cluster:
                # redis-py's cluster client takes no key password.
                raise ConfigurationError(
                    f"{variable('redis_ssl_key_password')}: an encrypted client key is not "
                    f"supported with {variable('redis_cluster')}=true; give "
                    f"{variable('redis_ssl_keyfile')} an unencrypted key "
                    "(openssl pkey -in encrypted.key -out plain.key), readable by the "
                    "service only"
                )
            options["ssl_password"] = key_password
        options.update(
            ssl_cert_reqs="required",
            ssl_check_hostname=settings.redis_ssl_check_hostname,
            ssl_ca_certs=_path(settings.redis_ssl_cafile),
            ssl_certfile=_path(settings.redis_ssl_certfile),
            ssl_keyfile=_path(settings.redis_ssl_keyfile),
        )
    return options


def _path(value: object) -> str | None:
    return None if value is None else str(value)


def describe(settings: Settings) -> str:
    """How the client connects, for logs and `check-config`; never a password."""
    parts = ["TLS" if settings.redis_uses_tls else "plaintext"]
    if settings.redis_uses_tls:
        parts += describe_tls(
            settings.redis_ssl_cafile,
            settings.redis_ssl_certfile,
            settings.redis_ssl_check_hostname,
        )
    if settings.redis_username is not None:
        parts.append(f"as user {settings.redis_username!r}")
    elif settings.redis_password is not None:
        parts.append("with a password")
    elif "@" in settings.redis_url.get_secret_value():
        parts.append("with the login in MEDIA_REDIS_URL")
    return ", ".join(parts)


def explain(exc: BaseException, settings: Settings) -> str | None:
    """What to fix when connecting failed for a reason of security, or None."""
    text = str(exc)
    causes = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes) or (
        "CERTIFICATE_VERIFY_FAILED" in text
    ):
        return (
            "the server's certificate is not trusted, or does not name the host: set "
            f"{variable('redis_ssl_cafile')} to the CA certificate (PEM) that signed it, and "
            f"connect by a name the certificate lists"
        )
    if "WRONGPASS" in text or "invalid username-password" in text:
        return (
            "Redis refused the login: check "
            f"{variable('redis_username')} and {variable('redis_password')}"
        )
    if "NOAUTH" in text or "Authentication required" in text:
        return (
            f"Redis requires a login: set {variable('redis_password')} (and "
            f"{variable('redis_username')} for an ACL user)"
        )
    if "NOPERM" in text or "no permissions" in text:
        return (
            "the Redis user lacks a permission the service needs: grant the rule in "
            "docs/security.md"
        )
    if settings.redis_uses_tls and any(isinstance(c, ssl.SSLError) for c in causes):
        return (
            f"TLS failed ({text}): the port may be plaintext (use redis://), or may require "
            f"a client certificate ({variable('redis_ssl_certfile')})"
        )
    if not settings.redis_uses_tls and (
        "Connection closed by server" in text or "reset" in text.lower()
    ):
        return "the server closed the connection: it may expect TLS (use a rediss:// URL)"
    return None
