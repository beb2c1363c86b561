"""What every request passes through: the optional bearer tokens and error shaping.

Runs in the aiohttp application under Faust's web server, so it also answers for
what no view handles: unknown paths and methods the API does not offer. It is the one
place where an exception a view raises becomes problem details
(`service.api.problems.for_exception`): `BadRequest` 400, `NotFound` 404, a transient
failure 503 (logged as a warning), anything else 500 (logged with its traceback).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.api import problems
from service.observability import Instruments

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROTECTED_PREFIX = "/v1/"


METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # the route label of a path (or method) no route serves


def _accepts(header: str, expected: Sequence[bytes]) -> bool:
    """Whether an Authorization header carries one of the expected bearer tokens.

    Every token is compared, in constant time (compare_digest takes the same time
    wherever the strings differ), with no early exit: the answer's timing tells nothing
    about which token matched or how much of one.
    """
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    candidate = given.encode()
    matched = False
    for token in expected:
        matched |= hmac.compare_digest(candidate, token)
    return matched


def build(
    api_tokens: Sequence[SecretStr] = (),
    metrics_tokens: Sequence[SecretStr] = (),
    instruments: Instruments | None = None,
) -> list[Any]:
    """The middlewares for these settings.

    Tokens (any one of them passes) protect every `/v1` route, and `/metrics` with its
    own; none leaves those routes open. With `instruments`, every answer is counted and
    timed by its declared route (`/v1/assets/{asset_id}`, never the path itself, so
    that ids do not become label values).
    """
    api = tuple(t.get_secret_value().encode() for t in api_tokens)
    metrics = tuple(t.get_secret_value().encode() for t in metrics_tokens)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        expected = (
            api if path.startswith(PROTECTED_PREFIX) else metrics if path == METRICS_PATH else ()
        )
        if expected and not _accepts(request.headers.get("Authorization", ""), expected):
            which = "metrics token" if expected is metrics else "API token"
            return problems.response(
                problems.UNAUTHORIZED,
                f"send the {which} as `Authorization: Bearer <token>`",
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

    if instruments is None:
        return [guard]

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # unless an answer comes back
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = UNMATCHED if resource is None else resource.canonical
            instruments.http_requests.labels(route, request.method, str(status)).inc()
            instruments.http_seconds.labels(route).observe(time.perf_counter() - started)

    return [measure, guard]
