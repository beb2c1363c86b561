"""What may import what inside service/: the rule of docs/architecture.md, checked.

Every module under service/ belongs to one room. A room may import the rooms listed in
MAY_IMPORT, and its own; MODULE_EXCEPTIONS names the few single imports that cross the
rule on purpose, each with its reason. Library rules say which outside packages a room
keeps away from (the domain stays pure; only the adapters talk to Redis or Kafka).
Imports are read with ast wherever they stand in a file (also inside functions and
`if TYPE_CHECKING:` blocks), so nothing is imported here.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Room -> its modules and packages (a package holds every module below it).
ROOMS: dict[str, tuple[str, ...]] = {
    # Settings, the error hierarchy, the transient-failure rule, the metrics and the
    # garbage collector's settings: used by all.
    "shared": (
        "service",
        "service.collector",
        "service.config",
        "service.errors",
        "service.resilience",
        "service.observability",
        "service.tls",
    ),
    "domain": ("service.domain",),
    "store": ("service.store",),
    "handlers": ("service.handlers",),
    "streaming": ("service.streaming",),
    "api": ("service.api",),
    "composition": ("service.app", "service.runtime", "service.refresher"),
    "operations": (
        "service.__main__",
        "service.cli",
        "service.operations",
        "service.topics",
        "service.demo",
        "service.schema_files",
    ),
}

MAY_IMPORT: dict[str, set[str]] = {
    "shared": set(),
    "domain": {"shared"},
    "store": {"shared", "domain"},
    "handlers": {"shared", "domain", "store"},
    "streaming": {"shared"},
    "api": {"shared", "domain", "store", "streaming"},
    "composition": {"shared", "domain", "store", "handlers", "streaming", "api"},
    "operations": {"shared", "domain", "store", "handlers", "streaming", "api", "composition"},
}

# (importing module or package, imported module): why this one import crosses the rule.
MODULE_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("service.errors", "service.domain.enums"): (
        "DecodeError carries the DeadLetterReason its dead letter is sent with; enums "
        "imports nothing"
    ),
    ("service.api.views", "service.runtime"): (
        "the views reach the stores through the Runtime the app carries (typed access only: "
        "runtime imports nothing of the api)"
    ),
}

# Standard-library modules the pure core keeps away from: I/O, clocks, chance, concurrency.
IMPURE_STDLIB = {
    "asyncio",
    "io",
    "logging",
    "os",
    "pathlib",
    "random",
    "socket",
    "subprocess",
    "threading",
    "time",
}
# Outside packages the domain may use besides the standard library.
DOMAIN_LIBRARIES = {"pydantic"}
# Room -> outside packages it never imports.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    # Only the error classification (service.resilience) names Redis's and Kafka's errors.
    "shared": {"faust", "mode", "aiohttp"},
    # Redis only: Kafka and the web are someone else's business.
    "store": {"faust", "mode", "aiokafka", "aiohttp", "prometheus_client"},
    # Handlers talk to Redis through the stores and to Kafka through the Producer port.
    "handlers": {"faust", "mode", "aiokafka", "aiohttp", "redis"},
    # The transport extension knows nothing of Redis or the web.
    "streaming": {"redis", "aiohttp"},
    # Views read through the stores and the runtime, never Redis or Kafka directly.
    "api": {"redis", "aiokafka"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(SERVICE.rglob("*.py"))}


def _belongs(module: str, member: str) -> bool:
    """A module is a member, or below a member package (the top package only as itself)."""
    return module == member or (member != "service" and module.startswith(member + "."))


def room_of(module: str) -> str | None:
    for room, members in ROOMS.items():
        if any(_belongs(module, member) for member in members):
            return room
    return None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import in a module of service/, relative ones resolved.

    `from service import errors` imports service.errors, not the package service.
    """
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in MODULES else source), node.lineno


def _service_imports() -> Iterator[tuple[str, str, int]]:
    for module in MODULES:
        for imported, line in imports_of(module):
            if imported == "service" or imported.startswith("service."):
                yield module, imported, line


