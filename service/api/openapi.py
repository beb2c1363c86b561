"""The OpenAPI 3.1 document of the HTTP API, built from the same models the views return.

`OPERATIONS` is the one description of every route; a test checks it against the
routes the server really has, and a property-based test fuzzes the live server
from this document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import service
from service.api import problems, schemas
from service.domain.enums import Channel, Priority, SuggestionType
from service.domain.events import ManualSuggestionRequest
from service.domain.leaderboard import LEADERBOARD_WINDOWS, RankMetric, TopMetric
from service.domain.library import COUNTED_STATUSES
from service.domain.suggestion_state import Status
from service.domain.windows import SERIES_WINDOWS, SeriesResolution, Window, servable_series

JSON = "application/json"
CSV = "text/csv"
_CHANNELS = [c.value for c in Channel]
_BOARD_WINDOWS = [w.value for w in LEADERBOARD_WINDOWS]
MAX_MIN_IMPRESSIONS = 10**12


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    schema: dict[str, Any]
    description: str
    many: bool = False  # a query parameter that may repeat

    def spec(self) -> dict[str, Any]:
        schema = {"type": "array", "items": self.schema} if self.many else self.schema
        spec: dict[str, Any] = {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path",
            "description": self.description,
            "schema": schema,
        }
        if self.many:
            spec.update(style="form", explode=True)
        return spec


@dataclass(frozen=True)
class Operation:
    path: str
    summary: str
    response: type[BaseModel]
    params: tuple[Param, ...] = ()
    errors: tuple[problems.Kind, ...] = field(default=())
    protected: bool = True
    method: str = "get"
    status: int = 200
    body: type[BaseModel] | None = None  # the JSON request body, for a write
    csv: bool = False  # a list route: also text/csv, when Accept prefers it


def _path(name: str, description: str, **schema: Any) -> Param:
    return Param(name, "path", {"type": "string", **schema}, description)


def _enum(name: str, values: list[str], description: str) -> Param:
    return Param(name, "query", {"type": "string", "enum": values}, description)


def _paging(cursor_pattern: str | None = None, maximum: int | None = None) -> tuple[Param, Param]:
    """`limit` and `cursor` of a paged list; `limit`'s maximum is MEDIA_API_PAGE_SIZE_MAX
    (set by `document`) unless the route has its own."""
    limit: dict[str, Any] = {"type": "integer", "minimum": 1}
    if maximum is not None:
        limit["maximum"] = maximum
    cursor: dict[str, Any] = {"type": "string"}
    if cursor_pattern is not None:
        cursor["pattern"] = cursor_pattern
    return (
        Param("limit", "query", limit, "page size (default 50)"),
        Param("cursor", "query", cursor, "the previous page's next_cursor"),
    )


# How many entries of a board a route returns.
TOP_LIMIT = Param(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "how many (default 10)"
)

ASSET = _path("asset_id", "the asset's id")
LIBRARY = _path("library_id", "the library's id")
CAMPAIGN = _path("campaign_id", "the campaign's id")
CHANNEL = _enum("channel", _CHANNELS, "only this channel")

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/v1/assets/{asset_id}",
        "A registered asset, with its lifetime totals",
        schemas.AssetOut,
        (ASSET,),
        (problems.NOT_FOUND,),
    ),
    Operation(
        "/v1/assets/{asset_id}/metrics",
        "An asset's sums and rates over a window",
        schemas.AssetMetricsOut,
        (
            ASSET,
            _enum("window", [w.value for w in Window], "the window (default 24h)"),
            CHANNEL,
            Param(
                "campaign",
                "query",
                {"type": "string", "minLength": 1},
                "only this campaign; 400 together with channel (not kept per both)",
            ),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
    ),
    Operation(
        "/v1/assets/{asset_id}/series",
        "An asset's sums and rates per bucket over a window, zero-filled, for a chart",
        schemas.SeriesOut,
        (
            ASSET,
            _enum(
                "resolution",
                [r.value for r in SeriesResolution],
                "the bucket size (default 1h); "
                + "; ".join(
                    f"{r} serves window {', '.join(w.value for w in ws)}"
                    for r, ws in servable_series().items()
                )
                + " (400 otherwise)",
            ),
            _enum("window", [w.value for w in SERIES_WINDOWS], "the window (default 24h)"),
            CHANNEL,
            Param(
                "campaign",
                "query",
                {"type": "string", "minLength": 1},
                "only this campaign; 400 together with channel (not kept per both)",
            ),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/assets/{asset_id}/variants",
        "The asset's variant family, each variant's CTR against the original's per channel",
        schemas.VariantsOut,
        (ASSET,),
        (problems.NOT_FOUND,),
    ),
    Operation(
        "/v1/assets/{asset_id}/history",
        "A page of an asset's applied registrations and lifecycle transitions, newest first",
        schemas.HistoryOut,
        (
            ASSET,
            *_paging("^[0-9]{1,16}$"),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/libraries",
        "A page of every library in id order: its name, description, owner and size",
        schemas.LibrariesOut,
        (*_paging(),),
        (problems.BAD_REQUEST,),
        csv=True,
    ),
    Operation(
        "/v1/libraries/{library_id}",
        "A library: its name, description, owner, and the statistics of /stats",
        schemas.LibraryOut,
        (LIBRARY,),
        (problems.NOT_FOUND,),
    ),
    Operation(
        "/v1/libraries/{library_id}/stats",
        "A library's asset count, bytes, and counts by media type and status",
        schemas.LibraryStatsOut,
        (LIBRARY,),
        (problems.NOT_FOUND,),
    ),
    Operation(
        "/v1/libraries/{library_id}/assets",
        "A page of a library's assets in id order, filtered",
        schemas.LibraryAssetsOut,
        (
            LIBRARY,
            Param("tag", "query", {"type": "string"}, "has every tag given", many=True),
            Param("category", "query", {"type": "string"}, "has every category given", many=True),
            Param(
                "q",
                "query",
                {"type": "string", "maxLength": 256},
                "text search: every word of q is a word of the name, tags or description "
                "(case-insensitive), the last one as a prefix; no word: no text filter",
            ),
            _enum("status", [s.value for s in COUNTED_STATUSES], "in this status"),
            *_paging(),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/libraries/{library_id}/top",
        "A library's leading assets by a rate (with a minimum of impressions) or by usage",
        schemas.TopOut,
        (
            LIBRARY,
            _enum(
                "metric",
                [m.value for m in TopMetric],
                "the rate to rank by (default ctr), or usage: the usage_count of each asset "
                "(publications and uses), the window's totals shown beside it",
            ),
            _enum("window", _BOARD_WINDOWS, "the window (default 24h)"),
            CHANNEL,
            TOP_LIMIT,
            Param(
                "min_impressions",
                "query",
                {"type": "integer", "minimum": 0, "maximum": MAX_MIN_IMPRESSIONS},
                "fewer impressions do not rank (default MEDIA_LEADERBOARD_MIN_IMPRESSIONS); "
                "not applied to metric=usage",
            ),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/libraries/{library_id}/metrics",
        "A library's sums and rates over a window (as of the last board refresh)",
        schemas.LibraryMetricsOut,
        (LIBRARY, _enum("window", _BOARD_WINDOWS, "the window (default 24h)"), CHANNEL),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
    ),
    Operation(
        "/v1/campaigns/{campaign_id}/metrics",
        "A campaign's sums and rates over every asset, any library (as of the last refresh)",
        schemas.CampaignMetricsOut,
        (CAMPAIGN, _enum("window", _BOARD_WINDOWS, "the window (default 24h)")),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
    ),
    Operation(
        "/v1/campaigns/{campaign_id}/top",
        "A campaign's leading assets by a rate, with a minimum of impressions",
        schemas.CampaignTopOut,
        (
            CAMPAIGN,
            _enum("metric", [m.value for m in RankMetric], "the rate to rank by (default ctr)"),
            _enum("window", _BOARD_WINDOWS, "the window (default 24h)"),
            TOP_LIMIT,
            Param(
                "min_impressions",
                "query",
                {"type": "integer", "minimum": 0, "maximum": MAX_MIN_IMPRESSIONS},
                "fewer impressions do not rank (default MEDIA_LEADERBOARD_MIN_IMPRESSIONS)",
            ),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/libraries/{library_id}/duplicates",
        "A library's redundant copies (contents it holds more than once), most wasted first",
        schemas.RedundantCopiesOut,
        (
            LIBRARY,
            *_paging("^[0-9]{1,9}$", maximum=100),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/duplicates/{content_sha256}",
        "Every asset holding this content, in order of registration",
        schemas.DuplicatesOut,
        (_path("content_sha256", "SHA-256 of the content", pattern="^[0-9a-f]{64}$"),),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
    ),
    Operation(
        "/v1/assets/{asset_id}/suggestions",
        "The asset's latest suggestion of each type and channel",
        schemas.SuggestionsOut,
        (ASSET, _enum("status", [s.value for s in Status], "only in this status")),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/assets/{asset_id}/suggestions",
        "Make a suggestion by hand: published marked manual (always needs the API token)",
        schemas.SuggestionOut,
        (ASSET,),
        (problems.BAD_REQUEST, problems.FORBIDDEN, problems.NOT_FOUND),
        method="post",
        status=201,
        body=ManualSuggestionRequest,
    ),
    Operation(
        "/v1/libraries/{library_id}/suggestions",
        "A page of the library's suggestions, newest first, filtered",
        schemas.SuggestionsOut,
        (
            LIBRARY,
            _enum("type", [t.value for t in SuggestionType], "only of this type"),
            _enum("priority", [p.value for p in Priority], "only of this priority"),
            _enum("status", [s.value for s in Status], "only in this status"),
            *_paging(),
        ),
        (problems.BAD_REQUEST, problems.NOT_FOUND),
        csv=True,
    ),
    Operation(
        "/v1/suggestions/{suggestion_id}",
        "One suggestion, with its status",
        schemas.SuggestionOut,
        (_path("suggestion_id", "the suggestion's id"),),
        (problems.NOT_FOUND,),
    ),
    Operation(
        "/v1/suggestion-accuracy",
        "Per type: estimated against realised improvement of applied suggestions",
        schemas.AccuracyOut,
        (_enum("type", [t.value for t in SuggestionType], "only this type"),),
        (problems.BAD_REQUEST,),
    ),
    Operation(
        "/v1/dead-letters/stats",
        "Dead letters counted by reason",
        schemas.DeadLetterStatsOut,
    ),
    Operation(
        "/v1/performance/stats",
        "Performance events applied, re-sent copies skipped, late events",
        schemas.PerformanceStatsOut,
    ),
    Operation("/healthz", "The process serves requests", schemas.HealthOut, protected=False),
    Operation(
        "/readyz",
        "Redis answers and the worker is in its consumer group (503 with the reason if not)",
        schemas.HealthOut,
        protected=False,
    ),
)


def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """Each documented operation's query parameters, by (route, method; HEAD as GET):
    the only ones it accepts."""
    accepted = {
        (op.path, op.method): frozenset(p.name for p in op.params if p.where == "query")
        for op in OPERATIONS
    }
    accepted.update({(path, "head"): names for (path, m), names in accepted.items() if m == "get"})
    return accepted


def document(*, api_page_size_max: int, token_required: bool) -> dict[str, Any]:
    models = {op.response for op in OPERATIONS} | {schemas.Problem}
    bodies = {op.body for op in OPERATIONS if op.body is not None}
    refs, definitions = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)]
        + [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(
            op, refs, api_page_size_max, token_required
        )
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Media intelligence API",
            "version": service.__version__,
            "description": "Asset registry (libraries, variants, history, text search), "
            "duplicates and storage waste, rolling metrics and time series, library and "
            "campaign boards, performance labels.",
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def _operation(
    op: Operation, refs: dict[Any, Any], page_max: int, token_required: bool
) -> dict[str, Any]:
    params = [p.spec() for p in op.params]
    for spec in params:
        paged = ("/assets", "/suggestions", "/history", "/v1/libraries")
        if op.path.endswith(paged) and spec["name"] == "limit":
            spec["schema"]["maximum"] = page_max
    problem_ref = refs[(schemas.Problem, "serialization")]
    # Every route answers 400 to a query parameter it does not know (a typo is not ignored).
    kinds = [
        *dict.fromkeys([problems.BAD_REQUEST, *op.errors]),
        problems.UNAVAILABLE,
        problems.INTERNAL,
    ]
    if token_required and op.protected:
        kinds.append(problems.UNAUTHORIZED)
    responses: dict[str, Any] = {
        str(op.status): {
            "description": "Created" if op.status == 201 else "OK",
            "content": {JSON: {"schema": refs[(op.response, "serialization")]}},
        }
    }
    if op.csv:
        responses[str(op.status)]["content"][CSV] = {
            "schema": {
                "type": "string",
                "description": "the list's items as CSV rows (when Accept prefers text/csv); "
                "the page's next_cursor in the Next-Cursor header",
            }
        }
    for kind in kinds:
        responses[str(kind.status)] = {
            "description": kind.title,
            "content": {problems.CONTENT_TYPE: {"schema": problem_ref}},
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": ("" if op.method == "get" else f"{op.method}_")
        + op.path.strip("/").replace("/", "_").replace("{", "").replace("}", ""),
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": refs[(op.body, "validation")]}},
        }
    if token_required and op.protected:
        operation["security"] = [{"bearer": []}]
    return operation
