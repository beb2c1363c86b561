"""Errors as RFC 9457 problem details, with a stable `type` per kind of error.

`for_exception` is the one mapping from an exception to the problem a request answers
with; the middleware applies it to whatever a view raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from service.api.schemas import Problem
from service.errors import BadRequest, Forbidden, NotFound
from service.resilience import is_transient

CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    type: str
    title: str


BAD_REQUEST = Kind(400, "/problems/bad-request", "A parameter is not valid")
UNAUTHORIZED = Kind(401, "/problems/unauthorized", "A valid bearer token is required")
FORBIDDEN = Kind(403, "/problems/forbidden", "Refused as the service is configured")
NOT_FOUND = Kind(404, "/problems/not-found", "Nothing is known under this name")
METHOD_NOT_ALLOWED = Kind(
    405, "/problems/method-not-allowed", "This route does not offer this method"
)
INTERNAL = Kind(500, "/problems/internal", "The service failed on this request")
UNAVAILABLE = Kind(503, "/problems/unavailable", "The store cannot be reached")

KINDS = (
    BAD_REQUEST,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    INTERNAL,
    UNAVAILABLE,
)

UNAVAILABLE_DETAIL = "a service it depends on is unreachable; retry shortly"
INTERNAL_DETAIL = "the service failed; the log has the details"


def for_exception(exc: BaseException) -> tuple[Kind, str]:
    """The kind and detail of the problem a request that raised `exc` answers with.

    `BadRequest`, `Forbidden` and `NotFound` (`service.errors`) carry their detail; a transient
    failure (`service.resilience.is_transient`: Redis or Kafka away, any
    `TransientError`) is 503, and anything else 500, both with a fixed detail that
    reveals nothing of the exception (the log has it).
    """
    if isinstance(exc, BadRequest):
        return BAD_REQUEST, str(exc)
    if isinstance(exc, Forbidden):
        return FORBIDDEN, str(exc)
    if isinstance(exc, NotFound):
        return NOT_FOUND, str(exc)
    if is_transient(exc):
        return UNAVAILABLE, UNAVAILABLE_DETAIL
    return INTERNAL, INTERNAL_DETAIL


def body(kind: Kind, detail: str, instance: str | None) -> Problem:
    return Problem(
        type=kind.type, title=kind.title, status=kind.status, detail=detail, instance=instance
    )


def response(
    kind: Kind, detail: str, instance: str | None, headers: dict[str, str] | None = None
) -> web.Response:
    """A complete aiohttp response, for the middleware that runs outside the views."""
    return web.Response(
        status=kind.status,
        text=json.dumps(body(kind, detail, instance).model_dump()),
        content_type=CONTENT_TYPE,
        headers=headers,
    )
