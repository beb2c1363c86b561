"""The exactly-once metrics script on a real Redis: sums, windows, replays, stale writers."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import AskError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import Settings
from service.domain.enums import Channel
from service.domain.metrics import METRICS, Totals
from service.domain.windows import DAY, HOUR, Window, live_resolutions, window_buckets
from service.resilience import is_transient
from service.store.client import connect
from service.store.codecs import encode_sums
from service.store.keys import Keys
from service.store.metrics import ApplyStatus, EventCounts, MetricsStore, PerfRow
from service.store.perf_step import PerfStep, ReadStep, StepRead
from service.store.scripts import Scripts
from service.store.seen_ids import LOAD
from tests.conftest import admin_settings

pytestmark = pytest.mark.integration

# Buckets expire in real time on the server, so the tests write around the real now.
NOW = float(int(time.time()))
CHANNELS = ["email", "web", "social", "display"]


@pytest.fixture
def store(redis: Any, settings: Settings) -> MetricsStore:
    keys = Keys(settings.redis_key_prefix)
    return MetricsStore(redis, keys, Scripts.register(redis), settings.topic_asset_performance)


def row(
    n: int,
    asset: str,
    t: float,
    *,
    channel: str = "email",
    campaign: str = "c1",
    impressions: int = 100,
    clicks: int = 3,
) -> PerfRow:
    return PerfRow(f"e{n}", asset, channel, campaign, int(t), impressions, clicks, 1, 0, 0, 0)


def expected(
    rows: list[PerfRow],
    window: Window,
    now: float,
    *,
    channel: str | None = None,
    campaign: str | None = None,
) -> Totals:
    """The oracle: what a window must hold, computed from the events themselves."""
    sums = dict.fromkeys(METRICS, 0)
    for r in rows:
        if (channel is not None and r[2] != channel) or (campaign is not None and r[3] != campaign):
            continue
        t = r[4]
        if window is not Window.LIFETIME:
            resolution, starts = window_buckets(window, now)
            late = t < now - 30 * DAY
            if late or resolution not in live_resolutions(t, now):
                continue
            if resolution.start(t) not in starts:
                continue
        for i, metric in enumerate(METRICS):
            sums[metric] += r[5 + i]
    return Totals(**sums)


async def test_sums_per_window_over_more_than_thirty_days(store: MetricsStore) -> None:
    # Its own now, not the module's NOW: Redis expires buckets in real time, and the
    # oldest 5-minute bucket of the hour window lives only minutes past the hour.
    now = float(int(time.time()))
    rng = random.Random(3)
    rows = [
        row(
            n,
            f"a{n % 3}",
            now - rng.uniform(0, 40 * DAY),
            channel=rng.choice(CHANNELS),
            campaign=f"c{n % 4}",
            impressions=rng.randint(0, 500),
            clicks=rng.randint(0, 9),
        )
        for n in range(3000)
    ]
    rows += [row(10_000 + n, "a0", now - rng.uniform(0, 2 * HOUR)) for n in range(200)]
    by_partition: dict[int, list[PerfRow]] = defaultdict(list)
    for r in rows:
        by_partition[int(r[1][1])].append(r)  # the asset number plays the partition
    for partition, part_rows in by_partition.items():
        await store.point(partition, sorted({r[1] for r in part_rows}))
        for start in range(0, len(part_rows), 500):
            chunk = part_rows[start : start + 500]
            result = await store.apply(partition, start, start + len(chunk) - 1, chunk, now)
            assert result.status is ApplyStatus.APPLIED

    late = sum(1 for r in rows if r[4] < now - 30 * DAY)
    assert late > 0
    assert await store.counters(3) == EventCounts(applied=len(rows), duplicates=0, late=late)
    for asset in ("a0", "a1", "a2"):
        mine = [r for r in rows if r[1] == asset]
        for window in Window:
            got = await store.totals(asset, window, now)
            assert got == expected(mine, window, now), (asset, window)
        for channel in CHANNELS:
            got = await store.totals(asset, Window.MONTH, now, channel=Channel(channel))
            assert got == expected(mine, Window.MONTH, now, channel=channel)
        got = await store.totals(asset, Window.WEEK, now, campaign="c1")
        assert got == expected(mine, Window.WEEK, now, campaign="c1")
    assert await store.totals("never-seen", Window.LIFETIME, now) is None


@pytest.mark.cluster
async def test_reads_group_the_assets_that_ask_for_the_same_hashes(store: MetricsStore) -> None:
    await store.point(0, ["a1", "a2"])
    # 400 campaigns in one sum; a2 only in a bucket of three days ago.
    rows = [
        row(n, "a1", NOW - 60, channel="web", campaign=f"c{n}", impressions=10, clicks=1)
        for n in range(400)
    ]
    rows.append(row(400, "a2", NOW - 3 * DAY, impressions=7, clicks=0))
    await store.apply(0, 0, len(rows) - 1, rows, NOW)
    snapshots: list[tuple[int, int]] = []  # (hashes, assets) of each read transaction
    read_snapshot = store._read_snapshot

    async def counted(keys: Any, assets: list[str]) -> Any:
        snapshots.append((len(keys), len(assets)))
        return await read_snapshot(keys, assets)

    store._read_snapshot = counted  # type: ignore[method-assign]
    windows = [Window.DAY, Window.WEEK, Window.LIFETIME]
    [a1, a2] = await store.totals_by_window([("a1", 0), ("a2", 0)], windows, NOW)
    for window in windows:
        assert a1[window].total == expected(rows[:400], window, NOW)
        assert a2[window].total == expected(rows[400:], window, NOW)
    assert len(a1[Window.DAY].by_campaign) == 400
    assert a1[Window.LIFETIME].campaign("c399") == Totals(10, 1, 1)
    # one transaction per window, both assets in it
    assert sorted(snapshots) == sorted(
        (len(window_buckets(w, NOW)[1]) if w is not Window.LIFETIME else 1, 2) for w in windows
    )


async def start_moving(admin: Any, slot: int, source: Any, target: Any) -> None:
    """The slot half-way from `source` to `target`, as a reshard leaves it for a moment:
    its keys on the target, the slot still the source's (which answers ASK for them)."""
    source_id = await admin.cluster_myid(source)
    target_id = await admin.cluster_myid(target)
    await admin.execute_command(
        "CLUSTER SETSLOT", slot, "IMPORTING", source_id, target_nodes=target
    )
    await admin.execute_command(
        "CLUSTER SETSLOT", slot, "MIGRATING", target_id, target_nodes=source
    )
    names = await admin.execute_command("CLUSTER GETKEYSINSLOT", slot, 10_000, target_nodes=source)
    assert names, "the slot must hold the keys the read asks for"
    await admin.execute_command(
        "MIGRATE", target.host, target.port, "", 0, 5_000, "KEYS", *names, target_nodes=source
    )


