"""What every request passes through: the optional bearer token and error shaping.

Runs in the aiohttp application under Faust's web server, so it also answers for
what no view handles: unknown paths and methods the API does not offer. It is the one
place where an exception a view raises becomes problem details
(`service.api.problems.for_exception`): `BadRequest` 400, `NotFound` 404, a transient
failure 503 (logged as a warning), anything else 500 (logged with its traceback).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.api import problems

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROTECTED_PREFIX = "/v1/"


def build(token: SecretStr | None) -> list[Any]:
    """The middlewares for these settings: a token protects every `/v1` route."""
    expected = None if token is None else token.get_secret_value().encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if expected is not None and path.startswith(PROTECTED_PREFIX):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            # compare_digest takes the same time wherever the strings differ
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
                return problems.response(
                    problems.UNAUTHORIZED,
                    "send the API token as `Authorization: Bearer <token>`",
                    path,
                    headers={"WWW-Authenticate": 'Bearer realm="media-intelligence"'},
                )
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return problems.response(problems.NOT_FOUND, f"no route {path}", path)
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            return problems.response(
                problems.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here (allowed: {allowed})",
                path,
                headers={"Allow": allowed},
            )
        except web.HTTPException:
            raise
        except Exception as exc:
            kind, detail = problems.for_exception(exc)
            if kind is problems.UNAVAILABLE:
                log.warning("%s %s: %r", request.method, path, exc)
            elif kind is problems.INTERNAL:
                log.exception("%s %s failed", request.method, path)
            return problems.response(kind, detail, path)

    return [guard]
