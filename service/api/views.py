"""Read-only JSON views over Redis.

Every worker serves the whole API: reads go to Redis, not to local state, so any
worker answers for any asset. Bodies are the models of `service.api.schemas`.
A view parses its parameters, reads, and returns a body; it raises `NotFound` for
what does not exist and `BadRequest` for a bad parameter (`service.errors`), and the
middleware (`service.api.middleware`) turns those, like any other exception, into
problem details (`service.api.problems`): 400, 404, 503 or 500. The middleware also
answers 401 and 405; the health views answer 503 with their own reasons.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import generate_latest
from pydantic import BaseModel

from service.api import csv_body, openapi, problems
from service.api.schemas import (
    AccuracyItem,
    AccuracyOut,
    AssetItem,
    AssetMetricsOut,
    AssetOut,
    CampaignMetricsOut,
    CampaignTopItem,
    CampaignTopOut,
    ChannelComparison,
    ChannelLabel,
    DeadLetterStatsOut,
    DuplicateOut,
    DuplicatesOut,
    HealthOut,
    HistoryItem,
    HistoryOut,
    LibrariesOut,
    LibraryAssetsOut,
    LibraryItem,
    LibraryMetricsOut,
    LibraryOut,
    LibraryStatsOut,
    PerformanceStatsOut,
    RedundantCopiesItem,
    RedundantCopiesOut,
    SeriesOut,
    SeriesPoint,
    SuggestionOut,
    SuggestionsOut,
    TopItem,
    TopOut,
    TotalsOut,
    VariantMember,
    VariantOut,
    VariantsOut,
)
from service.domain import leaderboard
from service.domain.decoding import RawMessage, decode
from service.domain.enums import AssetStatus, Channel, Priority, SuggestionType
from service.domain.events import ManualSuggestionRequest, normalise_labels
from service.domain.labels import judge_against
from service.domain.leaderboard import LEADERBOARD_WINDOWS, RankMetric, TopMetric
from service.domain.library import COUNTED_STATUSES, LibraryStats, no_assets, text_query
from service.domain.metrics import Totals, WindowTotals, sum_totals
from service.domain.registry import Asset
from service.domain.statistics import estimate_accuracy
from service.domain.suggestion_state import Status
from service.domain.suggestions import BYTE_SAVING_TYPES, PERFORMANCE_TYPES
from service.domain.variants import compare_ctr
from service.domain.windows import (
    SERIES_RESOLUTIONS,
    SERIES_WINDOWS,
    SeriesResolution,
    Window,
    series_points,
    series_starts,
    servable_series,
)
from service.errors import BadRequest, DecodeError, Forbidden, NotFound
from service.runtime import Runtime
from service.store.suggestions import SuggestionRecord
from service.streaming import watchdog

SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_PAGE_SIZE = 50


QUERY_PARAMETERS = openapi.query_parameters()


class ApiView(View):
    @property
    def runtime(self) -> Runtime:
        return cast(Runtime, getattr(self.app, "runtime"))  # noqa: B009

    def out(self, model: BaseModel, status: int = 200) -> Response:
        return self.json(model.model_dump(mode="json"), status=status)

    def listing(
        self,
        request: Request,
        body: BaseModel,
        items: Sequence[BaseModel],
        item_model: type[BaseModel],
    ) -> Response:
        """A list route's body: JSON, or CSV rows of `items` when `Accept` prefers it."""
        if not csv_body.wants_csv(request.headers.get("Accept")):
            return self.out(body)
        headers = {"Content-Type": f"{csv_body.CONTENT_TYPE}; charset=utf-8"}
        cursor = getattr(body, "next_cursor", None)
        if cursor is not None:
            headers["Next-Cursor"] = cursor
        return self.bytes(csv_body.render(items, item_model).encode(), headers=headers)

    def problem(self, request: Request, kind: problems.Kind, detail: str) -> Response:
        """A problem the view answers with itself (the health checks' 503)."""
        body = problems.body(kind, detail, request.rel_url.path)
        return self.json(body.model_dump(), status=kind.status, content_type=problems.CONTENT_TYPE)

    async def registered_asset(self, asset_id: str, *, also_missing: str | None = None) -> Asset:
        """The asset; NotFound when it is not registered (saying that it has no
        `also_missing` either, when given)."""
        loaded = await self.runtime.registry_store.load(asset_id)
        if loaded.state is None or loaded.state.asset is None:
            more = "" if also_missing is None else f" and has no {also_missing}"
            raise NotFound(f"asset '{asset_id}' is not registered{more}")
        return loaded.state.asset

    async def original_of(self, asset: Asset) -> str | None:
        """The original of the asset's family: the one its registration names, else the
        original of the applied suggestion that made it (None: it is no variant)."""
        if asset.variant_of is not None:
            return asset.variant_of
        suggestion_id = await self.runtime.suggestion_store.variant_of(asset.asset_id)
        if suggestion_id is None:
            return None
        record = await self.runtime.suggestion_store.by_id(suggestion_id)
        return None if record is None else record.suggestion.asset_id

    async def library_stats(self, library_id: str) -> LibraryStats:
        """The library's statistics; NotFound when it has no registered assets."""
        stats = await self.runtime.registry_store.library_stats(library_id)
        if stats is None:
            raise NotFound(f"library '{library_id}' has no registered assets")
        return stats

    async def dispatch(self, request: Any) -> Any:
        route = request.match_info.route.resource.canonical
        allowed = QUERY_PARAMETERS.get((route, request.method.lower()))
        if allowed is not None:
            unknown = sorted(set(request.query) - allowed)
            if unknown:
                known = ", ".join(sorted(allowed)) or "none"
                raise BadRequest(
                    f"unknown query parameter(s): {', '.join(unknown)} (known: {known})"
                )
        return await super().dispatch(request)

    async def on_request_error(self, request: Request, exc: Any) -> Response:
        """Faust's own web errors (a method the view lacks), as problem details."""
        kind = problems.METHOD_NOT_ALLOWED if exc.code == 405 else problems.BAD_REQUEST
        return self.problem(request, kind, str(exc.detail))


