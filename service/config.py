"""Settings, read from the environment (prefix `MEDIA_`) or a `.env` file.

The application is built from one `Settings` object; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MEDIA_"

# Bearer tokens: at least this long, and not a value copied from an example.
MIN_TOKEN_CHARS = 32
PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "secret", "password", "token", "example"})
PLACEHOLDER_PARTS = ("change-me", "changeme", "change_me")


def token_problem(token: str) -> str | None:
    """Why a bearer token must be refused, or None when it may be used."""
    lowered = token.lower()
    if not token:
        return "is empty"
    if (
        lowered in PLACEHOLDER_TOKENS
        or any(part in lowered for part in PLACEHOLDER_PARTS)
        or len(set(lowered)) == 1  # xxxx..., 0000...
    ):
        return "is a placeholder, not a secret"
    if len(token) < MIN_TOKEN_CHARS:
        return f"is shorter than {MIN_TOKEN_CHARS} characters"
    return None


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


# Optional security settings; each is unset when its variable is empty.
SECURITY_OPTIONAL_FIELDS = (
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "kafka_ssl_key_password",
    "redis_username",
    "redis_password",
    "redis_ssl_cafile",
    "redis_ssl_certfile",
    "redis_ssl_keyfile",
    "redis_ssl_key_password",
)


def variable(field: str) -> str:
    """The variable that sets a field: `kafka_ssl_cafile` is MEDIA_KAFKA_SSL_CAFILE."""
    return f"{ENV_PREFIX}{field.upper()}"


def split_tokens(value: SecretStr | None) -> tuple[SecretStr, ...]:
    """The comma-separated tokens of a token setting."""
    if value is None:
        return ()
    return tuple(SecretStr(t.strip()) for t in value.get_secret_value().split(","))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        frozen=True,
        # A refused value is never echoed: it may be a token or a password.
        hide_input_in_errors=True,
    )

    # Identity: the Kafka consumer group and Faust application id.
    app_id: str = "media-intelligence"

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # A power of two: even over a Redis Cluster's primaries (docs/redis-keys.md), and
    # room for 16 worker processes before the topics must grow.
    topic_partitions: Annotated[int, Field(ge=1)] = 16
    topic_replication_factor: Annotated[int, Field(ge=1)] = 1
    create_topics: bool = True
    # A worker that dies without leaving the group holds its partitions this long.
    kafka_session_timeout_seconds: Annotated[float, Field(ge=6)] = 30.0
    kafka_heartbeat_interval_seconds: Annotated[float, Field(gt=0)] = 3.0
    # Acknowledged offsets are committed this often (and on a clean shutdown).
    kafka_commit_interval_seconds: Annotated[float, Field(gt=0)] = 2.0
    # How long a send (a dead letter, a suggestion) may wait for the broker before it counts
    # as failed and its partition pauses and retries (Faust's own default is 20 minutes).
    kafka_producer_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    # A worker whose fetch loop has not turned for this long (outside a rebalance) is ended
    # with exit status 70, so that its supervisor starts a fresh one.
    consumer_stall_seconds: Annotated[float, Field(ge=60)] = 300.0
    # Records per fetch; the performance topic is applied one fetch per partition at a time.
    kafka_max_poll_records: Annotated[int, Field(ge=1)] = 2000
    # How long the broker may hold a fetch that finds no data (Faust alone uses 1500).
    kafka_fetch_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Kafka security, for the worker and every command that talks to Kafka. SSL and
    # SASL_SSL verify the broker's certificate (against the CA file, or the system's CAs)
    # and its host name; SASL_* log in with a user and password.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    # Mutual TLS: the client certificate (PEM) and its key (PEM, encrypted or not).
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # Turn off only for a broker whose certificate names no host you can reach it by.
    kafka_ssl_check_hostname: bool = True

    topic_asset_registered: str = "media.asset-registered"
    topic_asset_lifecycle: str = "media.asset-lifecycle"
    topic_asset_performance: str = "media.asset-performance"
    topic_suggestion_feedback: str = "media.suggestion-feedback"
    topic_library_updated: str = "media.library-updated"
    topic_optimization_suggestions: str = "media.optimization-suggestions"
    topic_duplicates_detected: str = "media.duplicates-detected"
    topic_dead_letter: str = "media.dead-letter"

    # Redis
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:16379/0")
    redis_cluster: bool = False
    redis_key_prefix: str = "media"
    redis_retry_max_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Longest wait for any one Redis reply (and for a connection): a Lua script call takes
    # up to tens of milliseconds, so this only cuts off a Redis that stopped answering.
    redis_socket_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    # Run on a Redis whose maxmemory-policy may evict keys (refused otherwise): de-duplication
    # hashes and buckets carry TTLs, and an evicted one lets an event count twice.
    redis_allow_eviction: bool = False
    # Redis security. TLS is on with a `rediss://` URL; the CA file verifies the server (the
    # system's CAs without it), a certificate and key answer a server that asks for client
    # certificates. The user and password (an ACL user; only the password for a Redis
    # with `requirepass`) take precedence over any in the URL and need no URL-encoding.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_ssl_cafile: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None
    redis_ssl_key_password: SecretStr | None = None
    redis_ssl_check_hostname: bool = True

    # Web API
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, Field(ge=1, le=65535)] = 8066
    web_bind: str = "127.0.0.1"
    # When set, every /v1 route requires `Authorization: Bearer <token>`. Several tokens,
    # comma-separated, are all accepted (to rotate one without downtime).
    api_token: SecretStr | None = None
    # The same for /metrics; unset, /metrics is open (for a scraper on a private network).
    metrics_token: SecretStr | None = None

    # Processing
    max_message_bytes: Annotated[int, Field(ge=1024)] = 262_144
    # A dead letter carries at most this many bytes of the original value (and a
    # SHA-256 and the size of all of it). A dead letter weighs at most 4/3 of this
    # plus 16 KiB, so the upper bound keeps it under Kafka's default 1 MB per record.
    dead_letter_max_original_bytes: Annotated[int, Field(ge=0, le=524_288)] = 262_144
    future_tolerance_seconds: Annotated[float, Field(ge=0)] = 300.0
    lifecycle_hold_seconds: Annotated[float, Field(gt=0)] = 86_400.0
    # Lifecycle events one unregistered asset may hold; one more is dead-lettered.
    max_held_events_per_asset: Annotated[int, Field(ge=1)] = 100
    # History entries kept per asset (the newest; older ones are dropped).
    history_max_per_asset: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    held_sweep_interval_seconds: Annotated[float, Field(gt=0)] = 30.0
    # How long one sweep keeps taking batches of expired held events before it yields.
    held_sweep_budget_seconds: Annotated[float, Field(gt=0)] = 5.0
    seen_event_ttl_seconds: Annotated[int, Field(ge=3600)] = 7 * 86_400
    # Sums (one asset in one bucket) a worker keeps from its own writes, so that the next
    # batch need not read them from Redis (about 250 bytes each; 0: read every time).
    metrics_kept_sums: Annotated[int, Field(ge=0)] = 100_000
    # Buckets of the partitions' tables of event ids (about 16 ids each) a worker keeps
    # from its own writes, likewise (about 300 bytes each; 0: read every time).
    metrics_kept_id_buckets: Annotated[int, Field(ge=0)] = 100_000
    api_page_size_max: Annotated[int, Field(ge=1)] = 500
    leaderboard_refresh_seconds: Annotated[float, Field(gt=0)] = 30.0
    # false: only `service refresher` processes refresh the boards, never a worker (with
    # true a worker's leader refreshes whenever no refresher process holds the lease).
    leaderboard_refresh_in_worker: bool = True
    leaderboard_min_impressions: Annotated[int, Field(ge=0)] = 100
    # Suggestions: the rules' thresholds (a TOML file; the shipped defaults when unset)
    # and how long an open one stays quiet (a dismissed one: seven times as long).
    suggestion_rules_file: Path | None = None
    suggestion_cooldown_seconds: Annotated[float, Field(gt=0)] = 86_400.0

    # Faust's working directory for local state (the service keeps its state in Redis).
    data_dir: Path = Path(".stack/worker-data")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json: one object a line for log pipelines; text: for people at a terminal.
    log_format: Literal["text", "json"] = "text"

    @field_validator("redis_key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value or not value:
            raise ValueError("redis_key_prefix must be non-empty and contain no '{' or '}'")
        return value

    @field_validator(*SECURITY_OPTIONAL_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty variable (a template's `MEDIA_KAFKA_SSL_CAFILE=`) means "not set".
        return None if value == "" else value

    @field_validator(
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "redis_ssl_cafile",
        "redis_ssl_certfile",
        "redis_ssl_keyfile",
    )
    @classmethod
    def _readable_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None:
            name = variable(str(info.field_name))
            if not value.is_file():
                raise ValueError(f"{name}: no file at {value}")
            try:
                value.open("rb").close()
            except OSError as exc:
                raise ValueError(f"{name}: cannot read {value} ({exc.strerror})") from None
        return value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Self:
        protocol = self.kafka_security_protocol
        where = f"{variable('kafka_security_protocol')}={protocol}"
        sasl_fields = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
        ssl_fields = (
            "kafka_ssl_cafile",
            "kafka_ssl_certfile",
            "kafka_ssl_keyfile",
            "kafka_ssl_key_password",
        )
        if protocol.startswith("SASL_"):
            missing = [variable(f) for f in sasl_fields if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{where} needs {', '.join(missing)}")
        else:
            given = [variable(f) for f in sasl_fields if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but {where} does not log in: "
                    "use SASL_SSL (or SASL_PLAINTEXT), or unset them"
                )
        if not protocol.endswith("SSL"):
            given = [variable(f) for f in ssl_fields if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but {where} does not use TLS: "
                    "use SSL or SASL_SSL, or unset them"
                )
        _client_certificate_pair(self, "kafka")
        return self

    @model_validator(mode="after")
    def _redis_security_consistent(self) -> Self:
        parts = urlsplit(self.redis_url.get_secret_value())
        scheme = parts.scheme
        if scheme not in ("redis", "rediss"):
            # The scheme only, never the rest of the URL: it may hold a password.
            raise ValueError(
                f"{variable('redis_url')} must start with redis:// (plain) or rediss:// "
                f"(TLS), not {scheme or 'nothing'}://"
            )
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not (parts.hostname and port_ok and re.fullmatch(r"(/\d*)?", parts.path)):
            # Nothing of the URL is echoed: what looks like its host or port may be a
            # piece of a password that holds an unencoded '/' or ':'.
            raise ValueError(
                f"{variable('redis_url')} is not redis[s]://[[user]:password@]host[:port][/db]; "
                "a password holding '@', ':' or '/' must be percent-encoded in the URL, or "
                f"given in {variable('redis_password')} instead"
            )
        tls_fields = (
            "redis_ssl_cafile",
            "redis_ssl_certfile",
            "redis_ssl_keyfile",
            "redis_ssl_key_password",
        )
        given = [variable(f) for f in tls_fields if getattr(self, f) is not None]
        if given and scheme != "rediss":
            raise ValueError(
                f"{', '.join(given)} set, but {variable('redis_url')} is a plain redis:// "
                "URL: use rediss:// for TLS, or unset them"
            )
        if self.redis_username is not None and self.redis_password is None:
            raise ValueError(
                f"{variable('redis_username')} needs {variable('redis_password')} as well"
            )
        _client_certificate_pair(self, "redis")
        return self

    @field_validator("suggestion_rules_file")
    @classmethod
    def _rules_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no rules file at {value} (unset it for the shipped defaults)")
        return value

    @field_validator("api_token", "metrics_token")
    @classmethod
    def _usable_tokens(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            name = variable(str(info.field_name))
            tokens = value.get_secret_value().split(",")
            for position, token in enumerate(tokens, start=1):
                problem = token_problem(token.strip())
                if problem is not None:
                    which = f"token {position} of {len(tokens)}" if len(tokens) > 1 else "the token"
                    raise ValueError(
                        f"{name}: {which} {problem}; generate one with "
                        f"python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
                        "(or unset the variable)"
                    )
        return value

    @property
    def api_tokens(self) -> tuple[SecretStr, ...]:
        """Every token `MEDIA_API_TOKEN` accepts (none: the /v1 API is open)."""
        return split_tokens(self.api_token)

    @property
    def metrics_tokens(self) -> tuple[SecretStr, ...]:
        """Every token `MEDIA_METRICS_TOKEN` accepts (none: /metrics is open)."""
        return split_tokens(self.metrics_token)

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def redis_uses_tls(self) -> bool:
        return urlsplit(self.redis_url.get_secret_value()).scheme == "rediss"

    @property
    def kafka_broker_url(self) -> str:
        """The bootstrap servers as Faust expects them (`kafka://host:port;host:port`)."""
        hosts = [h.strip() for h in self.kafka_bootstrap_servers.split(",") if h.strip()]
        return ";".join(f"kafka://{h}" for h in hosts)

    @property
    def input_topics(self) -> list[str]:
        return [
            self.topic_asset_registered,
            self.topic_asset_lifecycle,
            self.topic_asset_performance,
            self.topic_suggestion_feedback,
            self.topic_library_updated,
        ]

    @property
    def output_topics(self) -> list[str]:
        return [
            self.topic_optimization_suggestions,
            self.topic_duplicates_detected,
            self.topic_dead_letter,
        ]

    @property
    def all_topics(self) -> list[str]:
        return [*self.input_topics, *self.output_topics]


def _client_certificate_pair(settings: Settings, system: Literal["kafka", "redis"]) -> None:
    """A client certificate comes with its key; a key password only with a key."""
    cert, key = f"{system}_ssl_certfile", f"{system}_ssl_keyfile"
    password = f"{system}_ssl_key_password"
    if (getattr(settings, cert) is None) != (getattr(settings, key) is None):
        raise ValueError(
            f"{variable(cert)} and {variable(key)} go together (mutual TLS needs both)"
        )
    if getattr(settings, password) is not None and getattr(settings, key) is None:
        raise ValueError(f"{variable(password)} is set, but {variable(key)} is not")
