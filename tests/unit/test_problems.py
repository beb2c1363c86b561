"""From an exception to the problem details a request answers with: the one mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.api import middleware, problems
from service.domain.enums import DeadLetterReason
from service.errors import (
    BadRequest,
    ConcurrentUpdateError,
    DeadLetterUnavailable,
    DecodeError,
    Forbidden,
    NotFound,
    RedisRequirementError,
    TopicError,
    TransientError,
)

UNAVAILABLE = "a service it depends on is unreachable; retry shortly"
INTERNAL = "the service failed; the log has the details"


def test_the_kinds_keep_their_published_type_and_title() -> None:
    """Clients match on `type`; these strings are part of the API."""
    assert [(k.status, k.type, k.title) for k in problems.KINDS] == [
        (400, "/problems/bad-request", "A parameter is not valid"),
        (401, "/problems/unauthorized", "A valid bearer token is required"),
        (403, "/problems/forbidden", "Refused as the service is configured"),
        (404, "/problems/not-found", "Nothing is known under this name"),
        (405, "/problems/method-not-allowed", "This route does not offer this method"),
        (500, "/problems/internal", "The service failed on this request"),
        (503, "/problems/unavailable", "The store cannot be reached"),
    ]


@pytest.mark.parametrize(
    ("exc", "kind", "detail"),
    [
        (BadRequest("limit must be between 1 and 100"), problems.BAD_REQUEST, None),
        (NotFound("asset 'a1' is not registered"), problems.NOT_FOUND, None),
        (Forbidden("no API token is configured"), problems.FORBIDDEN, None),
        (TransientError("gone"), problems.UNAVAILABLE, UNAVAILABLE),
        (ConcurrentUpdateError("asset a1 changed 20 times"), problems.UNAVAILABLE, UNAVAILABLE),
        (DeadLetterUnavailable("refused"), problems.UNAVAILABLE, UNAVAILABLE),
        (RedisConnectionError("Connection refused"), problems.UNAVAILABLE, UNAVAILABLE),
        (ResponseError("LOADING Redis is loading"), problems.UNAVAILABLE, UNAVAILABLE),
        (ResponseError("WRONGTYPE Operation against a key"), problems.INTERNAL, INTERNAL),
        (DecodeError(DeadLetterReason.INVALID_JSON, "not JSON"), problems.INTERNAL, INTERNAL),
        (TopicError("cannot create topic"), problems.INTERNAL, INTERNAL),
        (RedisRequirementError("eviction"), problems.INTERNAL, INTERNAL),
        (ValueError("a bug"), problems.INTERNAL, INTERNAL),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_each_error_maps_to_its_problem(
    exc: BaseException, kind: problems.Kind, detail: str | None
) -> None:
    assert problems.for_exception(exc) == (kind, str(exc) if detail is None else detail)


def test_internal_failures_do_not_leak_their_text() -> None:
    _, detail = problems.for_exception(KeyError("redis://:secret@host:6379"))
    assert "secret" not in detail


async def _through_middleware(exc: BaseException, path: str = "/v1/assets/a1") -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    (guard,) = middleware.build()
    response = await guard(make_mocked_request("GET", path), handler)
    assert isinstance(response, web.Response) and isinstance(response.text, str)
    return response.status, response.content_type, json.loads(response.text)


@pytest.mark.parametrize(
    ("exc", "status", "type_", "detail"),
    [
        (BadRequest("filter by channel or by campaign, not both"), 400, "bad-request", None),
        (NotFound("library 'l1' has no registered assets"), 404, "not-found", None),
        (RedisConnectionError("refused"), 503, "unavailable", UNAVAILABLE),
        (ConcurrentUpdateError("asset a1 changed 20 times"), 503, "unavailable", UNAVAILABLE),
        (RuntimeError("a bug"), 500, "internal", INTERNAL),
    ],
)
async def test_the_middleware_answers_every_error_with_its_problem(
    exc: BaseException, status: int, type_: str, detail: str | None
) -> None:
    got_status, content_type, body = await _through_middleware(exc)
    kind, _ = problems.for_exception(exc)
    assert got_status == status
    assert content_type == problems.CONTENT_TYPE
    assert body == {
        "type": f"/problems/{type_}",
        "title": kind.title,
        "status": status,
        "detail": str(exc) if detail is None else detail,
        "instance": "/v1/assets/a1",
    }


async def test_the_middleware_logs_failures_but_not_bad_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger=middleware.__name__):
        await _through_middleware(BadRequest("no"))
        await _through_middleware(NotFound("no"))
        assert caplog.records == []
        await _through_middleware(RedisConnectionError("refused"))
        await _through_middleware(RuntimeError("a bug"))
    assert [(r.levelname, r.exc_info is not None) for r in caplog.records] == [
        ("WARNING", False),
        ("ERROR", True),
    ]
