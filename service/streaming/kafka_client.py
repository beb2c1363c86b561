"""How every Kafka client of the service connects: security protocol, TLS and SASL login.

The worker (through Faust), `service topics`, `service check-config`, `service dead-letter
replay`, `service demo` and the benchmark all take their connection options from here, so
one set of `MEDIA_KAFKA_*` settings secures all of them:

- `SSL` and `SASL_SSL` verify the broker's certificate against `MEDIA_KAFKA_SSL_CAFILE`
  (the system's CAs when unset) and check its host name unless
  `MEDIA_KAFKA_SSL_CHECK_HOSTNAME=false`. A client certificate and key, for brokers that
  require mutual TLS, are loaded with the key's password when it has one.
- `SASL_PLAINTEXT` and `SASL_SSL` log in with `MEDIA_KAFKA_SASL_MECHANISM` (PLAIN,
  SCRAM-SHA-256 or SCRAM-SHA-512) as `MEDIA_KAFKA_SASL_USERNAME`.

The password never leaves this module except into the client's constructor; `describe`
says what is configured without it.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from service.config import Settings, variable
from service.tls import build_ssl_context, describe_tls

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for the brokers, or None when the protocol does not use TLS.

    Raises `service.errors.ConfigurationError` when a CA, certificate or key file cannot
    be used, saying which setting names it.
    """
    if not settings.kafka_uses_tls:
        return None
    return build_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
        key_password=(
            settings.kafka_ssl_key_password.get_secret_value()
            if settings.kafka_ssl_key_password is not None
            else None
        ),
        check_hostname=settings.kafka_ssl_check_hostname,
        system="kafka",
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validator checks it
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The same options in Faust's terms (its `broker_credentials`)."""
    from faust.auth import SASLCredentials, SSLCredentials  # the worker's import, not the CLI's

    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,  # SASL_SSL with a context, SASL_PLAINTEXT without
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def describe(settings: Settings) -> str:
    """What the clients connect with, for logs and `check-config`; never a password."""
    protocol = settings.kafka_security_protocol
    parts: list[str] = [protocol]
    if protocol.startswith("SASL_"):
        parts.append(f"{settings.kafka_sasl_mechanism} as user {settings.kafka_sasl_username!r}")
    if settings.kafka_uses_tls:
        parts += describe_tls(
            settings.kafka_ssl_cafile,
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_check_hostname,
        )
    return ", ".join(parts)


async def diagnose(settings: Settings, wait_seconds: float = 10.0) -> str:
    """Why the first bootstrap server refuses the service, in words that say what to fix.

    aiokafka reports a failed bootstrap as "Unable to bootstrap from [...]" and only logs
    the reason; this opens one connection with the same options to find it. Returns
    "connected" when the connection and login succeed.
    """
    from aiokafka.conn import create_conn  # the connection aiokafka's own clients open
    from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

    host, port = first_bootstrap_server(settings)
    options = client_options(settings)
    del options["bootstrap_servers"]
    try:
        connection = await create_conn(
            host, port, request_timeout_ms=int(wait_seconds * 1000), **options
        )
    except ssl.SSLCertVerificationError as exc:
        cafile = variable("kafka_ssl_cafile")
        if "hostname" in str(exc.verify_message or ""):
            return (
                f"the broker's certificate does not name {host} ({exc.verify_message}): "
                "connect by a name the certificate lists, or, only if you must, set "
                f"{variable('kafka_ssl_check_hostname')}=false"
            )
        return (
            f"the broker's certificate is not trusted ({exc.verify_message}): set {cafile} "
            "to the CA certificate (PEM) that signed it"
        )
    except ssl.SSLError as exc:
        return (
            f"TLS with {host}:{port} failed ({exc.reason or exc}): check that the port "
            f"serves TLS and {variable('kafka_security_protocol')}"
        )
    except SaslAuthenticationFailed:
        return (
            f"Kafka refused the login of user {settings.kafka_sasl_username!r} with "
            f"{settings.kafka_sasl_mechanism}: check {variable('kafka_sasl_username')}, "
            f"{variable('kafka_sasl_password')} and {variable('kafka_sasl_mechanism')}"
        )
    except (KafkaConnectionError, OSError, TimeoutError) as exc:
        if "closed" in str(exc) and not settings.kafka_uses_tls:
            return (
                f"{host}:{port} closed the connection: the listener may expect TLS or a "
                f"login; set {variable('kafka_security_protocol')} (SSL, SASL_SSL, "
                "SASL_PLAINTEXT) to what the broker's listener uses"
            )
        if "closed" in str(exc) and settings.kafka_ssl_certfile is None:
            return (
                f"{host}:{port} closed the connection after TLS: the broker may require a "
                f"client certificate ({variable('kafka_ssl_certfile')} and "
                f"{variable('kafka_ssl_keyfile')})"
            )
        if isinstance(exc, ConnectionResetError) and settings.kafka_uses_tls:
            return (
                f"{host}:{port} reset the TLS handshake: the listener may be plaintext; set "
                f"{variable('kafka_security_protocol')} to what the broker's listener uses"
            )
        return f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})"
    except Exception as exc:
        return f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})"
    connection.close()
    return "connected"


def first_bootstrap_server(settings: Settings) -> tuple[str, int]:
    """Host and port of the first of `MEDIA_KAFKA_BOOTSTRAP_SERVERS` (port 9092 if none)."""
    first = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        return first, 9092
    return host.strip("[]"), int(port)
