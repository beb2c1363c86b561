"""Errors as RFC 9457 problem details, with a stable `type` per kind of error."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from service.api.schemas import Problem

CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    type: str
    title: str


BAD_REQUEST = Kind(400, "/problems/bad-request", "A parameter is not valid")
UNAUTHORIZED = Kind(401, "/problems/unauthorized", "A valid bearer token is required")
NOT_FOUND = Kind(404, "/problems/not-found", "Nothing is known under this name")
METHOD_NOT_ALLOWED = Kind(405, "/problems/method-not-allowed", "The API only reads")
INTERNAL = Kind(500, "/problems/internal", "The service failed on this request")
UNAVAILABLE = Kind(503, "/problems/unavailable", "The store cannot be reached")

KINDS = (BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, METHOD_NOT_ALLOWED, INTERNAL, UNAVAILABLE)


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
