"""What the service requires of its Redis, checked before a worker starts.

- **No eviction.** The de-duplication hashes of the performance topic, the metric
  buckets and the dead-letter markers carry TTLs. Under a `volatile-*` policy Redis may
  evict exactly those keys when memory runs short, and an evicted de-duplication hash lets
  a redelivered event count twice; under an `allkeys-*` policy it may evict anything,
  asset states and partition positions included. `maxmemory-policy` must be `noeviction`
  (Redis then refuses writes when full; the handlers retry them and lose nothing). Any
  other policy refuses to start unless `MEDIA_REDIS_ALLOW_EVICTION` is true.
- **Persistence.** AOF with `appendfsync everysec` is recommended; RDB snapshots only, or
  no persistence at all, are warnings that say what a Redis restart loses.

The decision (`assess`) is a pure function of what `CONFIG GET` answered; reading it
(`read_node_configs`) is the only part that talks to Redis. On a Redis Cluster every
primary is read. When `CONFIG` is not permitted (managed Redis, an ACL user without
@admin) the requirements cannot be verified: a warning, never a refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import RedisCluster
from redis.exceptions import ResponseError

from service.config import Settings, variable
from service.errors import RedisRequirementError

ALLOW_EVICTION_VARIABLE = variable("redis_allow_eviction")
REQUIRED_POLICY = "noeviction"
PARAMETERS = ("maxmemory-policy", "appendonly", "appendfsync", "save")
NOT_VERIFIED = (
    "could not verify (CONFIG not permitted): make sure maxmemory-policy is noeviction "
    "(and, recommended, appendonly yes with appendfsync everysec)"
)

Severity = Literal["refused", "warning"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What one Redis server (a cluster primary) answered to `CONFIG GET`."""

    node: str
    maxmemory_policy: str | None
    appendonly: str | None
    appendfsync: str | None
    save: str | None
    # Read from INFO (CONFIG not permitted): fsync policy and save points are unknown.
    from_info: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class RequirementsReport:
    """The verdict on a Redis: its eviction policy, its persistence, and what is wrong."""

    eviction_policy: str
    persistence: str
    problems: tuple[Problem, ...] = ()
    verified: bool = True
    # Every server (every primary of a cluster) read as `noeviction`: no key with a TTL can
    # vanish before its time (the metrics step relies on it to send each bucket's expiry once).
    evicts_nothing: bool = False

    @property
    def refused(self) -> bool:
        return any(p.severity == "refused" for p in self.problems)

    @property
    def refusals(self) -> list[str]:
        return [p.message for p in self.problems if p.severity == "refused"]

    @property
    def warnings(self) -> list[str]:
        return [p.message for p in self.problems if p.severity == "warning"]

    @property
    def verdict(self) -> str:
        if self.refused:
            return "REFUSED"
        if not self.verified:
            return "not verified"
        return "OK with warnings" if self.problems else "OK"

    def raise_if_refused(self) -> None:
        """Raise `RedisRequirementError` with every refusal, each saying how to fix it."""
        if self.refused:
            raise RedisRequirementError("; ".join(self.refusals))


def describe_persistence(config: NodeConfig) -> str:
    """One of: AOF everysec (or always, no), AOF ... + RDB snapshots, RDB snapshots only, none."""
    if config.appendonly is None and config.save is None:
        return "unknown"
    if config.from_info:
        if config.appendonly == "yes":
            return "AOF (fsync policy not readable without CONFIG)"
        return "no AOF (RDB save points not readable without CONFIG)"
    snapshots = bool((config.save or "").strip())
    if config.appendonly == "yes":
        aof = f"AOF {config.appendfsync or '?'}"
        return f"{aof} + RDB snapshots" if snapshots else aof
    return "RDB snapshots only" if snapshots else "none"


def assess(nodes: Sequence[NodeConfig] | None, *, allow_eviction: bool) -> RequirementsReport:
    """The pure policy: `nodes` is what each server answered, None when CONFIG was refused."""
    if nodes is None:
        return RequirementsReport(
            eviction_policy="unknown",
            persistence="unknown",
            problems=(Problem("warning", NOT_VERIFIED),),
            verified=False,
        )
    if not nodes:
        raise ValueError("assess needs the configuration of at least one Redis server")
    problems: list[Problem] = []
    verified = True
    for config in nodes:
        where = "" if len(nodes) == 1 else f" on {config.node}"
        policy = config.maxmemory_policy
        if policy is None:
            verified = False
            problems.append(Problem("warning", f"{NOT_VERIFIED}{where}"))
        elif policy != REQUIRED_POLICY:
            problems.append(_eviction_problem(policy, where, allow_eviction))
        persistence_warning = _persistence_warning(config, where)
        if persistence_warning is not None:
            problems.append(Problem("warning", persistence_warning))
    return RequirementsReport(
        eviction_policy=_summary(nodes, lambda c: c.maxmemory_policy or "unknown"),
        persistence=_summary(nodes, describe_persistence),
        problems=tuple(problems),
        verified=verified,
        evicts_nothing=all(c.maxmemory_policy == REQUIRED_POLICY for c in nodes),
    )


