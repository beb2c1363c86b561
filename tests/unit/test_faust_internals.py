"""The private Faust and aiokafka internals that service/streaming/batching.py builds on.

`BatchingConsumer` replaces Faust's fetch loop and `ShortWaitConsumerThread` replaces its
offset commit; both lean on attributes and methods that are no public API. An upgrade, or
a patched copy of the same version, can change them without a deprecation, and the first
sign would be a worker that loses or repeats records under load. So the exact versions
are pinned here (and in pyproject.toml), and so is a SHA-256 of the source text of every
function the module overrides or relies on.

When a test here fails: read the new source of the function it names, re-check what its
entry says `batching.py` relies on, adapt `batching.py` if needed (the e2e and fault tests
exercise it on the real stack), then update the version or the hash here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass

import pytest

PINNED_VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


@dataclass(frozen=True)
class Internal:
    target: str  # "module:Class.attribute"
    distribution: str
    sha256: str
    relied_on: str  # what batching.py does with it, and what to re-verify

    @property
    def id(self) -> str:
        return self.target.rpartition(":")[2]


INTERNALS = (
    Internal(
        "faust.transport.consumer:Fetcher._fetcher",
        "faust-streaming",
        "68f894f0b577d8100419d6288088177609415aec9fc0ae82aec70b961a2e59b1",
        "the background task that calls `consumer._drain_messages(fetcher)` and restarts it "
        "after a rebalance; BatchingConsumer._drain_messages must still be what it calls, "
        "with the fetcher as its only argument, and a CancelledError during a rebalance must "
        "still restart the loop rather than end it (BatchingConsumer.failure, the watchdog).",
    ),
    Internal(
        "faust.transport.consumer:Consumer._drain_messages",
        "faust-streaming",
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
        "overridden by BatchingConsumer._drain_messages/_drain; _per_message copies its "
        "per-message path for the topics without a batch handler (read offset check, _add_gap, "
        "commit_every/_n_acked, callback raced with suspend_flow, set_read_offset) and its "
        "handling of consumer_stopped_errors and CancelledError; carry any change over.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.__init__",
        "faust-streaming",
        "302410d59e6972d144e35ce91483b28783e01fd039f02a51f0b06c6d3953a001",
        "creates what _drain and lag() read: _read_offset (a defaultdict of TP to the last "
        "offset delivered, or None), _commit_every, callback, suspend_flow; their names and "
        "meaning must be unchanged.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.seek",
        "faust-streaming",
        "b86a9fe05f956b30cf299c787b6787c6e0349cbf1ae556f2456a1e97b15dbb22",
        "BatchingConsumer seeks to the position kept in Redis and relies on seek() setting "
        "_read_offset to the new offset, so that _drain drops records below it.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.on_partitions_revoked",
        "faust-streaming",
        "d04b7ae72c6fc206924a2879d6c90dd383f3e8ba6f4b10a19ca99a921eb8f4db",
        "drops _read_offset and the paused set of revoked partitions; forget_paused() and "
        "_retry_paused() assume a revoked partition comes back unpaused and unread.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.on_partitions_assigned",
        "faust-streaming",
        "29ce96596f05a18c6738eeb2e0d308dd8ef09e9116854129372c474f8638c069",
        "makes every assigned partition active again; the app's assignment callback then "
        "drops the batches kept for paused partitions (forget_paused), which is only right "
        "while nothing of Faust keeps a partition paused across a rebalance.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.getmany",
        "faust-streaming",
        "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e",
        "BatchingConsumer._fetch does what this does, per fetch instead of per record: "
        "records of a partition neither active nor buffered are left out, the monitor is "
        "told the high watermark, a fetch that returns while the flow is stopped (a "
        "rebalance began) is dropped and the partitions sought back to their committed "
        "offsets (perform_seek). Carry any change over.",
    ),
    Internal(
        "faust.transport.consumer:Consumer._wait_next_records",
        "faust-streaming",
        "6218e1969a636b3ff504ad1b8e7ad58a113572e43d746cc96d684ed5153032c6",
        "_fetch calls it for a fetch: it must still wait while the flow is stopped, fetch "
        "only the active (not paused) partitions, and return (records by TP, the active "
        "partitions) with aiokafka's records of a partition in offset order.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.perform_seek",
        "faust-streaming",
        "0e8c130ff4b0afd82c0be9c5fd831316e10febc62c94032833911096e156d7c6",
        "_fetch calls it, as getmany does, when a fetch returns while the flow is stopped.",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Consumer._to_message",
        "faust-streaming",
        "7c24f6511b2fcef7cbfe73526e78de033bfe0df211f1fd30509d699c9deb6ce4",
        "_per_message turns the records of topics without a batch handler into Faust's "
        "messages with it (getmany did); the batch handlers get aiokafka's records as they "
        "are, so service/domain/decoding.py's as_raw reads a timestamp in ms.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.pause_partitions",
        "faust-streaming",
        "27a1c94bdacd54de06593ec4eb040b32e9e7c9534e9af041f6ed66723df5f922",
        "a failed batch pauses its partition with this (taking Faust's TP, see _faust_tp): "
        "it must still take the partition out of the active set that _wait_next_records fetches.",
    ),
    Internal(
        "faust.transport.consumer:Consumer.resume_partitions",
        "faust-streaming",
        "afe6b7c02a41d63cd46d47a03f09b547c85289c108de21d682970057d1015c3b",
        "a batch that succeeds on a retry resumes its partition with this: it must put the "
        "partition back into the active set that _wait_next_records fetches.",
    ),
    Internal(
        "faust.transport.consumer:ThreadDelegateConsumer._getmany",
        "faust-streaming",
        "f9d47aa9010b5ff2b874ba65f927871f3612718d8a9db00b58601554a35236c4",
        "hands the active partitions to the consumer thread: how a pause reaches the fetch.",
    ),
    Internal(
        "faust.transport.base:Transport.create_consumer",
        "faust-streaming",
        "46cc2bf5ab14acfab4e00d77004a1f4b9306b7f4f86293b6708d11bfce11188a",
        "BatchingTransport only swaps the class attribute `Consumer`; this must still "
        "instantiate `self.Consumer`.",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread",
        "faust-streaming",
        "0870ec53dea75083995e3565c0f0a25a1c63ecceaeb238e92e2585e3623af5a9",
        "overridden by BatchingConsumer._new_consumer_thread to build ShortWaitConsumerThread "
        "with the same arguments (consumer, loop, beacon).",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer",
        "faust-streaming",
        "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
        "ShortWaitConsumerThread calls it and then sets `_fetch_max_wait_ms` on the result: "
        "it must still return an AIOKafkaConsumer that is not started yet (its fetcher is "
        "built in start()), and Faust must not read app.fetch_wait_ms itself.",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._commit",
        "faust-streaming",
        "932852ce7a23f658804273d0296de6affaa7d21c19311c279712c2fae91a3b03",
        "replaced by ShortWaitConsumerThread._commit, which does the same commit (offsets "
        "of assigned partitions as OffsetAndMetadata) but logs a failure instead of crashing "
        "the thread; it does not update tp_last_committed_at. Carry any other change over.",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._ensure_consumer",
        "faust-streaming",
        "ff4a4c693b7ec63f4a76dfb61c419380bef70dd32383fe38ebcfcc27091605a6",
        "ShortWaitConsumerThread._commit_quietly gets the aiokafka consumer from it.",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records",
        "faust-streaming",
        "39a2c6c79fc1455a199629912b533458a720c64983bc957420a42feef6593baa",
        "fetches only the active partitions (so a paused partition is not fetched) and "
        "returns nothing while the flow is stopped.",
    ),
    Internal(
        "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__",
        "aiokafka",
        "01506f316191f7c99c785bec915756d1560029a6fad75cba6f4da71e343a8163",
        "stores `fetch_max_wait_ms` as the private `_fetch_max_wait_ms`, which "
        "ShortWaitConsumerThread overwrites after construction.",
    ),
    Internal(
        "aiokafka.consumer.consumer:AIOKafkaConsumer.start",
        "aiokafka",
        "2f1ba70443327538800d348e61042cdedd5a5e6306f40ebe1a06dddba7494c45",
        "builds the Fetcher from `self._fetch_max_wait_ms` here, after our overwrite: if the "
        "fetcher is built earlier or reads another name, the short fetch wait silently "
        "stops applying (docs/benchmarks.md measured what it is worth).",
    ),
)


def _resolve(target: str) -> object:
    module_name, _, qualname = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    # mode's @Service.task wraps the function in a ServiceTask that keeps it as `fun`.
    return getattr(obj, "fun", obj)


def _source_sha256(target: str) -> str:
    source = inspect.getsource(_resolve(target))
    return hashlib.sha256(source.encode()).hexdigest()


@pytest.mark.parametrize("distribution", sorted(PINNED_VERSIONS))
def test_the_installed_version_is_the_one_verified(distribution: str) -> None:
    installed = importlib.metadata.version(distribution)
    expected = PINNED_VERSIONS[distribution]
    assert installed == expected, (
        f"{distribution} {installed} is installed; service/streaming/batching.py was verified "
        f"against {expected}. Re-verify every internal listed in {__name__} against "
        f"{installed} (the failures below say what each is used for), adapt batching.py, "
        "then update PINNED_VERSIONS, the hashes and the pin in pyproject.toml."
    )


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda internal: internal.id)
def test_a_relied_on_internal_is_unchanged(internal: Internal) -> None:
    found = _source_sha256(internal.target)
    version = importlib.metadata.version(internal.distribution)
    assert found == internal.sha256, (
        f"{internal.target} of the installed {internal.distribution} {version} is not the "
        f"source service/streaming/batching.py was verified against (sha256 {found}, "
        f"expected {internal.sha256}).\n"
        f"What batching.py relies on: {internal.relied_on}\n"
        "Read the new source, adapt batching.py if needed, then update this hash in "
        "tests/unit/test_faust_internals.py."
    )


def test_every_internal_is_listed_once() -> None:
    targets = [internal.target for internal in INTERNALS]
    assert len(targets) == len(set(targets))
    assert {internal.distribution for internal in INTERNALS} == set(PINNED_VERSIONS)
