"""docker-compose.yml, deploy/Dockerfile and .dockerignore, checked against the settings model.

No container engine runs here or in CI, so the files are checked by reading them:
a renamed setting, a port that no longer lines up, a broker that auto-creates
topics or an image that runs as root fails here instead of in someone's
`docker compose up`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from service.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

CORE_SERVICES = ("kafka", "redis", "service")
# Containers that run the service image and are configured by MEDIA_* variables.
APP_SERVICES = ("service", "demo")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- reading the files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict), f"{COMPOSE_FILE.name} is not a YAML mapping"
    found = compose.get("services")
    assert isinstance(found, dict), f"{COMPOSE_FILE.name} has no `services:` mapping"
    return found


def _app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: services[name] for name in APP_SERVICES if name in services}


def _environment(name: str, service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:` (mapping or `KEY=VALUE` list) as strings, as compose sets it."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.partition("=") for item in raw]
        assert all(sep for _, sep, _ in pairs), (
            f"{name}: environment entries without `=` take their value from the host: {raw}"
        )
        return {key: value for key, _, value in pairs}
    result = {}
    for key, value in raw.items():
        assert value is not None, f"{name}: {key} has no value (it would come from the host)"
        # YAML scalars become strings in the container; booleans as compose writes them.
        result[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return result


def _media_env(name: str, service: dict[str, Any]) -> dict[str, str]:
    env = _environment(name, service)
    return {key: value for key, value in env.items() if key.startswith(ENV_PREFIX)}


def _field(variable: str) -> str:
    return variable.removeprefix(ENV_PREFIX).lower()


def _ports(name: str, service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each `ports:` entry."""
    result: list[tuple[int | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # long syntax
            published = entry.get("published")
            result.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")  # [ip:][host:]container[/proto]
        assert all(p.isdigit() for p in parts[-2:]), (
            f"{name}: cannot read port entry {entry!r} (expected HOST:CONTAINER)"
        )
        host = int(parts[-2]) if len(parts) >= 2 else None
        result.append((host, int(parts[-1])))
    return result


_LISTENER = re.compile(r"^(?P<name>[A-Za-z0-9_]+)://(?P<host>[^:]*):(?P<port>\d+)$")


def _listeners(kafka_env: dict[str, str], variable: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` of KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS by name."""
    assert variable in kafka_env, f"kafka: {variable} is not set"
    result = {}
    for item in kafka_env[variable].split(","):
        match = _LISTENER.match(item.strip())
        assert match, f"kafka: cannot read {item!r} in {variable} (expected NAME://host:port)"
        result[match["name"]] = (match["host"], int(match["port"]))
    return result


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage: the image that runs."""
    instructions = _instructions(DOCKERFILE.read_text())
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, f"{DOCKERFILE} has no FROM"
    return instructions[starts[-1] :]


def _last(stage: list[tuple[str, str]], keyword: str) -> str | None:
    values = [args for kw, args in stage if kw == keyword]
    return values[-1] if values else None


def _exec_form(keyword: str, args: str | None) -> list[str]:
    assert args is not None, f"the Dockerfile's final stage has no {keyword}"
    assert args.startswith("["), (
        f"{keyword} {args} is in shell form: /bin/sh would be PID 1 and swallow SIGTERM; "
        'use the exec form ["..."]'
    )
    value = json.loads(args)
    assert isinstance(value, list), f"{keyword} {args} is not a JSON list"
    return [str(item) for item in value]


def _settings_with(field: str, value: str) -> Settings:
    """Settings with one value given explicitly (it wins over the environment); no .env file."""
    values: dict[str, Any] = {field: value}
    return Settings(_env_file=None, **values)


def _services_web_port(services: dict[str, dict[str, Any]]) -> int:
    env = _media_env("service", services["service"])
    assert "MEDIA_WEB_PORT" in env, "service: MEDIA_WEB_PORT is not set"
    return int(env["MEDIA_WEB_PORT"])


# --- the services ---------------------------------------------------------------------


def test_compose_defines_the_stack(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in CORE_SERVICES if name not in services]
    assert not missing, f"{COMPOSE_FILE.name} lacks the service(s) {missing}"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "version" not in compose, "`version:` is obsolete in the compose spec; remove it"


def test_core_services_start_by_default_and_demo_only_on_request(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in CORE_SERVICES:
        assert not services[name].get("profiles"), (
            f"{name} has profiles {services[name]['profiles']}: `docker compose up` would skip it"
        )
    if "demo" in services:
        assert "demo" in (services["demo"].get("profiles") or []), (
            "demo has no `demo` profile: `docker compose up` would run it with the stack"
        )


def test_app_images_are_built_from_the_repo(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _app_services(services).items():
        build = service.get("build")
        assert isinstance(build, dict), f"{name}: expected `build: {{context, dockerfile}}`"
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository top"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile == DOCKERFILE, f"{name}: builds {dockerfile}, not {DOCKERFILE}"


# --- settings -------------------------------------------------------------------------


def test_media_variables_are_real_settings_with_valid_values(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in _app_services(services).items():
        env = _media_env(name, service)
        assert env, f"{name}: no {ENV_PREFIX}* variables at all"
        for variable, value in env.items():
            field = _field(variable)
            assert field in Settings.model_fields, (
                f"{name}: {variable} is no setting: service.config.Settings has no field "
                f"{field!r}, so the container would silently ignore it"
            )
            try:
                _settings_with(field, value)
            except ValidationError as exc:
                pytest.fail(f"{name}: {variable}={value!r} is not a valid {field}:\n{exc}")


def test_each_container_environment_builds_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """All variables together, read from the environment, as the container does it."""
    for name, service in _app_services(services).items():
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
                patch.delenv(key)
            for variable, value in _media_env(name, service).items():
                patch.setenv(variable, value)
            try:
                Settings(_env_file=None)
            except ValidationError as exc:
                pytest.fail(f"{name}: its {ENV_PREFIX}* environment is invalid:\n{exc}")


def test_dockerfile_env_settings_are_real_fields(final_stage: list[tuple[str, str]]) -> None:
    for args in (args for kw, args in final_stage if kw == "ENV"):
        for variable, _, value in (item.partition("=") for item in args.split()):
            if not variable.startswith(ENV_PREFIX):
                continue
            field = _field(variable)
            assert field in Settings.model_fields, (
                f"Dockerfile: ENV {variable} is no setting (Settings has no field {field!r})"
            )
            try:
                _settings_with(field, value)
            except ValidationError as exc:
                pytest.fail(f"Dockerfile: ENV {variable}={value!r} is not a valid {field}:\n{exc}")


# --- wiring between the containers ----------------------------------------------------


def test_bootstrap_servers_point_at_the_internal_kafka_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = _environment("kafka", services["kafka"])
    listeners = _listeners(kafka_env, "KAFKA_LISTENERS")
    advertised = _listeners(kafka_env, "KAFKA_ADVERTISED_LISTENERS")
    controllers = set(kafka_env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
    for name, service in _app_services(services).items():
        env = _media_env(name, service)
        bootstrap = env.get("MEDIA_KAFKA_BOOTSTRAP_SERVERS")
        assert bootstrap, f"{name}: MEDIA_KAFKA_BOOTSTRAP_SERVERS is not set"
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            assert host == "kafka", (
                f"{name}: bootstrap server {server!r} is not the kafka service (kafka:PORT)"
            )
            assert port.isdigit(), f"{name}: bootstrap server {server!r} has no port"
            matching = [
                listener
                for listener, (_, listen_port) in listeners.items()
                if listen_port == int(port) and listener not in controllers
            ]
            assert matching, (
                f"{name}: bootstrap port {port} is no broker listener in KAFKA_LISTENERS "
                f"({kafka_env['KAFKA_LISTENERS']})"
            )
            # The broker answers with its advertised address: it must be reachable too.
            assert advertised.get(matching[0]) == ("kafka", int(port)), (
                f"{name}: listener {matching[0]} on port {port} is not advertised as "
                f"kafka:{port} in KAFKA_ADVERTISED_LISTENERS "
                f"({kafka_env['KAFKA_ADVERTISED_LISTENERS']}); clients would be sent elsewhere"
            )


def test_kafka_host_listener_is_published(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = _environment("kafka", services["kafka"])
    advertised = _listeners(kafka_env, "KAFKA_ADVERTISED_LISTENERS")
    published = dict(_ports("kafka", services["kafka"]))
    host_side = {name: addr for name, addr in advertised.items() if addr[0] in LOOPBACK}
    assert host_side, "kafka: no listener is advertised on localhost for clients on the host"
    for name, (_, port) in host_side.items():
        assert published.get(port) == port, (
            f"kafka: listener {name} is advertised as localhost:{port} but the port is not "
            f"published as {port}:{port}"
        )


def test_broker_does_not_auto_create_topics(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = _environment("kafka", services["kafka"])
    value = kafka_env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true (Kafka's default)")
    assert value.lower() == "false", (
        f"kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE is {value}: a mistyped topic name would "
        "silently create a topic instead of failing"
    )


def test_topic_replication_fits_the_single_broker(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = _environment("kafka", services["kafka"])
    brokers = len(kafka_env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(","))
    for name, service in _app_services(services).items():
        factor = _media_env(name, service).get("MEDIA_TOPIC_REPLICATION_FACTOR")
        default = Settings.model_fields["topic_replication_factor"].default
        replication = int(factor) if factor is not None else int(default)
        assert replication <= brokers, (
            f"{name}: MEDIA_TOPIC_REPLICATION_FACTOR={replication} but the stack has "
            f"{brokers} broker(s): creating the topics would fail"
        )


def test_redis_url_points_at_the_redis_container(services: dict[str, dict[str, Any]]) -> None:
    container_ports = {container for _, container in _ports("redis", services["redis"])}
    redis_port = 6379  # redis-server's default; the command sets no --port
    assert "--port" not in " ".join(map(str, services["redis"].get("command") or [])), (
        "redis: the command changes --port; update this test and MEDIA_REDIS_URL"
    )
    assert redis_port in container_ports, (
        f"redis: container port {redis_port} is not published (ports: {sorted(container_ports)})"
    )
    for name, service in _app_services(services).items():
        url = _media_env(name, service).get("MEDIA_REDIS_URL")
        assert url, f"{name}: MEDIA_REDIS_URL is not set"
        parts = urlsplit(url)
        assert parts.hostname == "redis", f"{name}: MEDIA_REDIS_URL {url} is not the redis service"
        assert (parts.port or 6379) == redis_port, (
            f"{name}: MEDIA_REDIS_URL {url} uses port {parts.port}, but Redis listens on "
            f"{redis_port} inside its container (the host port is only for the host)"
        )


def test_web_port_is_published_as_configured(services: dict[str, dict[str, Any]]) -> None:
    web_port = _services_web_port(services)
    ports = _ports("service", services["service"])
    assert (web_port, web_port) in ports, (
        f"service: MEDIA_WEB_PORT={web_port} but ports are {ports}; expected "
        f'"{web_port}:{web_port}"'
    )
    env = _media_env("service", services["service"])
    bind = env.get("MEDIA_WEB_BIND", Settings.model_fields["web_bind"].default)
    assert bind not in LOOPBACK, (
        f"service: MEDIA_WEB_BIND={bind} listens on loopback only; the published port "
        "cannot reach it (use 0.0.0.0)"
    )
    host = env.get("MEDIA_WEB_HOST", Settings.model_fields["web_host"].default)
    assert host == "service", (
        f"service: MEDIA_WEB_HOST={host} is the name other containers use to reach the "
        "worker; it should be the compose service name `service`"
    )


def test_dockerfile_exposes_the_web_port(
    services: dict[str, dict[str, Any]], final_stage: list[tuple[str, str]]
) -> None:
    exposed = {
        int(port.split("/")[0])
        for kw, args in final_stage
        if kw == "EXPOSE"
        for port in args.split()
    }
    web_port = _services_web_port(services)
    default = Settings.model_fields["web_port"].default
    assert default == 8066, f"Settings' default web_port is {default}, the stack expects 8066"
    assert web_port in exposed, (
        f"Dockerfile EXPOSEs {sorted(exposed)} but MEDIA_WEB_PORT is {web_port}"
    )
    assert default in exposed, (
        f"Dockerfile EXPOSEs {sorted(exposed)} but Settings' default web_port is {default}"
    )


def test_depends_on_waits_for_healthy_dependencies(
    services: dict[str, dict[str, Any]], final_stage: list[tuple[str, str]]
) -> None:
    depends = services["service"].get("depends_on")
    assert isinstance(depends, dict), (
        "service: depends_on must be a mapping with `condition: service_healthy` "
        "(the list form only waits for the containers to start)"
    )
    for needed in ("kafka", "redis"):
        assert needed in depends, f"service: depends_on lacks {needed}"
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dependency in depends:
            condition = depends[dependency].get("condition") if isinstance(depends, dict) else None
            assert condition == "service_healthy", (
                f"{name}: depends_on {dependency} has condition {condition!r}, "
                "expected service_healthy"
            )
            target = services[dependency]
            if dependency in APP_SERVICES:  # the image's HEALTHCHECK applies
                has_check = _last(final_stage, "HEALTHCHECK") is not None
            else:
                check = target.get("healthcheck") or {}
                has_check = bool(check.get("test")) and not check.get("disable")
            assert has_check, (
                f"{dependency} has no healthcheck: {name} waiting for service_healthy "
                "would never start"
            )


# --- the image --------------------------------------------------------------------------


def test_image_runs_as_a_non_root_user(final_stage: list[tuple[str, str]]) -> None:
    user = _last(final_stage, "USER")
    assert user, "Dockerfile: the final stage sets no USER, so the service runs as root"
    name = user.split(":")[0]
    assert name not in {"root", "0"}, f"Dockerfile: USER {user} is root"


def test_entrypoint_is_the_service_console_script(
    services: dict[str, dict[str, Any]], final_stage: list[tuple[str, str]]
) -> None:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert "service" in scripts, "pyproject.toml declares no `service` console script"
    entrypoint = _exec_form("ENTRYPOINT", _last(final_stage, "ENTRYPOINT"))
    assert entrypoint == ["service"], (
        f'Dockerfile: ENTRYPOINT is {entrypoint}, expected the console script ["service"]'
    )
    cmd = _exec_form("CMD", _last(final_stage, "CMD"))
    assert cmd == ["worker"], f'Dockerfile: default CMD is {cmd}, expected ["worker"]'
    command = services["service"].get("command")
    assert command in (["worker"], "worker"), f"service: command is {command!r}, expected worker"


def test_healthcheck_asks_the_health_route(final_stage: list[tuple[str, str]]) -> None:
    from service.api.views import ROUTES

    healthcheck = _last(final_stage, "HEALTHCHECK")
    assert healthcheck, "Dockerfile: no HEALTHCHECK, so `service_healthy` can never be reached"
    assert "/healthz" in healthcheck, (
        f"Dockerfile: HEALTHCHECK does not ask /healthz: {healthcheck}"
    )
    assert "/healthz" in ROUTES, "the web API has no /healthz route for the HEALTHCHECK"
    assert "curl" not in healthcheck and "wget" not in healthcheck, (
        "Dockerfile: HEALTHCHECK uses curl/wget, which python:3.11-slim does not have"
    )


def test_dockerignore_lets_the_copied_sources_through(final_stage: list[tuple[str, str]]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "*" in patterns, ".dockerignore should exclude everything (`*`) and list what to keep"
    kept = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    instructions = _instructions(DOCKERFILE.read_text())
    for keyword, args in instructions:
        if keyword not in {"COPY", "ADD"} or "--from=" in args:
            continue
        *sources, _destination = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            source = source.rstrip("/")
            assert any(k == source or fnmatch.fnmatch(k, source) for k in kept), (
                f".dockerignore keeps {source} out of the build context, but the Dockerfile "
                f"copies it; add `!{source}`"
            )
    for private in (".stack", ".venv", ".git"):
        assert private not in kept, f".dockerignore sends {private} into the build context"