def _exception_for(module: str, imported: str) -> str | None:
    for (importer, target), reason in MODULE_EXCEPTIONS.items():
        if _belongs(module, importer) and _belongs(imported, target):
            return reason
    return None


def _is_allowed(module: str, imported: str) -> bool:
    source, target = room_of(module), room_of(imported)
    assert source and target
    return target == source or target in MAY_IMPORT[source]


def test_every_module_is_in_one_room() -> None:
    homeless = [module for module in MODULES if room_of(module) is None]
    assert not homeless, (
        f"{homeless} belong to no room: add them to ROOMS here and to docs/architecture.md"
    )
    for module in MODULES:
        rooms = [
            room for room, members in ROOMS.items() if any(_belongs(module, m) for m in members)
        ]
        assert len(rooms) == 1, f"{module} is in the rooms {rooms}"
    for room, members in ROOMS.items():
        for member in members:
            assert member in MODULES, f"ROOMS[{room!r}] names {member}, which does not exist"


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_imports_follow_the_rule(room: str) -> None:
    broken = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {imported} "
        f"({room} may import {sorted(MAY_IMPORT[room]) or 'nothing'} of the other rooms, "
        f"not {room_of(imported)})"
        for module, imported, line in _service_imports()
        if room_of(module) == room
        and not _is_allowed(module, imported)
        and _exception_for(module, imported) is None
    ]
    assert not broken, "\n".join(["imports against the rule of docs/architecture.md:", *broken])


def test_every_exception_is_still_needed() -> None:
    """An exception the code no longer uses is removed, so the rule stays as tight as the code."""
    used = {
        (importer, target)
        for module, imported, _ in _service_imports()
        if not _is_allowed(module, imported)
        for importer, target in MODULE_EXCEPTIONS
        if _belongs(module, importer) and _belongs(imported, target)
    }
    unused = sorted(set(MODULE_EXCEPTIONS) - used)
    assert not unused, f"MODULE_EXCEPTIONS lists imports the rule no longer needs: {unused}"


def test_no_room_imports_the_operations() -> None:
    """The command line and its operations are the top: nothing below imports them."""
    broken = [
        f"{module} imports {imported}"
        for module, imported, _ in _service_imports()
        if room_of(imported) == "operations" and room_of(module) != "operations"
    ]
    assert not broken, broken


@pytest.mark.parametrize("module", sorted(m for m in MODULES if room_of(m) == "domain"))
def test_the_domain_is_pure(module: str) -> None:
    for imported, line in imports_of(module):
        top = imported.split(".")[0]
        if top in ("service", "__future__"):
            continue
        where = f"{MODULES[module].relative_to(ROOT)}:{line}"
        assert top in sys.stdlib_module_names or top in DOMAIN_LIBRARIES, (
            f"{where} imports {imported}: the domain uses the standard library and "
            f"{sorted(DOMAIN_LIBRARIES)} only"
        )
        assert top not in IMPURE_STDLIB, (
            f"{where} imports {imported}: the domain does no I/O, reads no clock and draws no "
            "chance; its callers pass what it needs"
        )


@pytest.mark.parametrize("room", sorted(FORBIDDEN_LIBRARIES))
def test_rooms_keep_away_from_the_libraries_of_others(room: str) -> None:
    broken = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {imported}"
        for module in MODULES
        if room_of(module) == room
        for imported, line in imports_of(module)
        if imported.split(".")[0] in FORBIDDEN_LIBRARIES[room]
    ]
    assert not broken, f"{room} never imports {sorted(FORBIDDEN_LIBRARIES[room])}: {broken}"


def test_the_architecture_page_names_every_room() -> None:
    text = ARCHITECTURE.read_text()
    for room, members in ROOMS.items():
        for member in members:
            if member == "service":
                continue
            path = member.replace(".", "/")
            named = f"{path}/" if (ROOT / path).is_dir() else f"{path}.py"
            assert named.removeprefix("service/") in text or named in text, (
                f"docs/architecture.md does not name {named} (room {room})"
            )
