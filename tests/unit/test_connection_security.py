"""Kafka and Redis security settings: refused when inconsistent, and turned into the same
client options for every client (the worker through Faust, the commands through aiokafka).

Certificates are made with the openssl command line, as the secure stack makes them.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from deploy.kafka_probe import ProbeError, Security, scram_login
from service.config import Settings
from service.errors import ConfigurationError
from service.store import client as redis_client
from service.streaming.kafka_client import client_options, describe, faust_credentials, ssl_context

PASSWORD = "p@ss:w/rd@x"
KEY_PASSWORD = "k@y:p/ss"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a client certificate, its key in clear and encrypted, and a file that is no PEM."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=t")
    run("req", "-new", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=c")
    run(
        *("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", "2", "-out", "client.crt"),
    )
    run(
        *("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client.key"),
        *("-out", "client.enc.key", "-passout", f"pass:{KEY_PASSWORD}"),
    )
    (d / "not-a-cert.pem").write_text("hello\n")
    return {p.name.replace(".", "_").replace("-", "_"): p for p in d.iterdir()}


def settings(**values: Any) -> Settings:
    return Settings.model_validate({**values, "_env_file": None})


def sasl_ssl(pki: dict[str, Path], **extra: Any) -> Settings:
    return settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="media",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=str(pki["ca_crt"]),
        **extra,
    )


# --- settings that cannot work are refused, naming the variables ----------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "MEDIA_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs MEDIA_KAFKA_SASL_MECHANISM, "
            "MEDIA_KAFKA_SASL_USERNAME, MEDIA_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_username": "media", "kafka_sasl_password": PASSWORD},
            "does not log in",
        ),
        ({"kafka_ssl_key_password": KEY_PASSWORD}, "does not use TLS"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nowhere/ca.crt"}, "no file"),
        ({"redis_url": "http://u:p@h:1/0"}, "must start with redis:// (plain) or rediss://"),
        ({"redis_username": "media"}, "MEDIA_REDIS_USERNAME needs MEDIA_REDIS_PASSWORD"),
        ({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "PLAIN"}, "does not log in"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ],
)
def test_inconsistent_security_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**values)
    assert message in str(refused.value)
    assert PASSWORD not in str(refused.value) and "u:p@" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://media:p@ss:w/rd@redis.internal:6379/0",  # '/' unencoded: the path begins
        "redis://media:pw@redis.internal:w0rd/0",
        "redis:///0",
    ],
)
def test_a_url_that_does_not_parse_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(redis_url=url)
    message = str(refused.value)
    assert "must be percent-encoded" in message and "MEDIA_REDIS_PASSWORD" in message
    for fragment in ("p@ss", "w/rd", "w0rd", "redis.internal"):
        assert fragment not in message


def test_an_encoded_password_and_one_with_an_at_parse() -> None:
    settings(redis_url="redis://media:p%40ss%3Aw%2Frd@redis.internal:6379/0")
    settings(redis_url="rediss://media:pa@ss@redis.internal/2")
    settings(redis_url="redis://redis.internal")


def test_tls_files_need_tls(pki: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="does not use TLS"):
        settings(kafka_ssl_cafile=str(pki["ca_crt"]))
    with pytest.raises(ValidationError, match="is a plain redis:// URL: use rediss://"):
        settings(redis_ssl_cafile=str(pki["ca_crt"]))
    with pytest.raises(ValidationError, match="go together"):
        settings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(pki["client_crt"]))


def test_empty_variables_mean_unset() -> None:
    configured = settings(kafka_sasl_username="", kafka_ssl_cafile="", redis_password="")
    assert configured.kafka_sasl_username is None and configured.kafka_ssl_cafile is None
    assert configured.redis_password is None


# --- one set of options for every Kafka client ----------------------------------------


def test_plaintext_has_no_tls_and_no_login() -> None:
    options = client_options(settings(kafka_bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings()) is None


def test_sasl_ssl_verifies_the_broker_and_logs_in(pki: dict[str, Path]) -> None:
    configured = sasl_ssl(pki)
    options = client_options(configured)
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == (
        "SCRAM-SHA-512",
        "media",
    )
    assert options["sasl_plain_password"] == PASSWORD
    credentials = faust_credentials(configured)
    assert isinstance(credentials, SASLCredentials)
    # What Faust hands aiokafka for the worker equals what the commands use.
    faust_options = credentials_to_aiokafka_auth(credentials)
    assert faust_options["security_protocol"] == "SASL_SSL"
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert faust_options[key] == options[key]
    assert PASSWORD not in repr(credentials)


def test_sasl_plaintext_has_no_tls() -> None:
    configured = settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="media",
        kafka_sasl_password=PASSWORD,
    )
    assert "ssl_context" not in client_options(configured)
    auth = credentials_to_aiokafka_auth(faust_credentials(configured))
    assert (auth["security_protocol"], auth["ssl_context"]) == ("SASL_PLAINTEXT", None)


def test_mutual_tls_loads_an_encrypted_key(pki: dict[str, Path]) -> None:
    configured = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(pki["ca_crt"]),
        kafka_ssl_certfile=str(pki["client_crt"]),
        kafka_ssl_keyfile=str(pki["client_enc_key"]),
        kafka_ssl_key_password=KEY_PASSWORD,
        kafka_ssl_check_hostname=False,
    )
    context = ssl_context(configured)
    assert context is not None and not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified
    credentials = faust_credentials(configured)
    assert isinstance(credentials, SSLCredentials) and credentials.context is not None
    assert "host name NOT checked" in describe(configured)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_ssl_cafile": "not_a_cert_pem"}, "MEDIA_KAFKA_SSL_CAFILE"),
        (
            {"kafka_ssl_certfile": "client_crt", "kafka_ssl_keyfile": "client_enc_key"},
            "MEDIA_KAFKA_SSL_KEY_PASSWORD",
        ),
    ],
)
def test_unusable_files_name_their_setting(
    pki: dict[str, Path], values: dict[str, str], named: str
) -> None:
    files = {key: str(pki[value]) for key, value in values.items()}
    configured = settings(kafka_security_protocol="SSL", **files)
    with pytest.raises(ConfigurationError, match=named):
        ssl_context(configured)


def test_describe_never_shows_a_password(pki: dict[str, Path]) -> None:
    configured = sasl_ssl(
        pki,
        redis_url="rediss://r:6380/0",
        redis_username="media",
        redis_password=PASSWORD,
        redis_ssl_cafile=str(pki["ca_crt"]),
    )
    text = describe(configured) + redis_client.describe(configured)
    assert "SCRAM-SHA-512 as user 'media'" in text and "as user 'media'" in text
    assert PASSWORD not in text and "p@ss" not in text


# --- Redis -----------------------------------------------------------------------------


def test_redis_login_and_tls_options(pki: dict[str, Path]) -> None:
    configured = settings(
        redis_url="rediss://redis.internal:6380/0",
        redis_username="media",
        redis_password=PASSWORD,
        redis_ssl_cafile=str(pki["ca_crt"]),
        redis_ssl_certfile=str(pki["client_crt"]),
        redis_ssl_keyfile=str(pki["client_enc_key"]),
        redis_ssl_key_password=KEY_PASSWORD,
    )
    options = redis_client.security_options(configured)
    assert options["username"] == "media" and options["password"] == PASSWORD
    assert options["ssl_cert_reqs"] == "required" and options["ssl_check_hostname"] is True
    assert options["ssl_ca_certs"] == str(pki["ca_crt"])
    assert options["ssl_password"] == KEY_PASSWORD


def test_a_plain_redis_gets_no_tls_options() -> None:
    assert redis_client.security_options(settings()) == {}
    assert redis_client.security_options(settings(redis_password=PASSWORD)) == {
        "password": PASSWORD
    }


def test_an_encrypted_key_on_a_cluster_is_refused_with_the_fix(pki: dict[str, Path]) -> None:
    configured = settings(
        redis_url="rediss://redis.internal:6380/0",
        redis_cluster=True,
        redis_ssl_certfile=str(pki["client_crt"]),
        redis_ssl_keyfile=str(pki["client_enc_key"]),
        redis_ssl_key_password=KEY_PASSWORD,
    )
    with pytest.raises(ConfigurationError, match="openssl pkey"):
        redis_client.security_options(configured)


def test_a_wrong_key_password_fails_at_once(pki: dict[str, Path]) -> None:
    configured = settings(
        redis_url="rediss://redis.internal:6380/0",
        redis_ssl_certfile=str(pki["client_crt"]),
        redis_ssl_keyfile=str(pki["client_enc_key"]),
        redis_ssl_key_password="not-it",
    )
    with pytest.raises(ConfigurationError, match="MEDIA_REDIS_SSL_KEY_PASSWORD"):
        redis_client.security_options(configured)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (Exception("WRONGPASS invalid username-password pair"), "MEDIA_REDIS_PASSWORD"),
        (Exception("NOAUTH Authentication required."), "requires a login"),
        (Exception("this user has no permissions to run the 'hkeys' command"), "security.md"),
        (Exception("Connection closed by server."), "rediss://"),
    ],
)
def test_redis_failures_say_what_to_fix(error: Exception, hint: str) -> None:
    assert hint in (redis_client.explain(error, settings()) or "")


# --- the stack's probe logs in as the service would -------------------------------------


def test_the_probe_reads_the_service_settings() -> None:
    security = Security.from_environment(
        {
            "MEDIA_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "MEDIA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "MEDIA_KAFKA_SASL_USERNAME": "media",
            "MEDIA_KAFKA_SASL_PASSWORD": PASSWORD,
        }
    )
    assert security.tls and security.sasl and security.password == PASSWORD
    with pytest.raises(ValueError, match="needs MEDIA_KAFKA_SASL_MECHANISM"):
        Security.from_environment({"MEDIA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


# RFC 7677, section 3: user "user", password "pencil", SCRAM-SHA-256.
RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_server(final: str) -> Any:
    sent: list[bytes] = []

    def exchange(data: bytes) -> bytes:
        sent.append(data)
        return (RFC7677_SERVER_FIRST if len(sent) == 1 else final).encode()

    return exchange, sent


def test_scram_matches_the_rfc_example() -> None:
    exchange, sent = rfc_server(RFC7677_SERVER_FINAL)
    scram_login(exchange, "SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    assert sent == [f"n,,n=user,r={RFC7677_NONCE}".encode(), RFC7677_CLIENT_FINAL.encode()]


def test_scram_refuses_a_server_that_does_not_know_the_password() -> None:
    exchange, _ = rfc_server("v=" + "A" * 44)
    with pytest.raises(ProbeError, match="signature does not match"):
        scram_login(exchange, "SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
