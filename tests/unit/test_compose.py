"""docker-compose.yml, deploy/Dockerfile and .dockerignore, checked against the service.

No container engine runs here or in CI, so the files are checked by reading them:
a renamed setting, a port that no longer lines up, a broker that auto-creates
topics or an image that runs as root fails here instead of in someone's
`docker compose up`. The monitoring containers are checked the same way: Prometheus
must scrape the service's /metrics, Grafana's mounted files must exist, and the
dashboard may only query metrics the service exports.

Expected values come from their sources (tests/unit/deploy_sources.py): the settings
model, pyproject.toml, the Dockerfile, the metrics registry and the web routes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import ValidationError

from service.config import ENV_PREFIX, Settings
from tests.unit import deploy_sources as sources
from tests.unit.deploy_sources import DOCKERFILE, DOCKERIGNORE, ROOT, WORKER_COMMAND, field_of

COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "media-intelligence.json"

CORE_SERVICES = ("kafka", "redis", "service")
# Containers that run the service image and are configured by MEDIA_* variables.
APP_SERVICES = ("service", "demo")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MONITORING_SERVICES = ("prometheus", "grafana")
# The monitoring images, and where they read their configuration and listen (their own
# defaults, which the paths and ports below rely on).
MONITORING_IMAGES = {"prometheus": "prom/prometheus", "grafana": "grafana/grafana"}
PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml"
PROMETHEUS_PORT = 9090
GRAFANA_PROVISIONING_PATH = "/etc/grafana/provisioning"
GRAFANA_PORT = 3000
# Grafana's roles that may change dashboards, data sources or users.
GRAFANA_WRITING_ROLES = {"Editor", "Admin"}
# Where redis-server listens unless told otherwise (the compose command sets no --port).
REDIS_DEFAULT_PORT = 6379
# Where published ports may listen on the host: loopback, so no other machine reaches them.
LOOPBACK_IPS = {"127.0.0.1", "::1"}
# Sample values for the variables compose requires from the host (`${NAME:?message}`),
# used to read the file as compose would with them set.
SAMPLE_HOST_ENV = {
    "REDIS_PASSWORD": "sample-redis-password",
    "GRAFANA_ADMIN_PASSWORD": "sample-grafana-password",
}
SERVICE_METRICS = sources.exported_metrics()
HISTOGRAM_SUFFIXES = sources.HISTOGRAM_SUFFIXES


# --- reading the files ---------------------------------------------------------------

# `$$`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`
# (compose's interpolation; the default or message runs to the closing brace) and `$NAME`.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def _references(text: str) -> list[tuple[str, str | None, str]]:
    """(variable, operator or None, default or message) of each `${...}`/`$NAME` in text."""
    return [
        (m["braced"] or m["bare"], m["op"], m["arg"] or "")
        for m in _INTERPOLATION.finditer(text)
        if not m["escaped"]
    ]


def _interpolate(value: Any, environment: dict[str, str]) -> Any:
    """A loaded compose value with the host's variables substituted, as compose does it."""
    if isinstance(value, dict):
        return {key: _interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        found = environment.get(name)
        op, arg = match["op"] or "", match["arg"] or ""
        unset_or_empty = found is None or (op.startswith(":") and not found)
        if op.endswith("?") and unset_or_empty:
            pytest.fail(f"{COMPOSE_FILE.name}: ${{{name}}} is required: {arg}")
        if op.endswith("-") and unset_or_empty:
            return arg
        return found or ""

    return _INTERPOLATION.sub(substitute, value)


@pytest.fixture(scope="module")
def raw_services() -> dict[str, dict[str, Any]]:
    """The services as written, `${...}` references included."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict), f"{COMPOSE_FILE.name} is not a YAML mapping"
    found = compose.get("services")
    assert isinstance(found, dict), f"{COMPOSE_FILE.name} has no `services:` mapping"
    return found


@pytest.fixture(scope="module")
def services(raw_services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services as compose runs them, with SAMPLE_HOST_ENV set on the host."""
    found: dict[str, dict[str, Any]] = _interpolate(raw_services, SAMPLE_HOST_ENV)
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


def _port_bindings(name: str, service: dict[str, Any]) -> list[tuple[str | None, int | None, int]]:
    """(host IP or None, published host port or None, container port) of each `ports:` entry."""
    result: list[tuple[str | None, int | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # long syntax
            published = entry.get("published")
            result.append(
                (entry.get("host_ip"), int(published) if published else None, int(entry["target"]))
            )
            continue
        text = str(entry).split("/")[0]  # [ip:][host:]container[/proto]
        ip = None
        if text.startswith("["):  # [IPv6]:host:container
            ip, _, text = text[1:].partition("]:")
        parts = text.split(":")
        assert 1 <= len(parts) <= 3 and all(p.isdigit() for p in parts[-2:]), (
            f"{name}: cannot read port entry {entry!r} (expected IP:HOST:CONTAINER)"
        )
        if len(parts) == 3:
            ip = parts[0]
        host = int(parts[-2]) if len(parts) >= 2 else None
        result.append((ip, host, int(parts[-1])))
    return result


def _ports(name: str, service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each `ports:` entry."""
    return [(host, container) for _, host, container in _port_bindings(name, service)]


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


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage: the image that runs."""
    return sources.final_stage()


def _settings_with(field: str, value: str) -> Settings:
    """Settings with one value given explicitly (it wins over the environment); no .env file."""
    values: dict[str, Any] = {field: value}
    return Settings(_env_file=None, **values)


def _services_web_port(services: dict[str, dict[str, Any]]) -> int:
    """The port the worker's web server listens on in its container."""
    return int(sources.effective(_media_env("service", services["service"]), "web_port"))


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
            field = field_of(variable)
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
            field = field_of(variable)
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
        replication = int(sources.effective(_media_env(name, service), "topic_replication_factor"))
        assert replication <= brokers, (
            f"{name}: MEDIA_TOPIC_REPLICATION_FACTOR={replication} but the stack has "
            f"{brokers} broker(s): creating the topics would fail"
        )


def test_redis_url_points_at_the_redis_container(services: dict[str, dict[str, Any]]) -> None:
    container_ports = {container for _, container in _ports("redis", services["redis"])}
    redis_port = REDIS_DEFAULT_PORT
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
        assert (parts.port or REDIS_DEFAULT_PORT) == redis_port, (
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
    bind = sources.effective(env, "web_bind")
    assert bind not in LOOPBACK, (
        f"service: MEDIA_WEB_BIND={bind} listens on loopback only; the published port "
        "cannot reach it (use 0.0.0.0)"
    )
    host = sources.effective(env, "web_host")
    assert host == "service", (
        f"service: MEDIA_WEB_HOST={host} is the name other containers use to reach the "
        "worker; it should be its compose service name `service`"
    )


def test_dockerfile_exposes_the_web_port(services: dict[str, dict[str, Any]]) -> None:
    exposed = sources.exposed_ports()
    web_port = _services_web_port(services)
    default = sources.default("web_port")
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
                has_check = sources.last(final_stage, "HEALTHCHECK") is not None
            else:
                check = target.get("healthcheck") or {}
                has_check = bool(check.get("test")) and not check.get("disable")
            assert has_check, (
                f"{dependency} has no healthcheck: {name} waiting for service_healthy "
                "would never start"
            )


# --- exposure and credentials ----------------------------------------------------------


def _required_variable(where: str, text: str) -> str:
    """The one host variable text is, given as `${NAME:?message}`: set and non-empty, no default."""
    references = _references(text)
    assert len(references) == 1, (
        f"{where}: {text!r} should take its value from one host variable (${{NAME:?message}})"
    )
    variable, op, _ = references[0]
    assert op == ":?", (
        f"{where}: {text!r} uses ${{{variable}}} with {op or 'no operator'}; use "
        f"${{{variable}:?message}} so that compose refuses to start without it (no default, "
        "not empty)"
    )
    return variable


def test_published_ports_listen_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", (
            f"{name}: network_mode host puts every port it listens on on the host's interfaces"
        )
        for ip, host, container in _port_bindings(name, service):
            assert ip in LOOPBACK_IPS, (
                f"{name}: port {container} is published on {ip or 'every interface'}; publish "
                f'it on loopback only: "127.0.0.1:{host or container}:{container}"'
            )


def test_redis_requires_a_password_without_default(
    raw_services: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    raw_command = [str(item) for item in raw_services["redis"].get("command") or []]
    assert "--requirepass" in raw_command[:-1], (
        f"redis: the command sets no --requirepass: anyone reaching the port may write "
        f"({raw_command})"
    )
    raw_password = raw_command[raw_command.index("--requirepass") + 1]
    variable = _required_variable("redis: --requirepass", raw_password)
    command = [str(item) for item in services["redis"]["command"]]
    password = command[command.index("--requirepass") + 1]
    assert password == SAMPLE_HOST_ENV[variable], "redis: the password is not just the variable"
    assert "no" not in [
        command[i + 1] for i, item in enumerate(command[:-1]) if item == "--protected-mode"
    ], "redis: protected mode is switched off"
    for name, service in _app_services(services).items():
        raw_url = _media_env(name, raw_services[name]).get("MEDIA_REDIS_URL", "")
        assert variable in [v for v, _, _ in _references(raw_url)], (
            f"{name}: MEDIA_REDIS_URL {raw_url!r} does not take its password from ${variable}"
        )
        url = urlsplit(_media_env(name, service)["MEDIA_REDIS_URL"])
        assert url.password == password, (
            f"{name}: MEDIA_REDIS_URL does not carry the password Redis requires"
        )
    # The healthcheck's redis-cli must log in too, or the service would never start.
    env = _environment("redis", services["redis"])
    healthcheck = " ".join(map(str, services["redis"]["healthcheck"]["test"]))
    assert env.get("REDISCLI_AUTH") == password or " -a " in healthcheck, (
        "redis: the healthcheck's redis-cli does not authenticate (set REDISCLI_AUTH)"
    )


def test_grafana_admin_password_has_no_default(
    raw_services: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    raw = _environment("grafana", raw_services["grafana"])
    assert "GF_SECURITY_ADMIN_PASSWORD" in raw, (
        "grafana: GF_SECURITY_ADMIN_PASSWORD is not set, so the admin logs in with admin/admin"
    )
    _required_variable("grafana: GF_SECURITY_ADMIN_PASSWORD", raw["GF_SECURITY_ADMIN_PASSWORD"])
    password = _environment("grafana", services["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]
    assert password and password != "admin", "grafana: the admin password is Grafana's default"


def test_required_variables_have_no_usable_default(raw_services: dict[str, dict[str, Any]]) -> None:
    """Secrets come from the host or compose refuses to start; none has a fallback value."""
    found = set()
    for name, service in raw_services.items():
        text = yaml.safe_dump(service)
        for variable, op, _ in _references(text):
            if variable in SAMPLE_HOST_ENV:
                found.add(variable)
                assert op == ":?", (
                    f"{name}: ${{{variable}}} is used with {op or 'no operator'}; "
                    f"use ${{{variable}:?message}}"
                )
    assert found == set(SAMPLE_HOST_ENV), (
        f"the sample values of {sorted(set(SAMPLE_HOST_ENV) - found)} are not used any more"
    )
    for variable in SAMPLE_HOST_ENV:
        with pytest.raises(pytest.fail.Exception, match=variable):
            _interpolate(raw_services, {k: v for k, v in SAMPLE_HOST_ENV.items() if k != variable})


# --- the image --------------------------------------------------------------------------


def test_image_runs_as_a_non_root_user() -> None:
    uid, gid = sources.image_user()
    assert uid != 0 and gid != 0, f"Dockerfile: USER {uid}:{gid} is root"


def test_image_runs_the_python_the_project_is_checked_for() -> None:
    images = [sources.base_image(stage) for stage in sources.stages()]
    assert len(set(images)) == 1, (
        f"Dockerfile: the stages start from {images}; the wheels built in one must install "
        "in the other, so they need the same Python"
    )
    python = sources.image_python(images[0])
    checked = sources.python_version_checked()
    assert python == checked, (
        f"Dockerfile: the image runs Python {python}, but mypy checks the code for {checked} "
        "([tool.mypy] python_version)"
    )
    requires = sources.project()["requires-python"]
    assert SpecifierSet(requires).contains(python), (
        f"pyproject.toml: requires-python {requires!r} excludes the image's Python {python}"
    )


def test_entrypoint_is_the_service_console_script(services: dict[str, dict[str, Any]]) -> None:
    scripts = sources.project().get("scripts") or {}
    entrypoint = sources.exec_form("ENTRYPOINT")
    assert len(entrypoint) == 1 and entrypoint[0] in scripts, (
        f"Dockerfile: ENTRYPOINT is {entrypoint}; expected one of the console scripts that "
        f"pyproject.toml declares: {sorted(scripts)}"
    )
    assert sources.cli_accepts(WORKER_COMMAND), f"`service {WORKER_COMMAND}` does not parse"
    cmd = sources.exec_form("CMD")
    assert cmd == WORKER_COMMAND, f"Dockerfile: default CMD is {cmd}, expected {WORKER_COMMAND}"
    command = services["service"].get("command", cmd)
    command = command.split() if isinstance(command, str) else command
    assert command == WORKER_COMMAND, f"service: command is {command!r}, not a worker"
    for name, service in _app_services(services).items():
        command = service.get("command", cmd)
        command = command.split() if isinstance(command, str) else [str(c) for c in command]
        assert sources.cli_accepts(command), (
            f"{name}: `service {' '.join(command)}` is not a command of the service's CLI"
        )


def test_healthcheck_asks_the_health_route(final_stage: list[tuple[str, str]]) -> None:
    healthcheck = sources.last(final_stage, "HEALTHCHECK")
    assert healthcheck, "Dockerfile: no HEALTHCHECK, so `service_healthy` can never be reached"
    health = sources.route_of("HealthView")
    assert health in healthcheck, f"Dockerfile: HEALTHCHECK does not ask {health}: {healthcheck}"
    # Without MEDIA_WEB_PORT the check falls back to a port: the one the worker then uses.
    fallback = re.search(r"""MEDIA_WEB_PORT['"], *['"](\d+)['"]""", healthcheck)
    assert fallback, f"Dockerfile: HEALTHCHECK does not follow MEDIA_WEB_PORT: {healthcheck}"
    assert int(fallback[1]) == sources.default("web_port"), (
        f"Dockerfile: HEALTHCHECK falls back to port {fallback[1]}, but Settings' default "
        f"web_port is {sources.default('web_port')}"
    )
    base = sources.base_image(final_stage)
    assert "curl" not in healthcheck and "wget" not in healthcheck, (
        f"Dockerfile: HEALTHCHECK uses curl/wget, which {base} does not have"
    )


def test_dockerignore_lets_the_copied_sources_through() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "*" in patterns, ".dockerignore should exclude everything (`*`) and list what to keep"
    kept = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for keyword, args in sources.instructions(DOCKERFILE.read_text()):
        if keyword not in {"COPY", "ADD"} or "--from=" in args:
            continue
        *copied, _destination = [a for a in args.split() if not a.startswith("--")]
        for source in copied:
            source = source.rstrip("/")
            assert any(k == source or fnmatch.fnmatch(k, source) for k in kept), (
                f".dockerignore keeps {source} out of the build context, but the Dockerfile "
                f"copies it; add `!{source}`"
            )
    for private in (".stack", ".venv", ".git"):
        assert private not in kept, f".dockerignore sends {private} into the build context"


# --- monitoring: Prometheus and Grafana -------------------------------------------------


def _mounts(name: str, service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) of each bind mount; named volumes skipped."""
    result: list[tuple[Path, str, bool]] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):  # long syntax
            if entry.get("type") != "bind":
                continue
            source, target = str(entry["source"]), str(entry["target"])
            read_only = bool(entry.get("read_only"))
        else:
            source, _, rest = str(entry).partition(":")
            target, _, mode = rest.partition(":")
            if not source.startswith((".", "/")):
                continue  # a named volume
            read_only = "ro" in mode.split(",")
        assert target.startswith("/"), f"{name}: cannot read volume {entry!r}"
        result.append(((COMPOSE_FILE.parent / source).resolve(), target.rstrip("/"), read_only))
    return result


def _host_path(name: str, service: dict[str, Any], container_path: str) -> Path:
    """The host file that appears at container_path through the service's bind mounts."""
    for source, target, _ in sorted(_mounts(name, service), key=lambda m: -len(m[1])):
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target) :].lstrip("/")
    pytest.fail(f"{name}: nothing is mounted at {container_path}")


def _yaml_files(directory: Path) -> list[dict[str, Any]]:
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    assert files, f"no provisioning file in {directory}"
    loaded = [yaml.safe_load(path.read_text()) for path in files]
    for path, content in zip(files, loaded, strict=True):
        assert isinstance(content, dict), f"{path} is not a YAML mapping"
    return loaded


def _container_port(name: str, service: dict[str, Any], port: int) -> None:
    ports = _ports(name, service)
    assert (port, port) in ports, f'{name}: port {port} is not published as "{port}:{port}"'


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert "prometheus" in services, f"{COMPOSE_FILE.name} has no prometheus service"
    path = _host_path("prometheus", services["prometheus"], PROMETHEUS_CONFIG_PATH)
    assert path.is_file(), f"prometheus: {PROMETHEUS_CONFIG_PATH} is mounted from {path}, missing"
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict), f"{path} is not a YAML mapping"
    return config


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    try:
        loaded = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as exc:
        pytest.fail(f"{DASHBOARD.name} is not valid JSON: {exc}")
    assert isinstance(loaded, dict), f"{DASHBOARD.name} is not a JSON object"
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    result = []
    for panel in dashboard.get("panels") or []:
        result.append(panel)
        result.extend(panel.get("panels") or [])
    return result


def _expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query."""
    return [
        (str(panel.get("title")), str(target["expr"]))
        for panel in _panels(dashboard)
        for target in panel.get("targets") or []
        if "expr" in target
    ]


def test_monitoring_starts_with_the_stack(services: dict[str, dict[str, Any]]) -> None:
    for name in MONITORING_SERVICES:
        assert name in services, f"{COMPOSE_FILE.name} lacks the {name} service"
        service = services[name]
        assert not service.get("profiles"), f"{name} has profiles: `docker compose up` skips it"
        image = str(service.get("image", ""))
        repository, _, tag = image.partition(":")
        expected = MONITORING_IMAGES[name]
        assert repository == expected, (
            f"{name}: image {image!r} is not {expected}, whose configuration paths and port "
            "these tests know"
        )
        assert tag and tag != "latest", f"{name}: pin the image version ({image!r})"
        assert "service" in (service.get("depends_on") or {}), (
            f"{name}: does not depend on the service"
        )


_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION_UNITS["y"] = 365 * _DURATION_UNITS["d"]


def _seconds(duration: object) -> float:
    """A Prometheus or Grafana duration (15s, 1m30s, 500ms) in seconds."""
    text = str(duration)
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"cannot read duration {text!r}"
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def _service_jobs(prometheus_config: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """(job with Prometheus' defaults filled in, port) of each target on the compose service."""
    defaults = {"scrape_interval": "1m", "scrape_timeout": "10s"}
    defaults |= prometheus_config.get("global") or {}
    targets: list[tuple[dict[str, Any], int]] = []
    for job in prometheus_config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                if host == "service":
                    targets.append(({**defaults, **job}, int(port)))
    return targets


def test_prometheus_scrapes_the_service_metrics(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    web_port = _services_web_port(services)
    metrics_path = sources.route_of("MetricsView")
    targets = _service_jobs(prometheus_config)
    assert targets, (
        "prometheus.yml has no static target on the compose service `service` "
        f"(targets must be service:{web_port})"
    )
    for job, target_port in targets:
        assert target_port == web_port, (
            f"prometheus.yml: job {job['job_name']} scrapes service:{target_port}, but "
            f"MEDIA_WEB_PORT is {web_port}"
        )
        path = job.get("metrics_path", "/metrics")
        assert path == metrics_path, (
            f"prometheus.yml: job {job['job_name']} scrapes {path}, the service serves its "
            f"metrics at {metrics_path}"
        )
        assert job.get("scheme", "http") == "http", "the service serves plain http"
        interval, timeout = job["scrape_interval"], job["scrape_timeout"]
        assert _seconds(timeout) <= _seconds(interval), (
            f"prometheus.yml: job {job['job_name']} has a scrape_timeout {timeout} longer than "
            f"its scrape_interval {interval}, which Prometheus refuses"
        )
    _container_port("prometheus", services["prometheus"], PROMETHEUS_PORT)


def test_grafana_mounts_exist_and_are_read_only(services: dict[str, dict[str, Any]]) -> None:
    for name in MONITORING_SERVICES:
        mounts = _mounts(name, services[name])
        assert mounts, f"{name}: mounts nothing from the repository"
        for source, target, read_only in mounts:
            assert source.exists(), f"{name}: mounts {source} at {target}, but it does not exist"
            assert source.is_relative_to(ROOT), f"{name}: mounts {source}, outside the repo"
            assert read_only, f"{name}: {source} is mounted read-write at {target}; add :ro"
    grafana = services["grafana"]
    provisioning = _host_path("grafana", grafana, GRAFANA_PROVISIONING_PATH)
    assert provisioning.is_dir(), f"grafana: {GRAFANA_PROVISIONING_PATH} is not mounted"
    _container_port("grafana", grafana, GRAFANA_PORT)


def test_grafana_anonymous_users_only_view(services: dict[str, dict[str, Any]]) -> None:
    """Anonymous access, if on, is Viewer: reading dashboards needs no login, changing does."""
    env = _environment("grafana", services["grafana"])
    if env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        role = env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer")  # Grafana's default
        assert role not in GRAFANA_WRITING_ROLES, (
            f"grafana: anonymous users get role {role}: anyone reaching the port could change "
            "dashboards and data sources"
        )
        assert role == "Viewer", f"grafana: anonymous users get role {role}, expected Viewer"
    assert env.get("GF_USERS_ALLOW_SIGN_UP", "false").lower() == "false", (
        "grafana: GF_USERS_ALLOW_SIGN_UP lets anyone reaching the port create an account"
    )
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        path = _host_path("grafana", services["grafana"], home)
        assert path.is_file(), f"grafana: the home dashboard {home} is mounted from {path}, missing"


def test_grafana_datasource_is_the_prometheus_service(
    services: dict[str, dict[str, Any]],
    prometheus_config: dict[str, Any],
    dashboard: dict[str, Any],
) -> None:
    directory = _host_path("grafana", services["grafana"], GRAFANA_PROVISIONING_PATH)
    datasources = [
        source
        for content in _yaml_files(directory / "datasources")
        for source in content.get("datasources") or []
    ]
    prometheus = [d for d in datasources if d.get("type") == "prometheus"]
    assert len(prometheus) == 1, f"expected one Prometheus data source, found {prometheus}"
    url = urlsplit(str(prometheus[0].get("url")))
    assert (url.scheme, url.hostname, url.port) == ("http", "prometheus", PROMETHEUS_PORT), (
        f"grafana: the data source URL {prometheus[0].get('url')} is not "
        f"http://prometheus:{PROMETHEUS_PORT} (the compose service)"
    )
    interval = (prometheus[0].get("jsonData") or {}).get("timeInterval")
    assert interval, "grafana: the data source sets no timeInterval ($__rate_interval needs it)"
    for job, _ in _service_jobs(prometheus_config):
        scrape = job["scrape_interval"]
        assert _seconds(interval) == _seconds(scrape), (
            f"grafana: the data source's timeInterval {interval!r} is not the scrape_interval "
            f"{scrape!r} of job {job['job_name']} ($__rate_interval depends on it)"
        )
    # The dashboard's panels name a data source uid, or the `datasource` variable whose
    # default must be the provisioned one.
    uid = prometheus[0].get("uid")
    variables = {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list") or []}
    for panel in _panels(dashboard):
        for source in [
            panel.get("datasource"),
            *(t.get("datasource") for t in panel.get("targets") or []),
        ]:
            if not isinstance(source, dict) or source.get("type") != "prometheus":
                continue
            ref = str(source.get("uid"))
            if ref.startswith("${") and ref.endswith("}"):
                variable = variables.get(ref[2:-1]) or {}
                ref = str((variable.get("current") or {}).get("value"))
            assert ref == uid, (
                f"{DASHBOARD.name}: panel {panel.get('title')!r} uses data source {ref!r}, "
                f"but the provisioned Prometheus has uid {uid!r}"
            )


def test_grafana_loads_the_dashboard(
    services: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    grafana = services["grafana"]
    directory = _host_path("grafana", grafana, GRAFANA_PROVISIONING_PATH)
    providers = [
        provider
        for content in _yaml_files(directory / "dashboards")
        for provider in content.get("providers") or []
    ]
    assert providers, "grafana: no dashboard provider"
    loaded: list[Path] = []
    for provider in providers:
        path = (provider.get("options") or {}).get("path")
        assert path, f"grafana: dashboard provider {provider.get('name')} has no options.path"
        host = _host_path("grafana", grafana, str(path))
        assert host.is_dir(), f"grafana: provider path {path} is mounted from {host}, missing"
        loaded.extend(p.resolve() for p in host.glob("*.json"))
    assert DASHBOARD.resolve() in loaded, (
        f"grafana: no dashboard provider reads {DASHBOARD.relative_to(ROOT)}"
    )


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard.get("uid"), f"{DASHBOARD.name}: no uid"
    assert dashboard.get("title"), f"{DASHBOARD.name}: no title"
    assert isinstance(dashboard.get("schemaVersion"), int), f"{DASHBOARD.name}: no schemaVersion"
    panels = _panels(dashboard)
    ids = [panel.get("id") for panel in panels]
    assert len(ids) == len(set(ids)) and None not in ids, (
        f"{DASHBOARD.name}: panel ids must be present and unique: {ids}"
    )
    for panel in panels:
        if panel.get("type") == "row":
            continue
        assert panel.get("title"), f"{DASHBOARD.name}: panel {panel.get('id')} has no title"
        exprs = [t.get("expr") for t in panel.get("targets") or []]
        assert exprs and all(exprs), (
            f"{DASHBOARD.name}: panel {panel['title']!r} has a query without an expression"
        )
        assert {"h", "w", "x", "y"} <= set(panel.get("gridPos") or {}), (
            f"{DASHBOARD.name}: panel {panel['title']!r} has no complete gridPos"
        )


_METRIC = re.compile(r"media_[a-z_]+")


def _base_metric(name: str) -> str | None:
    """The exported metric a series name belongs to, or None if the service has none."""
    if SERVICE_METRICS.get(name) in ("counter", "gauge"):
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and SERVICE_METRICS.get(base) == "histogram":
            return base
    return None


def test_dashboard_queries_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    expressions = _expressions(dashboard)
    assert expressions, f"{DASHBOARD.name}: no panel has a query"
    used = set()
    for title, expr in expressions:
        names = _METRIC.findall(expr)
        assert names, f"{DASHBOARD.name}: panel {title!r} queries no media_* metric: {expr}"
        for name in names:
            base = _base_metric(name)
            assert base, (
                f"{DASHBOARD.name}: panel {title!r} queries {name}, which the service does not "
                f"export (histograms only as {'/'.join(HISTOGRAM_SUFFIXES)}; known: "
                f"{sorted(SERVICE_METRICS)})"
            )
            used.add(base)
        if "histogram_quantile" in expr:
            assert re.search(r"by \([^)]*\ble\b", expr), (
                f"{DASHBOARD.name}: panel {title!r}: histogram_quantile needs the `le` label "
                f"kept (sum by (le, ...)): {expr}"
            )
    unused = sorted(set(SERVICE_METRICS) - used)
    assert not unused, f"{DASHBOARD.name}: no panel shows {unused}"
