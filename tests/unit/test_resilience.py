"""What counts as a failure of the infrastructure (wait and retry) and what does not."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ExecAbortError,
    MovedError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import ConcurrentUpdateError, DeadLetterUnavailable
from service.resilience import Backoff, is_transient


@pytest.mark.parametrize(
    "exc",
    [
        RedisConnectionError("refused"),
        RedisTimeoutError("no reply"),
        BusyLoadingError("Redis is loading the dataset in memory"),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ReadOnlyError("You can't write against a read only replica."),
        ClusterDownError("The cluster is down"),
        TryAgainError("Multiple keys request during rehashing of slot"),
        # A slot moved or moving, as the parser gives them (the code dropped from the text).
        MovedError("3999 127.0.0.1:6381"),
        AskError("3999 127.0.0.1:6382"),
        # A transaction refused at EXEC for the server's state, as the parser gives it.
        ExecAbortError(
            "Transaction discarded because of: OOM command not allowed when used memory "
            "> 'maxmemory'."
        ),
        ExecAbortError("Transaction discarded because of: READONLY You can't write ..."),
        ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's failing"),
        ResponseError("BUSY Redis is busy running a script"),
        ResponseError("ERR Error running script (call to f_1): @user_script:3: -OOM command ..."),
        NoPermissionError("this user has no permissions to run the 'hkeys' command"),
        ResponseError("ERR Error running script (call to f_2): @user_script:9: -NOPERM ..."),
        # Redis 7 words an ACL refusal inside a script without the NOPERM code.
        ResponseError(
            "The user executing the script can't run this command or subcommand script: "
            "fc54ffff11e8196f49731bec965aab4c8c3a6051, on @user_script:60."
        ),
        ResponseError(
            "The user executing the script can't access at least one of the keys mentioned "
            "in the command arguments script: 8b8b68, on @user_script:193."
        ),
        AuthenticationError("WRONGPASS invalid username-password pair or user is disabled."),
        KafkaConnectionError("broker gone"),
        KafkaTimeoutError(),
        SaslAuthenticationFailed("Authentication failed during authentication due to ..."),
        TopicAuthorizationFailedError(),
        GroupAuthorizationFailedError(),
        DeadLetterUnavailable("media.dead-letter refused the record"),
        ConcurrentUpdateError("asset a1 changed 20 times"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_infrastructure_failures_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("ERR bad input: event 3 delta 1 must be an integer in [0, 10000000000]"),
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ExecAbortError("Transaction discarded because of previous errors."),
        MessageSizeTooLargeError(),
        ValueError("a bug"),
        KeyError("a bug"),
    ],
)
def test_failures_of_the_message_or_the_code_are_not(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, cap=2.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert delays[0] <= 0.1 and max(delays) > 1.0
    backoff.reset()
    assert backoff.next_delay() <= 0.1
