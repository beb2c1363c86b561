"""The Redis requirements policy, as a pure function of what CONFIG GET answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import NoPermissionError, ResponseError

from service.errors import RedisRequirementError
from service.store.requirements import (
    NOT_VERIFIED,
    NodeConfig,
    assess,
    describe_persistence,
    read_node_configs,
)


def node(
    policy: str | None = "noeviction",
    appendonly: str | None = "yes",
    appendfsync: str | None = "everysec",
    save: str | None = "",
    name: str = "10.0.0.1:6379",
) -> NodeConfig:
    return NodeConfig(name, policy, appendonly, appendfsync, save)


def test_noeviction_with_aof_everysec_is_ok() -> None:
    report = assess([node()], allow_eviction=False)
    assert (report.eviction_policy, report.persistence) == ("noeviction", "AOF everysec")
    assert report.problems == () and report.verified and not report.refused
    assert report.verdict == "OK"
    report.raise_if_refused()


@pytest.mark.parametrize(
    "policy",
    ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"],
)
def test_an_evicting_policy_is_refused_and_the_message_says_how_to_fix_it(policy: str) -> None:
    report = assess([node(policy)], allow_eviction=False)
    assert report.refused and report.verdict == "REFUSED"
    assert report.eviction_policy == policy
    with pytest.raises(RedisRequirementError) as raised:
        report.raise_if_refused()
    message = str(raised.value)
    assert f"maxmemory-policy is {policy}" in message
    assert "count twice" in message
    assert "CONFIG SET maxmemory-policy noeviction" in message
    assert "MEDIA_REDIS_ALLOW_EVICTION=true" in message


def test_allowed_eviction_is_a_loud_warning_not_a_refusal() -> None:
    report = assess([node("volatile-lru")], allow_eviction=True)
    assert not report.refused
    [warning] = report.warnings
    assert warning.startswith("EVICTION ALLOWED by MEDIA_REDIS_ALLOW_EVICTION=true")
    assert "keys with a TTL" in warning
    assert report.verdict == "OK with warnings"
    report.raise_if_refused()


@pytest.mark.parametrize(
    ("appendonly", "appendfsync", "save", "described"),
    [
        ("yes", "everysec", "", "AOF everysec"),
        ("yes", "always", "", "AOF always"),
        ("yes", "everysec", "3600 1 300 100", "AOF everysec + RDB snapshots"),
        ("no", "everysec", "3600 1 300 100", "RDB snapshots only"),
        ("no", "everysec", "", "none"),
        (None, None, None, "unknown"),
    ],
)
def test_persistence_is_described(
    appendonly: str | None, appendfsync: str | None, save: str | None, described: str
) -> None:
    config = node(appendonly=appendonly, appendfsync=appendfsync, save=save)
    assert describe_persistence(config) == described


def test_no_persistence_is_a_warning_that_says_what_a_restart_loses() -> None:
    report = assess([node(appendonly="no", save="")], allow_eviction=False)
    assert not report.refused and report.persistence == "none"
    [warning] = report.warnings
    assert "restart loses the asset registry" in warning
    assert "appendonly yes with appendfsync everysec" in warning


def test_snapshots_only_and_fsync_no_are_warnings() -> None:
    rdb = assess([node(appendonly="no", save="900 1")], allow_eviction=False)
    assert not rdb.refused and "since the last snapshot" in rdb.warnings[0]
    lazy = assess([node(appendfsync="no")], allow_eviction=False)
    assert not lazy.refused and "appendfsync is no" in lazy.warnings[0]


def test_config_not_permitted_is_a_warning_not_a_refusal() -> None:
    report = assess(None, allow_eviction=False)
    assert not report.refused and not report.verified
    assert report.warnings == [NOT_VERIFIED]
    assert NOT_VERIFIED.startswith(
        "could not verify (CONFIG not permitted): make sure maxmemory-policy is noeviction"
    )
    assert report.verdict == "not verified"


def test_every_cluster_primary_counts_and_is_named() -> None:
    good = node(name="a:1")
    bad = node("allkeys-lru", appendonly="no", save="", name="b:2")
    report = assess([good, bad], allow_eviction=False)
    assert report.refused
    assert report.eviction_policy == "noeviction on a:1, allkeys-lru on b:2"
    assert report.persistence == "AOF everysec on a:1, none on b:2"
    assert "allkeys-lru on b:2" in report.refusals[0]
    assert "no persistence on b:2" in report.warnings[0]
    same = assess([good, node(name="c:3")], allow_eviction=False)
    assert same.eviction_policy == "noeviction" and same.persistence == "AOF everysec"


# --- reading CONFIG, with stand-ins for the client ------------------------------------


class FakeServer:
    def __init__(
        self,
        values: dict[str, str],
        error: Exception | None = None,
        info_error: Exception | None = None,
    ) -> None:
        self.values = values
        self.error = error
        self.info_error = info_error

    async def config_get(self, parameter: str, **kwargs: Any) -> dict[str, str]:
        if self.error is not None:
            raise self.error
        return {parameter: self.values[parameter]} if parameter in self.values else {}

    async def info(self, section: str, **kwargs: Any) -> dict[str, Any]:
        if self.info_error is not None:
            raise self.info_error
        if section == "memory":
            return {"maxmemory_policy": self.values["maxmemory-policy"], "used_memory": 1}
        assert section == "persistence"
        return {"aof_enabled": 1 if self.values["appendonly"] == "yes" else 0, "loading": 0}


AOF = {"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "everysec", "save": ""}


async def test_reading_a_server() -> None:
    [config] = await read_node_configs(FakeServer(AOF)) or []
    assert (config.maxmemory_policy, config.appendonly, config.appendfsync) == (
        "noeviction",
        "yes",
        "everysec",
    )


@pytest.mark.parametrize(
    "error",
    [
        NoPermissionError("this user has no permissions to run the 'config|get' command"),
        ResponseError("unknown command 'CONFIG'"),
    ],
)
async def test_a_refused_config_and_info_read_as_not_verifiable(error: Exception) -> None:
    assert await read_node_configs(FakeServer(AOF, error, info_error=error)) is None


async def test_without_config_the_policy_is_read_from_info() -> None:
    refused = NoPermissionError("this user has no permissions to run the 'config|get' command")
    evicting = {**AOF, "maxmemory-policy": "allkeys-lru"}
    [config] = await read_node_configs(FakeServer(evicting, refused)) or []
    assert (config.maxmemory_policy, config.appendonly, config.from_info) == (
        "allkeys-lru",
        "yes",
        True,
    )
    report = assess([config], allow_eviction=False)
    assert report.refused and report.verified
    assert report.persistence == "AOF (fsync policy not readable without CONFIG)"


async def test_without_config_aof_off_is_a_warning() -> None:
    refused = NoPermissionError("no permissions to run the 'config|get' command")
    [config] = await read_node_configs(FakeServer({**AOF, "appendonly": "no"}, refused)) or []
    report = assess([config], allow_eviction=False)
    assert not report.refused
    assert [w for w in report.warnings if w.startswith("AOF is off")]


@dataclass
class FakeNode:
    name: str


class FakeCluster(RedisCluster):
    """Only what read_node_configs uses: the primaries and CONFIG GET on one node."""

    def __init__(self, by_node: dict[str, dict[str, str]]) -> None:  # no connection
        self.by_node = by_node
        self.initialized = False

    async def initialize(self) -> FakeCluster:  # type: ignore[override]
        self.initialized = True
        return self

    def get_primaries(self) -> list[Any]:
        # Like redis-py: no node is known before the client initialized.
        return [FakeNode(name) for name in self.by_node] if self.initialized else []

    async def config_get(self, parameter: Any = "*", *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        values = self.by_node[kwargs["target_nodes"].name]
        return {parameter: values[parameter]}


async def test_reading_every_primary_of_a_cluster() -> None:
    cluster = FakeCluster({"a:1": AOF, "b:2": {**AOF, "maxmemory-policy": "volatile-lru"}})
    configs = await read_node_configs(cluster) or []
    assert [(c.node, c.maxmemory_policy) for c in configs] == [
        ("a:1", "noeviction"),
        ("b:2", "volatile-lru"),
    ]


@pytest.mark.parametrize(
    ("nodes", "evicts_nothing"),
    [
        ([node()], True),
        ([node(), node(name="10.0.0.2:6379")], True),
        ([node(), node("volatile-lru", name="10.0.0.2:6379")], False),
        ([node(None)], False),  # not readable: not known
    ],
)
def test_only_a_policy_read_as_noeviction_everywhere_evicts_nothing(
    nodes: list[NodeConfig], evicts_nothing: bool
) -> None:
    assert assess(nodes, allow_eviction=True).evicts_nothing is evicts_nothing
    assert assess(None, allow_eviction=False).evicts_nothing is False