async def finish_moving(admin: Any, slot: int, target: Any) -> None:
    target_id = await admin.cluster_myid(target)
    for node in admin.get_primaries():
        await admin.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id, target_nodes=node)


@pytest.mark.cluster_only
async def test_a_read_meeting_a_moving_slot_is_sent_again_until_it_moved(
    store: MetricsStore, settings: Settings
) -> None:
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    admin = connect(admin_settings(settings))
    try:
        await admin.initialize()
        key = Keys(settings.redis_key_prefix).perf_lifetime(0)
        slot = admin.keyslot(key)
        source = admin.get_node_from_key(key)
        target = next(n for n in admin.get_primaries() if n.name != source.name)
        await start_moving(admin, slot, source, target)
        # Half-way for longer than the read waits: it fails, as transient.
        with pytest.raises(AskError) as refused:
            await store.totals("a1", Window.LIFETIME, NOW)
        assert is_transient(refused.value)

        async def finish_soon() -> None:
            await asyncio.sleep(0.03)
            await finish_moving(admin, slot, target)

        # Done within the read's tries: the read waits, follows the move and answers.
        finishing = asyncio.create_task(finish_soon())
        assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(100, 3, 1)
        await finishing
        await admin.nodes_manager.initialize()
        assert admin.get_node_from_key(key).name == target.name
        # And back, so that the cluster keeps its layout for the tests that follow.
        await start_moving(admin, slot, target, source)
        await finish_moving(admin, slot, source)
        assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(100, 3, 1)
    finally:
        await admin.aclose()