async def read_node_configs(redis: Any) -> list[NodeConfig] | None:
    """What the server, or every primary of a cluster, is configured to do; None when Redis
    permits neither CONFIG GET nor INFO. Connection errors propagate.

    `CONFIG GET` tells everything. An ACL user without it (the service's minimal rule,
    docs/security.md) still reads the eviction policy and whether AOF is on from `INFO`;
    the fsync policy and the RDB save points are then unknown.
    """
    if isinstance(redis, RedisCluster):
        # The client learns the cluster's nodes on its first command: before that it
        # knows no primary.
        await redis.initialize()
        nodes: list[tuple[str, Any]] = [(node.name, node) for node in redis.get_primaries()]
    else:
        nodes = [(_server_name(redis), None)]
    try:
        return [await _config_of(redis, name, node) for name, node in nodes]
    except ResponseError:
        pass  # NoPermissionError, or a managed Redis that renamed or removed CONFIG
    try:
        return [await _info_of(redis, name, node) for name, node in nodes]
    except ResponseError:
        return None


async def _config_of(redis: Any, name: str, node: Any) -> NodeConfig:
    values: dict[str, str | None] = {}
    for parameter in PARAMETERS:
        # One parameter per call: CONFIG GET takes several only from Redis 7.
        answer = await _on_node(redis.config_get, node)(parameter)
        values[parameter] = answer.get(parameter)
    return NodeConfig(
        node=name,
        maxmemory_policy=values["maxmemory-policy"],
        appendonly=values["appendonly"],
        appendfsync=values["appendfsync"],
        save=values["save"],
    )


async def _info_of(redis: Any, name: str, node: Any) -> NodeConfig:
    memory = await _on_node(redis.info, node)("memory")
    persistence = await _on_node(redis.info, node)("persistence")
    aof = persistence.get("aof_enabled")
    return NodeConfig(
        node=name,
        maxmemory_policy=memory.get("maxmemory_policy"),
        appendonly=None if aof is None else ("yes" if str(aof) == "1" else "no"),
        appendfsync=None,
        save=None,
        from_info=True,
    )


async def check_redis_requirements(redis: Any, settings: Settings) -> RequirementsReport:
    """Read the configuration of `redis` and judge it; the worker calls this at start."""
    return assess(await read_node_configs(redis), allow_eviction=settings.redis_allow_eviction)


def _on_node(command: Callable[..., Awaitable[Any]], node: Any) -> Callable[[str], Awaitable[Any]]:
    """`command(argument)` on one cluster node, or on the one server when node is None."""

    def call(argument: str) -> Awaitable[Any]:
        if node is None:
            return command(argument)
        return command(argument, target_nodes=node)

    return call


def _server_name(redis: Any) -> str:
    try:
        kwargs = redis.connection_pool.connection_kwargs
        return f"{kwargs['host']}:{kwargs['port']}"
    except (AttributeError, KeyError):
        return "redis"


def _summary(nodes: Sequence[NodeConfig], describe: Callable[[NodeConfig], str]) -> str:
    described = [describe(config) for config in nodes]
    if len(set(described)) == 1:
        return described[0]
    pairs = zip(described, nodes, strict=True)
    return ", ".join(f"{text} on {config.node}" for text, config in pairs)


def _eviction_problem(policy: str, where: str, allow_eviction: bool) -> Problem:
    may_evict = (
        "any key, asset states and partition positions included"
        if policy.startswith("allkeys-")
        else "keys with a TTL"
    )
    risk = (
        f"maxmemory-policy is {policy}{where}: when memory runs short Redis evicts "
        f"{may_evict}. The de-duplication hashes, metric buckets and dead-letter markers "
        "carry TTLs, so an evicted one makes a redelivered event count twice"
    )
    if allow_eviction:
        return Problem(
            "warning",
            f"EVICTION ALLOWED by {ALLOW_EVICTION_VARIABLE}=true: {risk}; counts are no "
            f"longer exact. Set maxmemory-policy {REQUIRED_POLICY} to restore the guarantee",
        )
    return Problem(
        "refused",
        f"{risk}. Set maxmemory-policy {REQUIRED_POLICY} (CONFIG SET maxmemory-policy "
        f"{REQUIRED_POLICY}, and in redis.conf so that it survives a restart), or set "
        f"{ALLOW_EVICTION_VARIABLE}=true to run anyway without exact counts",
    )


def _persistence_warning(config: NodeConfig, where: str) -> str | None:
    persistence = describe_persistence(config)
    recommended = "recommended: appendonly yes with appendfsync everysec"
    if config.from_info and config.appendonly == "no":
        return (
            f"AOF is off{where}: a Redis restart loses every write since the last RDB "
            "snapshot, if there is one at all, and Kafka does not redeliver the registry's "
            f"events behind them (their offsets are committed); {recommended}"
        )
    if persistence == "none":
        return (
            f"Redis keeps no persistence{where} (appendonly no, no save points): a Redis "
            "restart loses the asset registry, library statistics and indexes, suggestions "
            "and dead-letter counts, and Kafka does not redeliver their events (the offsets "
            "are committed); performance metrics are recounted only from what the topic "
            f"still retains; {recommended}"
        )
    if persistence == "RDB snapshots only":
        return (
            f"Redis persists RDB snapshots only{where}: a Redis restart loses every write "
            "since the last snapshot, and Kafka does not redeliver the registry's events "
            f"behind them (their offsets are committed); {recommended}"
        )
    if config.appendonly == "yes" and config.appendfsync == "no":
        return (
            f"appendfsync is no{where}: the operating system decides when the AOF reaches the "
            f"disk, so a machine crash can lose tens of seconds of writes; {recommended}"
        )
    return None