class AssetView(ApiView):
    async def get(self, request: Request, asset_id: str) -> Response:
        asset = await self.registered_asset(asset_id)
        lifetime = await self.runtime.metrics_store.totals(asset_id, Window.LIFETIME, time.time())
        return self.out(
            AssetOut.with_lifetime(
                asset,
                TotalsOut.of(lifetime or Totals()),
                variant_of=await self.original_of(asset),
                variant_count=await self.runtime.registry_store.variant_count(asset_id),
            )
        )


class AssetVariantsView(ApiView):
    """The asset's variant family: the original and each variant (registered, not deleted)
    with lifetime metrics, and each variant's CTR against the original's per channel."""

    async def get(self, request: Request, asset_id: str) -> Response:
        asset = await self.registered_asset(asset_id)
        original_id = await self.original_of(asset) or asset_id
        store = self.runtime.registry_store
        ids = [original_id, *[v for v in await store.variants(original_id) if v != original_id]]
        states = {s.asset_id: s.asset for s in await store.assets(ids) if s.asset is not None}
        original = states.get(original_id)
        if original is None:
            raise NotFound(f"asset '{asset_id}' is a variant of '{original_id}', not registered")
        members = [i for i in ids[1:] if i in states and not states[i].is_deleted]
        totals = await self.lifetime_by_channel([original_id, *members])
        base = totals[original_id]

        def member(a: Asset) -> dict[str, Any]:
            by_channel = totals[a.asset_id]
            return {
                "asset_id": a.asset_id,
                "variant_label": a.variant_label,
                "status": a.status,
                "lifetime": TotalsOut.of(sum_totals(by_channel.values())),
                "channels": {ch: TotalsOut.of(t) for ch, t in sorted(by_channel.items())},
            }

        variants = []
        for variant_id in members:
            variant = states[variant_id]
            assert variant is not None
            mine = totals[variant_id]
            comparisons = []
            for channel in sorted(set(base) | set(mine)):
                theirs, ours = base.get(channel, Totals()), mine.get(channel, Totals())
                result = compare_ctr(theirs, ours)
                comparisons.append(
                    ChannelComparison(
                        channel=channel,
                        original_ctr=theirs.ctr,
                        variant_ctr=ours.ctr,
                        difference=result.difference,
                        ci95_low=result.ci95_low,
                        ci95_high=result.ci95_high,
                        p_value=result.p_value,
                        verdict=result.verdict,
                    )
                )
            variants.append(VariantOut(**member(variant), comparisons=comparisons))
        return self.out(VariantsOut(original=VariantMember(**member(original)), variants=variants))

    async def lifetime_by_channel(self, asset_ids: list[str]) -> dict[str, dict[Channel, Totals]]:
        metrics = self.runtime.metrics_store
        partitions = await metrics.partitions_of(asset_ids)
        placed = [(a, p) for a, p in zip(asset_ids, partitions, strict=True) if p is not None]
        sums = await metrics.totals_by_window(placed, [Window.LIFETIME], time.time())
        found = {
            a: dict(s[Window.LIFETIME].by_channel) for (a, _), s in zip(placed, sums, strict=True)
        }
        return {a: {c: t for c, t in found.get(a, {}).items() if t != Totals()} for a in asset_ids}