async def test_position_makes_batches_apply_once(store: MetricsStore) -> None:
    rows = [row(n, "a1", NOW - 60) for n in range(10)]
    await store.point(0, ["a1"])
    assert (await store.apply(0, 100, 104, rows[:5], NOW)).status is ApplyStatus.APPLIED
    again = await store.apply(0, 100, 104, rows[:5], NOW)  # redelivered after a crash
    assert (again.status, again.position) == (ApplyStatus.COVERED, 104)
    straddling = await store.apply(0, 102, 109, rows[2:], NOW)  # a new owner overlaps
    assert (straddling.status, straddling.position) == (ApplyStatus.STRADDLES, 104)
    assert (await store.apply(0, 105, 109, rows[5:], NOW)).status is ApplyStatus.APPLIED
    assert await store.position(0) == 109
    lifetime = await store.totals("a1", Window.LIFETIME, NOW)
    assert lifetime == Totals(impressions=1000, clicks=30, engagements=10)


async def test_a_resent_event_counts_once(store: MetricsStore) -> None:
    await store.point(0, ["a1"])
    first = await store.apply(0, 0, 0, [row(1, "a1", NOW - 10)], NOW)
    copy = await store.apply(0, 1, 1, [row(1, "a1", NOW - 10)], NOW)  # same event_id later
    assert (first.applied, copy.applied, copy.duplicates) == (1, 0, 1)
    assert await store.totals("a1", Window.HOUR, NOW) == Totals(
        impressions=100, clicks=3, engagements=1
    )


async def test_buckets_expire_on_their_own(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 10)], NOW)
    keys = Keys(settings.redis_key_prefix)
    for name, seconds, retention in (("m5", 300, HOUR), ("h1", HOUR, DAY), ("d1", DAY, 30 * DAY)):
        start = int(NOW - 10) - int(NOW - 10) % seconds
        expire_at = await redis.expiretime(keys.perf_bucket(0, name, start))
        assert expire_at == start + seconds + retention
    assert await redis.ttl(keys.perf_lifetime(0)) == -1


def expiries_sent(store: MetricsStore) -> list[dict[str, int]]:
    """Per step written from now on, the EXPIREAT it sends per hash (0: none)."""
    sent: list[dict[str, int]] = []
    write = store._step.write

    async def recorded(conn: Any, partition: int, step: Any) -> bool:
        sent.append({key: expires for key, expires, _ in step.hashes})
        return await write(conn, partition, step)

    store._step.write = recorded  # type: ignore[method-assign]
    return sent


