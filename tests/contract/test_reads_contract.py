"""The reads the board refresh relies on, on the fake and on Redis: windows summed from
the buckets they cover (the metrics step writes them), the partition holding an asset's
metrics, and the registry's asset states."""

from __future__ import annotations

import time

from service.domain import registry as rules
from service.domain.enums import Channel
from service.domain.metrics import Totals
from service.domain.windows import DAY, Window
from service.store.metrics import PerfRow
from tests.contract.conftest import Backend
from tests.unit.factories import registration, source

NOW = float(int(time.time()))


def row(n: int, asset: str, channel: str, ago: int, impressions: int, clicks: int) -> PerfRow:
    return PerfRow(f"e{n}", asset, channel, "c1", int(NOW) - ago, impressions, clicks, 0, 0, 0, 0)


async def test_windows_sum_the_buckets_they_cover_per_channel(backend: Backend) -> None:
    metrics = backend.metrics
    await metrics.point(1, ["a1", "a2"])
    rows = [
        row(1, "a1", "email", 60, 100, 5),
        row(2, "a1", "web", 120, 50, 1),
        row(3, "a1", "email", 3 * DAY, 1000, 20),  # in 7d and lifetime, not in 24h
        row(4, "a1", "email", 10 * DAY, 7, 7),  # in lifetime only
        row(5, "a2", "social", 60, 10, 0),
    ]
    await metrics.apply(1, 0, 4, rows, NOW)

    assert await metrics.partitions_of(["a1", "ghost", "a2"]) == [1, None, 1]
    windows = [Window.DAY, Window.WEEK, Window.LIFETIME]
    a1, a2 = await metrics.totals_by_window([("a1", 1), ("a2", 1)], windows, NOW)
    assert dict(a1[Window.DAY].by_channel) == {
        Channel.EMAIL: Totals(100, 5),
        Channel.WEB: Totals(50, 1),
    }
    assert a1[Window.WEEK].channel(Channel.EMAIL) == Totals(1100, 25)
    assert a1[Window.LIFETIME].total == Totals(1157, 33)
    assert a1[Window.LIFETIME].campaign("c1") == Totals(1157, 33)
    assert dict(a2[Window.WEEK].by_channel) == {Channel.SOCIAL: Totals(10, 0)}
    # The window moves on: a day later the hour-old events are out of the 24h window.
    [later] = await metrics.totals_by_window([("a1", 1)], [Window.DAY], NOW + DAY + 3600)
    assert later[Window.DAY].total == Totals()
    # An asset without events, or read at the wrong partition: empty sums, not an error.
    [nothing] = await metrics.totals_by_window([("a1", 0)], windows, NOW)
    assert all(t.total == Totals() for t in nothing.values())

    assert await metrics.totals("a1", Window.LIFETIME, NOW, channel=Channel.WEB) == Totals(50, 1)
    assert await metrics.totals("ghost", Window.LIFETIME, NOW) is None
    assert await metrics.window_totals("ghost", Window.DAY, NOW) is None


async def test_assets_reads_the_known_states_in_order(backend: Backend) -> None:
    store = backend.registry
    states = [rules.register(None, registration(a), source()).state for a in ("a1", "a2")]
    for state in states:
        assert await store.commit(state.asset_id, 0, state, {})
    assert await store.assets(["a2", "ghost", "a1"]) == [states[1], states[0]]
    assert await store.assets([]) == []
