"""The service's one error hierarchy, and the layering that keeps the domain pure."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

from service import errors
from service.domain.enums import DeadLetterReason
from service.errors import (
    BadRequest,
    ConcurrentUpdateError,
    ConfigurationError,
    DeadLetterUnavailable,
    DecodeError,
    Forbidden,
    NotFound,
    RedisRequirementError,
    RequestError,
    ServiceError,
    TopicError,
    TransientError,
)
from service.resilience import is_transient

SERVICE = Path(errors.__file__).resolve().parent

EVERY_ERROR = [
    TransientError("Redis away"),
    DeadLetterUnavailable("media.dead-letter refused the record"),
    ConcurrentUpdateError("asset a1 changed 20 times"),
    DecodeError(DeadLetterReason.INVALID_JSON, "not JSON"),
    TopicError("cannot create topic 'media.x': error 38"),
    ConfigurationError("MEDIA_KAFKA_SSL_CAFILE: ca.pem is not a usable PEM CA certificate"),
    RedisRequirementError("maxmemory-policy is allkeys-lru"),
    BadRequest("limit must be an integer, got 'ten'"),
    NotFound("asset 'a1' is not registered"),
    Forbidden("manual suggestions are refused while no API token is configured"),
]


def test_the_module_defines_exactly_the_errors_of_its_tree() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert defined == {type(e) for e in EVERY_ERROR} | {ServiceError, RequestError}
    for cls in defined:
        assert cls.__name__ in (errors.__doc__ or ""), f"the docstring's tree lacks {cls}"


@pytest.mark.parametrize("error", EVERY_ERROR, ids=lambda e: type(e).__name__)
def test_every_error_is_a_service_error(error: ServiceError) -> None:
    assert isinstance(error, ServiceError)
    assert str(error)


@pytest.mark.parametrize(
    "error",
    [e for e in EVERY_ERROR if isinstance(e, TransientError)],
    ids=lambda e: type(e).__name__,
)
def test_the_infrastructure_errors_are_transient(error: ServiceError) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [e for e in EVERY_ERROR if not isinstance(e, TransientError)],
    ids=lambda e: type(e).__name__,
)
def test_the_other_errors_are_not(error: ServiceError) -> None:
    assert not is_transient(error)


def test_the_transient_errors_are_those_that_clear_up_by_themselves() -> None:
    transient = {type(e) for e in EVERY_ERROR if isinstance(e, TransientError)}
    assert transient == {TransientError, DeadLetterUnavailable, ConcurrentUpdateError}


def test_the_api_errors_are_request_errors() -> None:
    assert issubclass(BadRequest, RequestError) and issubclass(NotFound, RequestError)
    assert not issubclass(BadRequest, NotFound) and not issubclass(NotFound, BadRequest)


def test_a_decode_error_carries_what_its_dead_letter_needs() -> None:
    error = DecodeError(DeadLetterReason.SCHEMA_VIOLATION, "name: missing", "e1")
    assert (error.code, error.reason, error.event_id) == (
        DeadLetterReason.SCHEMA_VIOLATION,
        "name: missing",
        "e1",
    )
    assert str(error) == "name: missing"


def _imports(path: Path) -> set[str]:
    """The absolute module names a source file imports, wherever in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_errors_import_only_the_standard_library_and_the_domain_enums() -> None:
    for name in _imports(SERVICE / "errors.py"):
        top = name.split(".")[0]
        assert name == "service.domain.enums" or (
            top in sys.stdlib_module_names and top != "asyncio"
        ), name


DOMAIN_FORBIDDEN = {"faust", "mode", "redis", "aiokafka", "aiohttp", "asyncio"}


@pytest.mark.parametrize("path", sorted((SERVICE / "domain").glob("*.py")), ids=lambda p: p.name)
def test_the_domain_stays_pure(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] not in DOMAIN_FORBIDDEN, (path.name, name)
        if name.startswith("service"):
            assert name.startswith("service.domain") or name == "service.errors", (
                path.name,
                name,
            )


# Where the client libraries' exceptions may be named: the adapters (service/store,
# service/streaming) and the one classification (service/resilience.py).
LIBRARY_ERRORS = ("redis.exceptions", "aiokafka.errors")
ADAPTERS = ("store", "streaming", "resilience.py")


def test_library_exceptions_are_classified_only_at_the_adapters_edge() -> None:
    for path in sorted(SERVICE.rglob("*.py")):
        if path.relative_to(SERVICE).parts[0] in ADAPTERS:
            continue
        text = path.read_text()
        for module in LIBRARY_ERRORS:
            assert module not in text, f"{path.relative_to(SERVICE)} names {module}"
        assert not any(n.startswith(LIBRARY_ERRORS) for n in _imports(path)), path