async def test_a_bucket_is_given_its_expiry_once_while_no_other_writer_comes_between(
    redis: Any, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    store = MetricsStore(
        redis, keys, Scripts.register(redis), settings.topic_asset_performance,
        known_expiry=True,
    )  # fmt: skip
    await store.point(0, ["a1"])
    sent = expiries_sent(store)
    two_days_ago = int(NOW - 2 * DAY)
    day_start = two_days_ago - two_days_ago % DAY
    day = keys.perf_bucket(0, "d1", day_start)  # lives 28 days more
    hour_ago = int(NOW - 58 * 60)
    five_start = hour_ago - hour_ago % 300
    five = keys.perf_bucket(0, "m5", five_start)  # expires within minutes
    await store.apply(0, 0, 1, [row(1, "a1", two_days_ago), row(2, "a1", hour_ago)], NOW)
    await store.apply(
        0, 2, 3, [row(3, "a1", two_days_ago), row(4, "a1", hour_ago)], NOW, expected=1
    )
    assert sent[0][day] == day_start + 31 * DAY and sent[1][day] == 0
    assert sent[0][five] == sent[1][five] == five_start + 300 + HOUR  # near: sent each time
    assert await redis.expiretime(day) == day_start + 31 * DAY  # and it still has it
    # Another writer moves the fence (a forget does): the expiry is sent again.
    await redis.hincrby(keys.perf_counters(0), "forgotten", 1)
    await store.apply(0, 4, 4, [row(5, "a1", two_days_ago)], NOW, expected=3)
    assert sent[2][day] == day_start + 31 * DAY
    # Partitions moved (or Redis lost writes): nothing known of them is trusted.
    await store.apply(0, 5, 5, [row(6, "a1", two_days_ago)], NOW, expected=4)
    store.reset([0])
    await store.apply(0, 6, 6, [row(7, "a1", two_days_ago)], NOW, expected=5)
    assert sent[3][day] == 0 and sent[4][day] == day_start + 31 * DAY
    lifetime = await store.totals("a1", Window.LIFETIME, NOW)
    assert lifetime is not None and lifetime.impressions == 700


async def test_unless_redis_is_known_not_to_evict_every_step_sends_the_expiry(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    await store.point(0, ["a1"])
    sent = expiries_sent(store)
    t = int(NOW - 2 * DAY)
    await store.apply(0, 0, 0, [row(1, "a1", t)], NOW)
    await store.apply(0, 1, 1, [row(2, "a1", t)], NOW, expected=0)
    day = keys.perf_bucket(0, "d1", t - t % DAY)
    assert sent[0][day] == sent[1][day] == t - t % DAY + 31 * DAY


async def test_copies_within_one_batch_count_once(store: MetricsStore) -> None:
    await store.point(0, ["a1"])
    result = await store.apply(0, 0, 2, [row(1, "a1", NOW - 10)] * 3, NOW)
    assert (result.applied, result.duplicates) == (1, 2)
    lifetime = await store.totals("a1", Window.LIFETIME, NOW)
    assert lifetime == Totals(impressions=100, clicks=3, engagements=1)


async def test_a_position_below_the_expected_one_is_reported_behind(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    await store.point(0, ["a1"])
    assert (await store.apply(0, 0, 4, [row(1, "a1", NOW - 10)], NOW)).position == 4
    # Redis loses its last second of writes: the position falls back.
    await redis.set(Keys(settings.redis_key_prefix).perf_position(0, store._topic), 1)
    behind = await store.apply(0, 5, 9, [row(2, "a1", NOW - 10)], NOW, expected=4)
    assert (behind.status, behind.position) == (ApplyStatus.BEHIND, 1)
    lifetime = await store.totals("a1", Window.LIFETIME, NOW)
    assert lifetime is not None and lifetime.impressions == 100, "nothing was written"


@pytest.mark.parametrize(
    "bad",
    [
        ("e1", "a1", "email", "c1", int(NOW), -1, 0, 0, 0, 0, 0),
        ("e1", "a1", "email", "c1", int(NOW), 10**11, 0, 0, 0, 0, 0),
        ("e1", "a1", "email", "c1", int(NOW), 1.5, 0, 0, 0, 0, 0),
        ("e1", "", "email", "c1", int(NOW), 1, 0, 0, 0, 0, 0),
        ("e1", "a1", "email", "c1", int(NOW), 1, 0, 0, 0, 0),
        ("e1", "a1", "email", "c1", "soon", 1, 0, 0, 0, 0, 0),
    ],
)
async def test_bad_input_is_refused_before_any_write(
    redis: Any, store: MetricsStore, settings: Settings, bad: Any
) -> None:
    good = row(1, "a1", NOW - 10)
    with pytest.raises(Exception, match="bad input"):
        await store.apply(0, 0, 1, [good, bad], NOW)
    assert [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}:*")] == []


async def test_a_batch_that_would_overflow_a_counter_is_refused_whole(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    await store.point(0, ["a1", "a2"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 10), row(2, "a2", NOW - 10)], NOW)
    # A lifetime counter close to 2^53 - 1, the largest Lua adds exactly.
    near = 2**53 - 1 - 10**9
    await redis.hset(keys.perf_lifetime(0), "a1", encode_sums({"ch:email": [near, 0, 0, 0, 0, 0]}))
    big = row(3, "a1", NOW - 10, impressions=10**10)
    fine = row(4, "a2", NOW - 10)
    refused = await store.apply(0, 1, 2, [fine, big], NOW)
    assert (refused.status, refused.asset_id) == (ApplyStatus.OVERFLOW, "a1")
    assert await store.position(0) == 0, "nothing was written"
    applied = await store.apply(0, 1, 2, [fine], NOW)
    assert applied.status is ApplyStatus.APPLIED
    a2 = await store.totals("a2", Window.LIFETIME, NOW)
    assert a2 is not None and a2.impressions == 200


async def test_counters_stay_exact_up_to_the_largest_lua_adds_exactly(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 10)], NOW)
    largest = encode_sums({"ch:email": [2**53 - 1 - 150, 0, 0, 0, 0, 0]})
    await redis.hset(keys.perf_lifetime(0), "a1", largest)
    near = [row(2, "a1", NOW - 10, impressions=49), row(3, "a1", NOW, impressions=100)]
    assert (await store.apply(0, 1, 2, near, NOW)).status is ApplyStatus.APPLIED
    totals = await store.totals("a1", Window.LIFETIME, NOW, channel=Channel.EMAIL)
    assert totals is not None and totals.impressions == 2**53 - 2
    over = await store.apply(0, 3, 3, [row(4, "a1", NOW, impressions=2)], NOW)
    assert (over.status, over.asset_id) == (ApplyStatus.OVERFLOW, "a1")


def interfering(settings: Settings, step: Any) -> ReadStep:
    """A step's read whose first call is followed by `step`: another writer between a
    batch's read and its write."""
    read = PerfStep(Keys(settings.redis_key_prefix), settings.topic_asset_performance).read
    pending = [step]

    async def read_then_interfere(*args: Any) -> StepRead:
        got = await read(*args)
        if pending:
            await pending.pop()()
        return got

    return read_then_interfere


async def test_a_batch_written_between_the_read_and_the_write_is_not_lost(
    redis: Any, settings: Settings
) -> None:
    keys, scripts = Keys(settings.redis_key_prefix), Scripts.register(redis)
    other = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
    await other.point(0, ["a1"])
    assert (await other.apply(0, 0, 4, [row(1, "a1", NOW - 60)], NOW)).applied == 1

    async def other_applies_five_to_nine() -> None:
        assert (await other.apply(0, 5, 9, [row(2, "a1", NOW - 60)], NOW)).applied == 1

    store = MetricsStore(
        redis,
        keys,
        scripts,
        settings.topic_asset_performance,
        read_step=interfering(settings, other_applies_five_to_nine),
    )
    applied = await store.apply(0, 10, 12, [row(3, "a1", NOW - 60)], NOW, expected=4)
    assert (applied.status, applied.applied) == (ApplyStatus.APPLIED, 1)
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(300, 9, 3)
    assert await store.totals("a1", Window.HOUR, NOW) == Totals(300, 9, 3)


async def test_a_connection_lost_between_the_read_and_the_write_writes_nothing(
    redis: Any, settings: Settings
) -> None:
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    read = PerfStep(keys, topic).read
    killed: list[int] = []

    async def read_then_lose_the_connection(conn: Any, *args: Any) -> StepRead:
        got = await read(conn, *args)
        if not killed:
            [client_id] = await conn.run([("CLIENT", "ID")])
            killed.append(await redis.execute_command("CLIENT", "KILL", "ID", client_id))
            with pytest.raises(RedisConnectionError):  # the client notices: it disconnects
                await conn.run([("PING",)])
        return got

    store = MetricsStore(
        redis, keys, Scripts.register(redis), topic, read_step=read_then_lose_the_connection
    )
    await store.point(0, ["a1"])
    with pytest.raises(Exception) as lost:
        await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    assert killed == [1] and is_transient(lost.value), lost.value
    assert await store.position(0) == -1, "nothing written"
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(0, 0, 0)
    # Not connected again behind the step's back (the new connection would watch nothing):
    # the retry reads again and applies once.
    assert (await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)).applied == 1
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(100, 3, 1)


