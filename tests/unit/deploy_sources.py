"""What the deployment files must agree with, read from where it is defined.

test_compose.py and test_k8s.py take their expected values from here rather than
restating what the YAML says: the image from deploy/Dockerfile, the name, version and
console script from pyproject.toml, settings and their defaults from
service.config.Settings, metric names from the service's metrics registry and the
served paths from its web routes.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from service.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

Instruction = tuple[str, str]  # (KEYWORD, arguments)


# --- settings -----------------------------------------------------------------------------


def field_of(variable: str) -> str:
    """The Settings field an environment variable sets (MEDIA_WEB_PORT -> web_port)."""
    return variable.removeprefix(ENV_PREFIX).lower()


def variable_of(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def default(field: str) -> Any:
    """The default of a Settings field: what a manifest that leaves it unset relies on."""
    assert field in Settings.model_fields, f"Settings has no field {field!r}"
    return Settings.model_fields[field].default


def effective(environment: dict[str, str], field: str) -> str:
    """The value a setting takes in an environment: its variable, else the default."""
    return environment.get(variable_of(field), str(default(field)))


# --- pyproject.toml -----------------------------------------------------------------------


@cache
def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"]
    return table


def image_reference() -> str:
    """The image name the docs build (`docker build -t NAME:VERSION`): the project's."""
    return f"{project()['name']}:{project()['version']}"


def python_version_checked() -> str:
    """The Python version mypy checks the code for."""
    version: str = tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]["python_version"]
    return version


# --- deploy/Dockerfile --------------------------------------------------------------------


def instructions(dockerfile: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    result: list[Instruction] = []
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


def stages() -> list[list[Instruction]]:
    """The Dockerfile's stages, each from its FROM."""
    found: list[list[Instruction]] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            found.append([])
        assert found, f"{DOCKERFILE}: {keyword} before the first FROM"
        found[-1].append((keyword, args))
    assert found, f"{DOCKERFILE} has no FROM"
    return found


def final_stage() -> list[Instruction]:
    """The instructions of the last stage: the image that runs."""
    return stages()[-1]


def last(stage: list[Instruction], keyword: str) -> str | None:
    values = [args for kw, args in stage if kw == keyword]
    return values[-1] if values else None


def base_image(stage: list[Instruction]) -> str:
    """The image a stage starts from (`FROM [--platform=...] IMAGE [AS name]`)."""
    words = [w for w in stage[0][1].split() if not w.startswith("--")]
    return words[0]


def image_python(image: str) -> str:
    """The Python version of an official python image (python:3.11-slim -> 3.11)."""
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)[\w.-]*", image)
    assert match, f"{DOCKERFILE}: {image} is not an official python:X.Y image"
    return match[1]


def image_user() -> tuple[int, int | None]:
    """The numeric uid (and gid) the image runs as; a name would not let runAsNonRoot work."""
    user = last(final_stage(), "USER")
    assert user, f"{DOCKERFILE}: the final stage sets no USER, so the service runs as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and (not gid or gid.isdigit()), (
        f"{DOCKERFILE}: USER {user} is not numeric (uid[:gid]); Kubernetes' runAsNonRoot "
        "cannot verify a user name"
    )
    return int(uid), int(gid) if gid else None


def exposed_ports() -> set[int]:
    return {
        int(port.split("/")[0])
        for keyword, args in final_stage()
        if keyword == "EXPOSE"
        for port in args.split()
    }


def exec_form(keyword: str) -> list[str]:
    """ENTRYPOINT or CMD of the final stage, which must be in exec form."""
    args = last(final_stage(), keyword)
    assert args is not None, f"the Dockerfile's final stage has no {keyword}"
    assert args.startswith("["), (
        f"{keyword} {args} is in shell form: /bin/sh would be PID 1 and swallow SIGTERM; "
        'use the exec form ["..."]'
    )
    value = json.loads(args)
    assert isinstance(value, list), f"{keyword} {args} is not a JSON list"
    return [str(item) for item in value]


# --- the service itself -------------------------------------------------------------------


def exported_metrics() -> dict[str, str]:
    """Every metric a worker exports at /metrics, by the name a query uses, with its type.

    Counters are queried as NAME_total, gauges by their name, histograms through their
    _bucket, _sum and _count series (HISTOGRAM_SUFFIXES).
    """
    from service.observability import Instruments

    instruments = Instruments.create()
    instruments.watch_lag(list)  # the lag gauge exists once a consumer is watched
    names: dict[str, str] = {}
    for family in instruments.registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def route_of(view_name: str) -> str:
    """The path the web server serves a view at (HealthView -> /healthz)."""
    from service.api.views import ROUTES, UNDOCUMENTED

    paths = [
        path for path, view in {**ROUTES, **UNDOCUMENTED}.items() if view_name == view.__name__
    ]
    assert len(paths) == 1, f"the web API serves {view_name} at {paths}"
    return paths[0]


# The arguments of the `service` command that run a stream worker (service/cli.py).
WORKER_COMMAND = ["worker"]


def cli_accepts(arguments: list[str]) -> bool:
    """Whether the `service` command accepts these arguments (only parsed, nothing runs)."""
    from service.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([*arguments, "--help"])
        except SystemExit as exit_:
            return exit_.code == 0
    return False
