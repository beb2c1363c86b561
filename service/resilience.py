"""Telling a failure of the infrastructure from a failure of the message, and waiting well.

A transient failure (Redis or Kafka away, restarting, loading, read-only during a
failover, out of memory, a cluster slot without a primary, the dead-letter topic
unavailable, a login or an ACL that refuses the service) says nothing about the message:
the partition waits and the same records are tried again. Anything else is a property
of the message (or a bug it triggers) and ends in a dead letter, so that the partition
moves on.

`is_transient` is the one place where the exceptions of the client libraries (redis,
aiokafka) are classified; the handlers, the consumer, the leader's timers and the API
ask it rather than naming library exceptions themselves. The service's own transient
failures are the `TransientError`s of `service.errors`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import TransientError

# Redis error replies that describe the server's state, not the command. A Lua script
# passes them on with their code (e.g. "OOM command not allowed ..." from its first write).
_TRANSIENT_REPLIES = (
    "LOADING",
    "READONLY",
    "OOM",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MISCONF",
    "NOREPLICAS",
    "BUSY",
    "MOVED",
    "ASK",
    # The ACL refuses a command or key (a rule missing a grant, docs/security.md): the
    # operator fixes the rule and the paused partition goes on with nothing lost.
    "NOPERM",
)


# What Redis 7 answers when the ACL refuses a command or key that a script runs: no NOPERM
# code, but the same operator's fix and the same wait.
_SCRIPT_ACL_REFUSAL = "The user executing the script can't"

_EXEC_REFUSAL = "Transaction discarded because of: "

_TRANSIENT_REPLY_CLASSES = (
    AskError,  # and MovedError: a slot moving or moved, where a raw connection sees them
    OutOfMemoryError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    NoPermissionError,
)

# Kafka client failures that aiokafka does not mark `retriable` but that say only that the
# broker could not be reached in time, or that it refused the service's login or its ACLs
# a topic or group: the credentials or the ACLs are fixed, and the same records go on.
_KAFKA_UNREACHABLE = (
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


def is_transient(exc: BaseException) -> bool:
    """True when waiting and trying the same records again can succeed."""
    if isinstance(exc, TransientError | RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, RedisClusterException):
        return True  # slot not covered, cluster re-sharding: the cluster heals or is fixed
    if isinstance(exc, _TRANSIENT_REPLY_CLASSES):
        return True  # redis-py turns these codes into classes and drops the code from the text
    if isinstance(exc, ResponseError):
        text = str(exc).lstrip()
        if text.split(" ", 1)[0] in _TRANSIENT_REPLIES or _SCRIPT_ACL_REFUSAL in text:
            return True
        # A transaction refused at EXEC names the server's state after this (Redis checks
        # OOM, READONLY and the like again there): "... discarded because of: OOM ...".
        _, because, reason = text.partition(_EXEC_REFUSAL)
        if because and reason.split(" ", 1)[0] in _TRANSIENT_REPLIES:
            return True
        # Older servers wrap a script's error: "ERR Error running script ... -OOM ...".
        return any(f"-{code} " in text for code in _TRANSIENT_REPLIES)
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or isinstance(exc, _KAFKA_UNREACHABLE)
    return isinstance(exc, ConnectionError | TimeoutError)


@dataclass
class Backoff:
    """Capped exponential back-off, each delay drawn between half and all of its step.

    Jitter keeps the workers of a group from hammering a Redis that just came back
    in lock-step; the cap bounds how long processing trails a recovery.
    """

    initial: float = 0.05
    cap: float = 5.0
    attempts: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