class AssetSeriesView(ApiView):
    """`?resolution=5m|1h|1d&window=1h|24h|7d|30d` (default 1h over 24h), and `channel=`
    or `campaign=`: one zero-filled point per bucket the store keeps."""

    async def get(self, request: Request, asset_id: str) -> Response:
        query = request.query
        name = SeriesResolution(
            _choice_or_default(query, "resolution", SeriesResolution, SeriesResolution.HOUR)
        )
        window = Window(_choice_or_default(query, "window", SERIES_WINDOWS, Window.DAY))
        channel = _choice(query, "channel", Channel)
        campaign = query.get("campaign")
        if channel is not None and campaign is not None:
            raise BadRequest("filter by channel or by campaign, not both")
        resolution = SERIES_RESOLUTIONS[name]
        if series_points(resolution, window) is None:
            possible = "; ".join(
                f"resolution={r} with window={', '.join(w.value for w in windows)}"
                for r, windows in servable_series().items()
            )
            raise BadRequest(
                f"resolution={name} cannot serve window={window}: the store does not keep "
                f"{name} buckets for the whole window; possible: {possible}"
            )
        now = time.time()
        starts = series_starts(resolution, window, now)
        buckets = await self.runtime.metrics_store.series(asset_id, resolution, starts)
        if buckets is None:
            await self.registered_asset(asset_id, also_missing="metrics")
            buckets = [WindowTotals() for _ in starts]
        points = []
        for start, bucket in zip(starts, buckets, strict=True):
            if campaign is not None:
                totals = bucket.campaign(campaign)
            else:
                totals = bucket.total if channel is None else bucket.channel(Channel(channel))
            moment = datetime.fromtimestamp(start, UTC)
            points.append(SeriesPoint(start=moment, **totals.as_dict()))
        body = SeriesOut(
            asset_id=asset_id,
            resolution=name.value,
            window=window.value,
            channel=channel,
            campaign=campaign,
            points=points,
        )
        return self.listing(request, body, body.points, SeriesPoint)


class AssetHistoryView(ApiView):
    """`?limit=&cursor=`: the asset's applied changes, newest first."""

    async def get(self, request: Request, asset_id: str) -> Response:
        query = request.query
        limit = _int_param(
            query, "limit", DEFAULT_PAGE_SIZE, 1, self.runtime.settings.api_page_size_max
        )
        cursor = _history_cursor(query.get("cursor") or None)
        entries = await self.runtime.registry_store.history(asset_id, before=cursor, limit=limit)
        if not entries and cursor is None:
            await self.registered_asset(asset_id)
        next_cursor = str(entries[-1].seq) if len(entries) == limit else None
        body = HistoryOut(
            asset_id=asset_id,
            items=[HistoryItem.of(e) for e in entries],
            next_cursor=next_cursor,
        )
        return self.listing(request, body, body.items, HistoryItem)


def _history_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise BadRequest("cursor must be a next_cursor this route returned")
    return int(raw)


class AssetMetricsView(ApiView):
    """`?window=1h|24h|7d|30d|lifetime` (default 24h), and `channel=` or `campaign=`."""

    async def get(self, request: Request, asset_id: str) -> Response:
        query = request.query
        window = Window(_choice_or_default(query, "window", Window, Window.DAY))
        channel = _choice(query, "channel", Channel)
        campaign = query.get("campaign")
        if channel is not None and campaign is not None:
            raise BadRequest("filter by channel or by campaign, not both")
        totals = await self.runtime.metrics_store.totals(
            asset_id,
            window,
            time.time(),
            channel=None if channel is None else Channel(channel),
            campaign=campaign,
        )
        if totals is None:
            await self.registered_asset(asset_id, also_missing="metrics")
            totals = Totals()
        label_window = window if window in LEADERBOARD_WINDOWS else Window.WEEK
        return self.out(
            AssetMetricsOut(
                asset_id=asset_id,
                window=window.value,
                channel=channel,
                campaign=campaign,
                label_window=label_window.value,
                labels=await self.labels(asset_id, label_window),
                **totals.as_dict(),
            )
        )

    async def labels(self, asset_id: str, window: Window) -> list[ChannelLabel]:
        """Per channel with events, the asset's label against its library's board."""
        runtime = self.runtime
        state = (await runtime.registry_store.load(asset_id)).state
        asset = None if state is None else state.asset
        if asset is None or asset.is_deleted:
            return []
        sums = await runtime.metrics_store.window_totals(asset_id, window, time.time())
        if sums is None:
            return []
        labels = []
        for channel in Channel:
            mine = sums.channel(channel)
            if mine.impressions == 0:
                continue
            boards = runtime.leaderboard_store
            least = runtime.settings.leaderboard_min_impressions
            pool = await boards.pool(asset.library_id, window, channel, least)
            own = await boards.entry(asset.library_id, window, channel, asset_id)
            others = pool if own is None else pool.without(own, least)
            judged = judge_against(mine, others, least)
            labels.append(
                ChannelLabel(
                    channel=channel,
                    label=judged.label,
                    impressions=mine.impressions,
                    ctr=mine.ctr,
                    library_ctr=judged.library_ctr,
                )
            )
        return labels