@pytest.mark.cluster
@pytest.mark.secure
async def test_a_step_runs_on_connections_its_client_closed(
    store: MetricsStore, redis: Any
) -> None:
    """redis-py closes idle connections after a failure and connects them again on their
    next use: the step's held connection must too, on every kind of stack."""
    await store.point(0, ["a1"])
    assert (await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)).applied == 1
    if isinstance(redis, RedisCluster):
        for node in redis.get_nodes():
            await node.disconnect()
    else:
        await redis.connection_pool.disconnect()
    assert (await store.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW, expected=0)).applied == 1
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(200, 6, 2)


async def test_a_step_redis_does_not_answer_times_out_and_writes_nothing(
    redis: Any, settings: Settings
) -> None:
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    impatient = connect(settings.model_copy(update={"redis_socket_timeout_seconds": 0.3}))
    store = MetricsStore(impatient, keys, Scripts.register(impatient), topic)
    try:
        await store.point(0, ["a1"])
        await redis.execute_command("CLIENT", "PAUSE", 1000, "ALL")  # Redis frozen for 1 s
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
        assert time.monotonic() - started < 0.9, "given up at the reply timeout, not the pause"
        await asyncio.sleep(1.0)
        assert await store.position(0) == -1, "nothing written"
        assert (await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)).applied == 1
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await impatient.aclose()


