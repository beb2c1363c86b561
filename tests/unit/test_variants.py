"""Variants: the contract, the family rule (a variant of a variant belongs to the same
original), the CTR comparison, the registry keeping each original's variant list, and
GET /v1/assets/{asset_id}/variants through the app's web stack on the in-memory stores."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from service.domain import registry as rules
from service.domain.metrics import Totals
from service.domain.variants import NO_EVIDENCE, Verdict, compare_ctr, original_of
from service.store.metrics import PerfRow
from tests.fakes import FakeMetricsStore, FakeSuggestionStore
from tests.unit.factories import registration, source
from tests.unit.test_registry_handler import Rig, make_rig
from tests.unit.web import serve_views


def test_an_asset_cannot_be_its_own_variant() -> None:
    with pytest.raises(ValidationError, match="cannot be its own variant"):
        registration("a1", variant_of="a1")
    with pytest.raises(ValidationError, match="variant_label is given without variant_of"):
        registration("a1", variant_label="blue")
    assert registration("a2", variant_of="a1", variant_label="blue").variant_label == "blue"


def test_a_variant_of_a_variant_belongs_to_the_same_original() -> None:
    assert original_of("a3", None, None) is None
    assert original_of("a2", "a1", None) == "a1"  # a1 is an original (or not registered)
    assert original_of("a3", "a2", "a1") == "a1"  # a2 is a variant of a1
    assert original_of("a1", "a2", "a1") == "a2"  # would lead back to itself: stops at a2


def test_the_registration_keeps_the_original_and_what_it_left() -> None:
    first = rules.register(None, registration("a3", variant_of="a2"), source(), original="a1")
    assert first.state.asset is not None and first.state.asset.variant_of == "a1"
    moved = rules.register(first.state, registration("a3", variant_of="b1"), source())
    assert moved.state.asset is not None and moved.state.asset.variant_of == "b1"
    assert moved.state.departed_originals == ["a1"]
    plain = rules.register(moved.state, registration("a3"), source())
    assert plain.state.asset is not None and plain.state.asset.variant_of is None
    assert plain.state.departed_originals == ["a1", "b1"]


def test_a_clear_difference_has_a_verdict_and_a_small_one_has_none() -> None:
    better = compare_ctr(Totals(10_000, 200), Totals(10_000, 300))
    assert better.verdict is Verdict.BETTER
    assert better.difference is not None and math.isclose(better.difference, 0.01)
    assert better.ci95_low is not None and better.ci95_high is not None
    assert 0 < better.ci95_low < 0.01 < better.ci95_high
    assert better.p_value is not None and better.p_value < 0.001
    worse = compare_ctr(Totals(10_000, 300), Totals(10_000, 200))
    assert worse.verdict is Verdict.WORSE and worse.p_value == better.p_value
    small = compare_ctr(Totals(100, 2), Totals(100, 3))
    assert small.verdict is Verdict.INCONCLUSIVE and small.p_value is not None
    assert small.p_value > 0.05
    assert compare_ctr(Totals(0, 0), Totals(100, 3)) == NO_EVIDENCE
    assert compare_ctr(Totals(10, 20), Totals(100, 3)) == NO_EVIDENCE  # more clicks than views
    same = compare_ctr(Totals(500, 0), Totals(500, 0))
    assert (same.difference, same.p_value, same.verdict) == (0.0, 1.0, Verdict.INCONCLUSIVE)


async def test_the_registry_keeps_each_originals_variants() -> None:
    rig = make_rig()
    await rig.register(rig.reg("a1"))
    await rig.register(rig.reg("a2", variant_of="a1", variant_label="blue"))
    await rig.register(rig.reg("a3", variant_of="a2"))  # a variant of a variant
    await rig.register(rig.reg("b1"))
    assert await rig.store.variants("a1") == ["a2", "a3"]
    state = await rig.state("a3")
    assert state is not None and state.asset is not None and state.asset.variant_of == "a1"

    await rig.register(rig.reg("a3", variant_of="b1"))  # now b1's
    assert await rig.store.variants("a1") == ["a2"] and await rig.store.variants("b1") == ["a3"]
    state = await rig.state("a3")
    assert state is not None and state.departed_originals == []  # cleaned
    await rig.lifecycle(rig.life("a2", "deleted", "a2-gone"))
    assert await rig.store.variants("a1") == [] and await rig.store.variant_count("b1") == 1


# --- the route ---------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Rig, Any]]:
    rig = make_rig()
    metrics = FakeMetricsStore()
    async with serve_views(
        tmp_path,
        registry_store=rig.store,
        metrics_store=metrics,
        suggestion_store=FakeSuggestionStore(),
    ) as test_client:
        yield test_client, rig, metrics


async def perform(metrics: FakeMetricsStore, rows: list[tuple[str, str, int, int]]) -> None:
    now = int(time.time())
    await metrics.point(0, sorted({r[0] for r in rows}))
    first = await metrics.position(0) + 1
    perf = [
        PerfRow(f"ev{first + n}", a, ch, "c1", now - 60, imp, clicks, 0, 0, 0, 0)
        for n, (a, ch, imp, clicks) in enumerate(rows)
    ]
    await metrics.apply(0, first, first + len(perf) - 1, perf, now)


async def test_the_route_compares_each_variant_with_the_original(client: Any) -> None:
    http, rig, metrics = client
    await rig.register(rig.reg("a1"))
    await rig.register(rig.reg("a2", variant_of="a1", variant_label="blue"))
    await rig.register(rig.reg("a3", variant_of="a1"))  # no events yet
    await perform(
        metrics,
        [
            ("a1", "web", 10_000, 200),
            ("a1", "email", 100, 2),
            ("a2", "web", 10_000, 300),
            ("a2", "email", 100, 3),
        ],
    )
    response = await http.get("/v1/assets/a2/variants")  # asked of a variant: its family
    assert response.status == 200
    body = await response.json()
    assert body["original"]["asset_id"] == "a1"
    assert body["original"]["lifetime"]["impressions"] == 10_100
    assert [(v["asset_id"], v["variant_label"]) for v in body["variants"]] == [
        ("a2", "blue"),
        ("a3", None),
    ]
    web_and_email = {c["channel"]: c["verdict"] for c in body["variants"][0]["comparisons"]}
    assert web_and_email == {"web": "better", "email": "inconclusive"}
    assert [
        (c["channel"], c["verdict"], c["p_value"]) for c in body["variants"][1]["comparisons"]
    ] == [("email", "inconclusive", None), ("web", "inconclusive", None)]

    asset = await (await http.get("/v1/assets/a1")).json()
    assert (asset["variant_of"], asset["variant_count"]) == (None, 2)
    asset = await (await http.get("/v1/assets/a2")).json()
    assert (asset["variant_of"], asset["variant_label"], asset["variant_count"]) == (
        "a1",
        "blue",
        0,
    )
    assert (await http.get("/v1/assets/nobody/variants")).status == 404
    alone = await (await http.get("/v1/assets/a1/variants")).json()
    assert len(alone["variants"]) == 2