class _BoardQuery(ApiView):
    """Shared parsing of `window` (24h, 7d, lifetime) and `channel` for library boards."""

    def board(self, query: Any) -> tuple[Window, str | None]:
        window = _choice_or_default(query, "window", LEADERBOARD_WINDOWS, Window.DAY)
        return Window(window), _choice(query, "channel", Channel)

    async def known(self, library_id: str) -> None:
        """NotFound when the library has no registered assets."""
        await self.library_stats(library_id)


class LibraryTopView(_BoardQuery):
    """`?metric=ctr|engagement_rate|conversion_rate|usage&window=24h|7d|lifetime&channel=
    &limit=&min_impressions=`: the library's leading assets, refreshed every few seconds;
    by usage, its most published or used assets (exact), with their board totals."""

    async def get(self, request: Request, library_id: str) -> Response:
        query = request.query
        settings = self.runtime.settings
        window, channel = self.board(query)
        chosen = TopMetric(_choice_or_default(query, "metric", TopMetric, TopMetric.CTR))
        limit = _int_param(query, "limit", 10, 1, 100)
        min_impressions = _int_param(
            query,
            "min_impressions",
            settings.leaderboard_min_impressions,
            0,
            openapi.MAX_MIN_IMPRESSIONS,
        )
        await self.known(library_id)
        if chosen is TopMetric.USAGE:
            return await self.most_used(request, library_id, window, channel, limit)
        metric = RankMetric(chosen.value)
        board = None if channel is None else Channel(channel)
        ranked = await self.runtime.leaderboard_store.top(
            library_id, window, board, metric, min_impressions
        )
        top = ranked[:limit]
        return self.top(
            request,
            TopOut(
                library_id=library_id,
                metric=metric.value,
                window=window.value,
                channel=channel,
                min_impressions=min_impressions,
                items=[
                    TopItem(
                        rank=n, asset_id=e.asset_id, value=e.value(metric), **e.totals.as_dict()
                    )
                    for n, e in enumerate(top, start=1)
                ],
            ),
        )

    def top(self, request: Request, body: TopOut) -> Response:
        return self.listing(request, body, body.items, TopItem)

    async def most_used(
        self,
        request: Request,
        library_id: str,
        window: Window,
        channel: str | None,
        limit: int,
    ) -> Response:
        """Ranked by usage_count (min_impressions does not apply: reported as 0)."""
        used = await self.runtime.registry_store.most_used(library_id, limit)
        totals = await self.runtime.leaderboard_store.entries_of(
            library_id,
            window,
            None if channel is None else Channel(channel),
            [asset_id for asset_id, _ in used],
        )
        return self.top(
            request,
            TopOut(
                library_id=library_id,
                metric=TopMetric.USAGE.value,
                window=window.value,
                channel=channel,
                min_impressions=0,
                items=[
                    TopItem(
                        rank=n,
                        asset_id=asset_id,
                        value=float(count),
                        usage_count=count,
                        **totals.get(asset_id, Totals()).as_dict(),
                    )
                    for n, (asset_id, count) in enumerate(used, start=1)
                ],
            ),
        )


class LibraryMetricsView(_BoardQuery):
    """`?window=24h|7d|lifetime&channel=`: the library's rollup, as of the last refresh."""

    async def get(self, request: Request, library_id: str) -> Response:
        window, channel = self.board(request.query)
        await self.known(library_id)
        rollup = await self.runtime.leaderboard_store.rollup(
            library_id, window, None if channel is None else Channel(channel)
        )
        return self.out(
            LibraryMetricsOut(
                library_id=library_id,
                window=window.value,
                channel=channel,
                assets_with_activity=rollup.assets,
                **rollup.totals.as_dict(),
            )
        )


class _CampaignQuery(ApiView):
    """Shared parsing of `window` (24h, 7d, lifetime) and the campaign's board."""

    async def campaign(
        self, campaign_id: str, query: Any
    ) -> tuple[Window, list[leaderboard.Entry]]:
        window = Window(_choice_or_default(query, "window", LEADERBOARD_WINDOWS, Window.DAY))
        boards = self.runtime.leaderboard_store
        entries = await boards.campaign_entries(campaign_id, window)
        if not entries and not await boards.campaign_entries(campaign_id, Window.LIFETIME):
            raise NotFound(
                f"campaign '{campaign_id}' has no performance of a registered asset (campaign "
                "boards follow the metrics within MEDIA_LEADERBOARD_REFRESH_SECONDS)"
            )
        return window, entries