async def test_a_forget_between_the_read_and_the_write_stays_forgotten(
    redis: Any, settings: Settings
) -> None:
    keys, scripts = Keys(settings.redis_key_prefix), Scripts.register(redis)
    plain = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
    await plain.point(0, ["a1"])
    await plain.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)

    async def forget_a1() -> None:
        await plain.forget("a1", 0)
        await plain.point(0, ["a1"])  # an event of it follows: pointed again

    store = MetricsStore(
        redis,
        keys,
        scripts,
        settings.topic_asset_performance,
        read_step=interfering(settings, forget_a1),
    )
    assert (await store.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW)).applied == 1
    # Only the event after the forget counts in lifetime; the buckets keep both.
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(100, 3, 1)
    assert await store.totals("a1", Window.HOUR, NOW) == Totals(200, 6, 2)


async def test_a_batch_another_worker_applies_between_the_read_and_the_write_counts_once(
    redis: Any, settings: Settings
) -> None:
    keys, scripts = Keys(settings.redis_key_prefix), Scripts.register(redis)
    other = MetricsStore(redis, keys, scripts, settings.topic_asset_performance)
    await other.point(0, ["a1"])
    batch = [row(1, "a1", NOW - 60), row(2, "a1", NOW - 60)]

    async def other_applies_the_same_batch() -> None:
        assert (await other.apply(0, 0, 1, batch, NOW)).applied == 2

    store = MetricsStore(
        redis,
        keys,
        scripts,
        settings.topic_asset_performance,
        read_step=interfering(settings, other_applies_the_same_batch),
    )
    covered = await store.apply(0, 0, 1, batch, NOW)
    assert (covered.status, covered.position) == (ApplyStatus.COVERED, 1)
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(200, 6, 2)


def sums_asked(buckets: Sequence[int], wanted: Sequence[tuple[str, Sequence[str]]]) -> int:
    return sum(len(assets) for _, assets in wanted)


def buckets_asked(buckets: Sequence[int], wanted: Sequence[tuple[str, Sequence[str]]]) -> int:
    return len(buckets)


def counting_reads(
    settings: Settings, count: Callable[..., int] = sums_asked
) -> tuple[ReadStep, list[int]]:
    """A step's read that records what each call asks for: how many sums, unless `count`
    says otherwise."""
    read = PerfStep(Keys(settings.redis_key_prefix), settings.topic_asset_performance).read
    asked: list[int] = []

    async def counted(conn: Any, partition: int, buckets: Any, wanted: Any) -> StepRead:
        asked.append(count(buckets, wanted))
        return await read(conn, partition, buckets, wanted)

    return counted, asked


async def test_kept_sums_are_not_read_again(redis: Any, settings: Settings) -> None:
    reads, asked = counting_reads(settings)
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    store = MetricsStore(
        redis, keys, Scripts.register(redis), topic, kept_sums=1000, read_step=reads
    )
    await store.point(0, ["a1"])
    for n in range(5):
        batch = [row(n, "a1", NOW - 60)]
        assert (await store.apply(0, n, n, batch, NOW, expected=n - 1)).applied == 1
    # The partition's first step here reads the table of ids' size alone, then the sums.
    first = asked[1]
    assert first >= 2 and asked == [0, first, 0, 0, 0, 0], "only the first batch reads sums"
    assert await store.totals("a1", Window.HOUR, NOW) == Totals(500, 15, 5)
    # A copy: found in the buckets read, and the batch is made again from the kept sums.
    copy = await store.apply(0, 5, 6, [row(0, "a1", NOW - 60), row(9, "a1", NOW - 60)], NOW)
    assert (copy.applied, copy.duplicates, asked[6:]) == (1, 1, [0])
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(600, 18, 6)


