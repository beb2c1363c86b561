"""Topics just created are waited for until every partition has a leader
(service/topics.py): a group that assigns before its metadata shows them assigns none."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import TopicError
from service.topics import wait_for_leaders


def described(name: str, leaders: list[int], error: int = 0) -> dict[str, Any]:
    partitions = [
        {"error_code": 0 if leader >= 0 else 5, "partition": n, "leader": leader}
        for n, leader in enumerate(leaders)
    ]
    return {"error_code": error, "topic": name, "partitions": partitions}


class Admin:
    """Answers describe_topics from a script of answers, the last one repeated."""

    def __init__(self, *answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_returns_once_every_partition_has_a_leader() -> None:
    admin = Admin(
        [described("a", [], error=3), described("b", [1, -1])],  # not known yet; no leader
        [described("a", [1, 1]), described("b", [1, -1])],
        [described("a", [1, 1]), described("b", [1, 1])],
    )
    await wait_for_leaders(admin, ["a", "b"], seconds=5)
    assert admin.calls == 3


async def test_says_which_topics_still_lack_a_leader() -> None:
    admin = Admin([described("a", [1]), described("b", [-1, 1])])
    with pytest.raises(TopicError, match=r"topics \['b'\] were created but not every partition"):
        await wait_for_leaders(admin, ["a", "b"], seconds=0.3)