class CampaignMetricsView(_CampaignQuery):
    """`?window=24h|7d|lifetime`: the campaign's sums over every asset, any library."""

    async def get(self, request: Request, campaign_id: str) -> Response:
        window, entries = await self.campaign(campaign_id, request.query)
        total = Totals()
        for entry in entries:
            total = total + entry.totals
        return self.out(
            CampaignMetricsOut(
                campaign_id=campaign_id,
                window=window.value,
                assets_with_activity=len(entries),
                **total.as_dict(),
            )
        )


class CampaignTopView(_CampaignQuery):
    """`?metric=ctr|engagement_rate|conversion_rate&window=24h|7d|lifetime&limit=
    &min_impressions=`: the campaign's leading assets, with their libraries."""

    async def get(self, request: Request, campaign_id: str) -> Response:
        query = request.query
        metric = RankMetric(_choice_or_default(query, "metric", RankMetric, RankMetric.CTR))
        limit = _int_param(query, "limit", 10, 1, 100)
        min_impressions = _int_param(
            query,
            "min_impressions",
            self.runtime.settings.leaderboard_min_impressions,
            0,
            openapi.MAX_MIN_IMPRESSIONS,
        )
        window, entries = await self.campaign(campaign_id, query)
        top = leaderboard.rank(entries, metric, min_impressions=min_impressions, limit=limit)
        states = await self.runtime.registry_store.assets([e.asset_id for e in top])
        libraries = {s.asset_id: s.asset.library_id for s in states if s.asset is not None}
        body = CampaignTopOut(
            campaign_id=campaign_id,
            metric=metric.value,
            window=window.value,
            min_impressions=min_impressions,
            items=[
                CampaignTopItem(
                    rank=n,
                    asset_id=e.asset_id,
                    library_id=libraries.get(e.asset_id),
                    value=e.value(metric),
                    **e.totals.as_dict(),
                )
                for n, e in enumerate(top, start=1)
            ],
        )
        return self.listing(request, body, body.items, CampaignTopItem)


class PerformanceStatsView(ApiView):
    async def get(self, request: Request) -> Response:
        runtime = self.runtime
        counters = await runtime.metrics_store.counters(runtime.settings.topic_partitions)
        return self.out(
            PerformanceStatsOut(
                applied=counters.applied, duplicates=counters.duplicates, late=counters.late
            )
        )


class LibraryStatsView(ApiView):
    async def get(self, request: Request, library_id: str) -> Response:
        stats = await self.library_stats(library_id)
        return self.out(LibraryStatsOut(**dict(stats)))


class LibrariesView(ApiView):
    """`?limit=&cursor=`: every library, in id order, with its facts and size."""

    async def get(self, request: Request) -> Response:
        query = request.query
        limit = _int_param(
            query, "limit", DEFAULT_PAGE_SIZE, 1, self.runtime.settings.api_page_size_max
        )
        store = self.runtime.library_store
        ids = await store.page(query.get("cursor") or None, limit)
        details = await store.details(ids)
        items = [
            LibraryItem.of(info, stats or no_assets(library_id))
            for library_id, (info, stats) in zip(ids, details, strict=True)
        ]
        next_cursor = ids[-1] if len(ids) == limit else None
        body = LibrariesOut(items=items, next_cursor=next_cursor)
        return self.listing(request, body, body.items, LibraryItem)


class LibraryView(ApiView):
    async def get(self, request: Request, library_id: str) -> Response:
        [(info, stats)] = await self.runtime.library_store.details([library_id])
        if info is None and stats is None:
            raise NotFound(f"library '{library_id}' has no registered assets and no facts")
        return self.out(LibraryOut.with_stats(info, stats or no_assets(library_id)))


class LibraryAssetsView(ApiView):
    """`?tag=&category=&status=&limit=&cursor=`: tags and categories may repeat (all must match)."""

    async def get(self, request: Request, library_id: str) -> Response:
        query = _library_query(request.query, self.runtime.settings.api_page_size_max)
        await self.library_stats(library_id)
        store = self.runtime.registry_store
        ids = await store.library_page(library_id, **query)
        states = await store.assets(ids)
        items = [AssetItem.of(s.asset) for s in states if s.asset is not None]
        next_cursor = ids[-1] if len(ids) == query["limit"] else None
        body = LibraryAssetsOut(library_id=library_id, items=items, next_cursor=next_cursor)
        return self.listing(request, body, body.items, AssetItem)