async def test_kept_sums_are_not_trusted_after_another_writer(
    redis: Any, settings: Settings
) -> None:
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    reads, asked = counting_reads(settings)
    mine = MetricsStore(
        redis, keys, Scripts.register(redis), topic, kept_sums=1000, read_step=reads
    )
    other = MetricsStore(redis, keys, Scripts.register(redis), topic, kept_sums=1000)
    await mine.point(0, ["a1", "a2"])
    await mine.apply(0, 0, 0, [row(1, "a1", NOW - 60), row(2, "a2", NOW - 60)], NOW)
    # A worker that still believes it owns the partition writes a1 and a2 again...
    await other.apply(0, 1, 1, [row(3, "a1", NOW - 60), row(4, "a2", NOW - 60)], NOW, expected=0)
    # ... and a2 is deleted: both moves are seen, nothing kept from before them is used.
    await other.forget("a2", 0)
    await other.point(0, ["a2"])
    applied = await mine.apply(
        0, 2, 2, [row(5, "a1", NOW - 60), row(6, "a2", NOW - 60)], NOW, expected=0
    )
    # Sums of the first batch's two assets kept; Redis's fence moved: all of them read.
    assert applied.status is ApplyStatus.APPLIED and applied.applied == 2
    # (The first read, of the table of ids' size alone, asks no sum.)
    full = asked[1]
    assert asked[0] == 0 and asked[2] < full and asked[-1] == full, "read again, all of them"
    assert await mine.totals("a1", Window.LIFETIME, NOW) == Totals(300, 9, 3)
    assert await mine.totals("a2", Window.LIFETIME, NOW) == Totals(100, 3, 1)
    assert await mine.totals("a2", Window.HOUR, NOW) == Totals(300, 9, 3)


def kept_buckets_store(redis: Any, settings: Settings, reads: ReadStep | None) -> MetricsStore:
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    return MetricsStore(
        redis, keys, Scripts.register(redis), topic, kept_id_buckets=1000, read_step=reads
    )


async def test_kept_buckets_of_ids_are_not_read_again_and_still_find_copies(
    redis: Any, settings: Settings
) -> None:
    reads, asked = counting_reads(settings, buckets_asked)
    store = kept_buckets_store(redis, settings, reads)
    await store.point(0, ["a1"])
    for n in range(3):
        assert (await store.apply(0, n, n, [row(n, "a1", NOW - 60)], NOW)).applied == 1
    # The first step reads the table's size alone, then the bucket of its id (the table
    # has one bucket until it holds LOAD ids); later steps find it kept.
    assert asked == [0, 1, 0, 0]
    copies = await store.apply(0, 3, 4, [row(1, "a1", NOW - 60), row(7, "a1", NOW - 60)], NOW)
    assert (copies.applied, copies.duplicates, asked[4:]) == (1, 1, [0]), "found in the kept"
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(400, 12, 4)
    # A table that grows splits kept buckets: what it writes is what Redis holds after.
    ids = range(100, 100 + 3 * LOAD)
    batch = [row(n, "a1", NOW - 60) for n in ids]
    assert (await store.apply(0, 5, 5 + len(batch) - 1, batch, NOW)).applied == len(batch)
    again = [row(n, "a1", NOW - 60) for n in ids]
    end = 5 + 2 * len(batch) - 1
    assert (await store.apply(0, 5 + len(batch), end, again, NOW)).duplicates == len(batch)
    assert asked[-1] == 0, "every bucket the copies fall in was kept"
    table = await redis.hgetall(Keys(settings.redis_key_prefix).perf_seen(0))
    assert int(table["n"]) > 1 and int(table["c"]) == 4 + len(batch)


