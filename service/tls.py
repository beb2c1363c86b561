"""TLS client contexts from the files the settings name, with errors that name the setting.

Kafka (`service/kafka_client.py`) and Redis (`service/store/client.py`) both verify the
server's certificate chain, always; only the host-name check can be turned off.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from service.config import variable
from service.errors import ConfigurationError


def build_ssl_context(
    *,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: str | None,
    check_hostname: bool,
    system: Literal["kafka", "redis"],
) -> ssl.SSLContext:
    """A client context that always verifies the server's certificate chain."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile is not None else None
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"{variable(f'{system}_ssl_cafile')}: {cafile} is not a usable PEM CA "
            f"certificate ({_reason(exc)})"
        ) from None
    context.check_hostname = check_hostname
    if certfile is not None:
        try:
            context.load_cert_chain(str(certfile), str(keyfile), password=key_password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                f"{variable(f'{system}_ssl_certfile')} / {variable(f'{system}_ssl_keyfile')}: "
                f"cannot load the client certificate {certfile} with key {keyfile} "
                f"({_reason(exc)}); an encrypted key needs "
                f"{variable(f'{system}_ssl_key_password')}, and the key must match the "
                "certificate"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return getattr(exc, "strerror", None) or type(exc).__name__


def describe_tls(cafile: Path | None, certfile: Path | None, check_hostname: bool) -> list[str]:
    """What a TLS connection trusts and shows, for `describe` of Kafka and Redis."""
    parts = [f"CA {cafile or 'the system CAs'}"]
    if certfile is not None:
        parts.append(f"client certificate {certfile}")
    if not check_hostname:
        parts.append("host name NOT checked")
    return parts