class LibraryDuplicatesView(ApiView):
    """`?limit=&cursor=`: the library's redundant copies (a content its assets hold more
    than once), most wasted bytes first."""

    async def get(self, request: Request, library_id: str) -> Response:
        query = request.query
        limit = _int_param(query, "limit", DEFAULT_PAGE_SIZE, 1, 100)
        offset = _offset_cursor(query.get("cursor") or None)
        await self.library_stats(library_id)
        store = self.runtime.registry_store
        held = await store.redundant(library_id, offset, limit)
        items = []
        for sha, copies, wasted in held:
            holders = await store.duplicates(sha)
            items.append(
                RedundantCopiesItem(
                    content_sha256=sha,
                    copies=copies,
                    wasted_bytes=wasted,
                    asset_ids=[h.asset_id for h in holders if h.library_id == library_id],
                )
            )
        next_cursor = str(offset + limit) if len(held) == limit else None
        body = RedundantCopiesOut(library_id=library_id, items=items, next_cursor=next_cursor)
        return self.listing(request, body, body.items, RedundantCopiesItem)


def _offset_cursor(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadRequest("cursor must be a next_cursor this route returned")
    return int(raw)


class DuplicatesView(ApiView):
    async def get(self, request: Request, content_sha256: str) -> Response:
        if not SHA256.match(content_sha256):
            raise BadRequest("content_sha256 must be 64 lowercase hexadecimal characters")
        entries = await self.runtime.registry_store.duplicates(content_sha256)
        if not entries:
            raise NotFound(f"no registered asset has content {content_sha256}")
        return self.out(
            DuplicatesOut(
                content_sha256=content_sha256,
                assets=[
                    DuplicateOut(asset_id=e.asset_id, library_id=e.library_id) for e in entries
                ],
            )
        )


class DeadLetterStatsView(ApiView):
    async def get(self, request: Request) -> Response:
        totals = await self.runtime.dead_letter_counters.totals()
        return self.out(DeadLetterStatsOut(by_reason=totals, total=sum(totals.values())))


def _suggestion_out(record: SuggestionRecord) -> SuggestionOut:
    fields = {
        **dict(record.suggestion),
        "status": record.status,
        "closed_at": record.closed_at,
        "new_asset_id": record.new_asset_id,
        "realised_improvement_pct": record.realised_improvement_pct,
        "realised_ci95": None if record.realised_ci95 is None else list(record.realised_ci95),
    }
    return SuggestionOut(**fields)


def _choice(
    query: Any, name: str, allowed: Iterable[StrEnum], default: StrEnum | None = None
) -> str | None:
    """A query parameter that must be one of `allowed` (its default when absent)."""
    values = [a.value for a in allowed]
    value = query.get(name, None if default is None else default.value)
    if value is not None and value not in values:
        raise BadRequest(f"{name} must be one of: {', '.join(values)}")
    return value  # type: ignore[no-any-return]


def _choice_or_default(query: Any, name: str, allowed: Iterable[StrEnum], default: StrEnum) -> str:
    return _choice(query, name, allowed, default) or default.value


SUGGESTION_FILTERS: dict[str, Iterable[StrEnum]] = {
    "status": Status,
    "type": SuggestionType,
    "priority": Priority,
}


def _suggestion_filters(query: Any, names: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for name in names:
        value = _choice(query, name, SUGGESTION_FILTERS[name])
        if value is not None:
            filters[name] = value
    return filters


def _matches(record: SuggestionRecord, filters: dict[str, str]) -> bool:
    s = record.suggestion
    values = {"status": record.status.value, "type": s.type.value, "priority": s.priority.value}
    return all(values[k] == v for k, v in filters.items())


class AssetSuggestionsView(ApiView):
    """`?status=open|applied|dismissed`: the asset's latest suggestion of each kind."""

    async def get(self, request: Request, asset_id: str) -> Response:
        filters = _suggestion_filters(request.query, ("status",))
        records = await self.runtime.suggestion_store.for_asset(asset_id)
        if not records:
            await self.registered_asset(asset_id)
        items = [_suggestion_out(r) for r in records if _matches(r, filters)]
        items.sort(key=lambda i: (i.created_at, i.suggestion_id), reverse=True)
        body = SuggestionsOut(items=items)
        return self.listing(request, body, body.items, SuggestionOut)

    async def post(self, request: Request, asset_id: str) -> Response:
        """A suggestion a person makes: always behind the API token, validated like an
        event, published on the suggestions topic marked `manual`; 201 with it."""
        if not self.runtime.settings.api_tokens:
            raise Forbidden(
                "manual suggestions are refused while no API token is configured: set "
                "MEDIA_API_TOKEN and send it as `Authorization: Bearer <token>`"
            )
        asset = await self.registered_asset(asset_id)
        if asset.status in (AssetStatus.ARCHIVED, AssetStatus.DELETED):
            raise BadRequest(f"asset '{asset_id}' is {asset.status}: it takes no suggestions")
        body = await request.read()
        try:
            suggestion = decode(
                ManualSuggestionRequest,
                RawMessage(BODY, 0, 0, None, body),
                max_bytes=self.runtime.settings.max_message_bytes,
                key_field=None,
            )
        except DecodeError as error:
            raise BadRequest(error.reason.removeprefix(f"{BODY}[0]@0: ")) from None
        event = await self.runtime.suggestions.manual(asset, suggestion)
        record = await self.runtime.suggestion_store.by_id(event.suggestion_id)
        if record is None:  # the engine records it before it returns
            raise NotFound(f"suggestion '{event.suggestion_id}' was not recorded")
        return self.out(_suggestion_out(record), status=201)


BODY = "the request body"


class LibrarySuggestionsView(ApiView):
    """`?type=&priority=&status=&limit=&cursor=`: a page of the library's suggestions,
    newest first, filtered where they are stored."""

    async def get(self, request: Request, library_id: str) -> Response:
        filters = _suggestion_filters(request.query, ("type", "priority", "status"))
        limit = _int_param(
            request.query, "limit", DEFAULT_PAGE_SIZE, 1, self.runtime.settings.api_page_size_max
        )
        await self.library_stats(library_id)
        records, next_cursor = await self.runtime.suggestion_store.library_page(
            library_id,
            filters=filters,
            cursor=request.query.get("cursor") or None,
            limit=limit,
        )
        body = SuggestionsOut(items=[_suggestion_out(r) for r in records], next_cursor=next_cursor)
        return self.listing(request, body, body.items, SuggestionOut)


class SuggestionView(ApiView):
    async def get(self, request: Request, suggestion_id: str) -> Response:
        record = await self.runtime.suggestion_store.by_id(suggestion_id)
        if record is None:
            raise NotFound(f"no current suggestion has id '{suggestion_id}'")
        return self.out(_suggestion_out(record))


class AccuracyView(ApiView):
    """How well the estimates matched what happened, per type (`?type=` for one), each in
    the unit of its estimate; types that claim no gain have no accuracy to show."""

    async def get(self, request: Request) -> Response:
        filters = _suggestion_filters(request.query, ("type",))
        kinds = [SuggestionType(filters["type"])] if filters else list(SuggestionType)
        kinds = [k for k in kinds if k in BYTE_SAVING_TYPES | PERFORMANCE_TYPES]
        items = []
        for kind in kinds:
            records = await self.runtime.suggestion_store.realised(kind)
            accuracy = estimate_accuracy(
                (
                    r.suggestion.estimated_improvement_pct,
                    r.realised_improvement_pct,
                    r.realised_ci95,
                )
                for r in records
            )
            if accuracy is not None:
                items.append(
                    AccuracyItem(
                        type=kind.value,
                        unit="bytes_saved" if kind in BYTE_SAVING_TYPES else "ctr_change",
                        realised=accuracy.realised,
                        mean_estimated_pct=accuracy.mean_estimated_pct,
                        mean_realised_pct=accuracy.mean_realised_pct,
                        mean_absolute_error_pct=accuracy.mean_absolute_error_pct,
                        estimate_within_ci95=accuracy.estimate_within_ci95,
                    )
                )
        return self.out(AccuracyOut(items=items))


class HealthView(ApiView):
    """Alive: the worker's consumer is fetching (or may be waiting); 503 once it died.
    An API server (no consumer) is alive while it answers."""

    async def get(self, request: Request) -> Response:
        if getattr(self.app, "api_only", False):
            return self.out(HealthOut(status="ok"))
        liveness = getattr(self.app, "liveness", None)
        problem = None if liveness is None else liveness.reason
        if problem is None:
            stall = self.runtime.settings.consumer_stall_seconds
            problem = watchdog.consumer_problem(self.app, stall_seconds=stall)
        if problem is not None:
            return self.problem(request, problems.UNAVAILABLE, problem)
        return self.out(HealthOut(status="ok"))


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


MAX_QUERY_TEXT = 256


def _bounded(value: str, name: str, most: int) -> str:
    if len(value) > most:
        raise BadRequest(f"{name} must be at most {most} characters")
    return value


def _library_query(query: Any, max_limit: int) -> dict[str, Any]:
    status = query.get("status")
    if status is not None and status not in COUNTED_STATUSES:
        raise BadRequest(f"status must be one of: {', '.join(COUNTED_STATUSES)}")
    limit = _int_param(query, "limit", DEFAULT_PAGE_SIZE, 1, max_limit)
    return {
        "tags": normalise_labels(query.getall("tag", [])),
        "categories": normalise_labels(query.getall("category", [])),
        "text": text_query(_bounded(query.get("q", ""), "q", MAX_QUERY_TEXT)),
        "status": status,
        "cursor": query.get("cursor") or None,
        "limit": limit,
    }


class ReadyView(ApiView):
    """Ready: Redis answers, Kafka's group coordinator is known, the worker joined its
    group, no rebalance is under way and no partition is paused by a failure.

    An API server is ready when Redis answers: every read goes there, and Kafka carries
    only the manual suggestions (a POST while Kafka is away answers 503 by itself)."""

    async def get(self, request: Request) -> Response:
        reasons = [] if getattr(self.app, "api_only", False) else self._consumer_reasons()
        try:
            await asyncio.wait_for(self.runtime.redis.ping(), timeout=2)
        except Exception as exc:  # any failure means "not ready", with its name
            reasons.append(f"Redis does not answer ({type(exc).__name__})")
        if reasons:
            return self.problem(request, problems.UNAVAILABLE, "; ".join(reasons))
        return self.out(HealthOut(status="ready"))

    def _consumer_reasons(self) -> list[str]:
        reasons = []
        readiness = getattr(self.app, "readiness", None)
        if readiness is None or not readiness.assigned:
            reasons.append("the worker has not joined its consumer group yet")
        elif readiness.rebalancing:
            reasons.append("a rebalance is under way")
        kafka = watchdog.kafka_problem(self.app)
        if kafka is not None:
            reasons.append(kafka)
        paused = getattr(getattr(self.app, "_consumer", None), "paused", None) or {}
        if paused:
            tp, first = next(iter(paused.items()))
            reasons.append(
                f"{len(paused)} partition(s) paused by failures, e.g. "
                f"{tp.topic}[{tp.partition}]: {first.error}"
            )
        return reasons


class MetricsView(ApiView):
    """Prometheus text exposition of this worker's metrics."""

    async def get(self, request: Request) -> Response:
        body = generate_latest(self.runtime.instruments.registry)
        return self.bytes(body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


class OpenApiView(ApiView):
    async def get(self, request: Request) -> Response:
        settings = self.runtime.settings
        return self.json(
            openapi.document(
                api_page_size_max=settings.api_page_size_max,
                token_required=settings.api_token is not None,
            )
        )


ROUTES: dict[str, type[ApiView]] = {
    "/v1/assets/{asset_id}": AssetView,
    "/v1/assets/{asset_id}/metrics": AssetMetricsView,
    "/v1/assets/{asset_id}/history": AssetHistoryView,
    "/v1/assets/{asset_id}/variants": AssetVariantsView,
    "/v1/assets/{asset_id}/series": AssetSeriesView,
    "/v1/libraries": LibrariesView,
    "/v1/libraries/{library_id}": LibraryView,
    "/v1/libraries/{library_id}/stats": LibraryStatsView,
    "/v1/libraries/{library_id}/assets": LibraryAssetsView,
    "/v1/libraries/{library_id}/top": LibraryTopView,
    "/v1/libraries/{library_id}/metrics": LibraryMetricsView,
    "/v1/libraries/{library_id}/duplicates": LibraryDuplicatesView,
    "/v1/campaigns/{campaign_id}/metrics": CampaignMetricsView,
    "/v1/campaigns/{campaign_id}/top": CampaignTopView,
    "/v1/duplicates/{content_sha256}": DuplicatesView,
    "/v1/assets/{asset_id}/suggestions": AssetSuggestionsView,
    "/v1/libraries/{library_id}/suggestions": LibrarySuggestionsView,
    "/v1/suggestions/{suggestion_id}": SuggestionView,
    "/v1/suggestion-accuracy": AccuracyView,
    "/v1/dead-letters/stats": DeadLetterStatsView,
    "/v1/performance/stats": PerformanceStatsView,
    "/healthz": HealthView,
    "/readyz": ReadyView,
}

# Served but not part of the JSON API document.
UNDOCUMENTED: dict[str, type[ApiView]] = {"/openapi.json": OpenApiView, "/metrics": MetricsView}


def register_views(app: faust.App) -> None:
    for path, view in {**ROUTES, **UNDOCUMENTED}.items():
        # A subclass per app, so that apps built in one process never share a view class.
        app.page(path, name=f"{view.__name__}")(type(view.__name__, (view,), {}))