async def test_kept_buckets_of_ids_are_not_trusted_after_another_writer(
    redis: Any, settings: Settings
) -> None:
    reads, asked = counting_reads(settings, buckets_asked)
    mine = kept_buckets_store(redis, settings, reads)
    other = kept_buckets_store(redis, settings, None)
    await mine.point(0, ["a1"])
    await mine.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    # A worker that still believes it owns the partition applies event 2...
    await other.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW, expected=0)
    # ... and a copy of it comes to this one: the fence moved, the bucket is read again.
    copy = await mine.apply(0, 2, 2, [row(2, "a1", NOW - 60)], NOW, expected=0)
    assert (copy.status, copy.applied, copy.duplicates) == (ApplyStatus.APPLIED, 0, 1)
    assert asked[-2:] == [0, 1], "kept first, then read once Redis held another table"
    assert await mine.totals("a1", Window.LIFETIME, NOW) == Totals(200, 6, 2)


async def test_kept_buckets_of_ids_are_not_trusted_past_a_write_of_the_same_size(
    redis: Any, settings: Settings
) -> None:
    reads, asked = counting_reads(settings, buckets_asked)
    mine = kept_buckets_store(redis, settings, reads)
    other = kept_buckets_store(redis, settings, None)
    await mine.point(0, ["a1"])
    await mine.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    # 31 hours later another writer drops the stale id and adds one: the table keeps its
    # size (one bucket, one entry) and holds another bucket.
    later = NOW + 31 * HOUR
    await other.apply(0, 1, 1, [row(2, "a1", later - 60)], later, expected=0)
    copy = await mine.apply(0, 2, 2, [row(2, "a1", later - 60)], later, expected=0)
    assert (copy.applied, copy.duplicates) == (0, 1), "the other writer's id is a copy"
    assert asked[-2:] == [0, 1], "kept first, then read once the fence moved"


async def test_a_table_of_ids_that_expired_is_read_again(redis: Any, settings: Settings) -> None:
    reads, asked = counting_reads(settings, buckets_asked)
    store = kept_buckets_store(redis, settings, reads)
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    # A partition idle for a day: its table of ids expires, its position stays.
    await redis.delete(Keys(settings.redis_key_prefix).perf_seen(0))
    again = await store.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW, expected=0)
    assert again.applied == 1
    assert asked[-2:] == [0, 1], "the kept bucket was not used for a table of another size"
    table = await redis.hgetall(Keys(settings.redis_key_prefix).perf_seen(0))
    assert (table["n"], table["c"]) == ("1", "1"), "only the new id: the lost one stays lost"


async def test_a_position_redis_lost_drops_the_kept_sums(redis: Any, settings: Settings) -> None:
    keys, topic = Keys(settings.redis_key_prefix), settings.topic_asset_performance
    store = MetricsStore(redis, keys, Scripts.register(redis), topic, kept_sums=1000)
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    await store.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW, expected=0)
    # Redis restarted from a snapshot taken before the second batch.
    await redis.set(keys.perf_position(0, topic), 0)
    await redis.delete(keys.perf_seen(0))  # (the first batch's ids are lost too)
    await redis.hset(keys.perf_lifetime(0), "a1", encode_sums({"ch:email": [100, 3, 1, 0, 0, 0]}))
    behind = await store.apply(0, 2, 2, [row(3, "a1", NOW - 60)], NOW, expected=1)
    assert (behind.status, behind.position) == (ApplyStatus.BEHIND, 0)
    # The worker seeks back and applies the second batch again, from what Redis holds.
    assert (
        await store.apply(0, 1, 2, [row(2, "a1", NOW - 60), row(3, "a1", NOW - 60)], NOW)
    ).applied == 2
    assert await store.totals("a1", Window.LIFETIME, NOW) == Totals(300, 9, 3)


async def test_a_stored_value_that_is_not_sums_is_an_error_before_any_write(
    redis: Any, store: MetricsStore, settings: Settings
) -> None:
    keys = Keys(settings.redis_key_prefix)
    await store.point(0, ["a1"])
    await store.apply(0, 0, 0, [row(1, "a1", NOW - 60)], NOW)
    await redis.hset(keys.perf_lifetime(0), "a1", "ch:email=12x")  # damaged by hand
    with pytest.raises(
        ValueError, match="not a stored sum in 'ch:email=12x': ch:email holds '12x'"
    ):
        await store.apply(0, 1, 1, [row(2, "a1", NOW - 60)], NOW, expected=0)
    assert await store.position(0) == 0, "nothing was written"
    assert await redis.hget(keys.perf_lifetime(0), "a1") == "ch:email=12x"
