"""Realistic performance events, encoded once, as a producer would send them.

The mix follows what analytics systems emit: a few assets get most of the traffic
(Zipf-like popularity), each asset runs in one to three campaigns, most events
carry impressions, some clicks, fewer engagements, shares, comments and
conversions; event time is spread over the last `days` days, weighted towards
recent days, so some events are older than the longest window (30 days) and
count as late. Values are built by formatting, not json.dumps: the producer must
not be the bottleneck of the benchmark (`check_contract` proves they decode).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2

from service.domain.decoding import RawMessage, decode
from service.domain.enums import Channel
from service.domain.events import AssetPerformance

# (partition, key, value): what the producer appends to a partition's batch.
Encoded = tuple[int, bytes, bytes]

CHANNEL_WEIGHTS = {
    Channel.EMAIL: 15,
    Channel.WEB: 25,
    Channel.SOCIAL: 25,
    Channel.DISPLAY: 15,
    Channel.SEARCH: 10,
    Channel.VIDEO: 7,
    Channel.OTHER: 3,
}
POPULARITY_EXPONENT = 0.8  # asset of rank r gets weight 1 / r**0.8
RECENCY_EXPONENT = 1.6  # age = days * u**1.6: about one event in six is over 30 days old
IMPRESSION_EVENT_SHARE = 0.9
# Share of impression events that also carry each interaction, and its mean size.
INTERACTIONS = {
    "clicks": (0.20, 2.0),
    "engagements": (0.10, 3.0),
    "conversions": (0.02, 1.0),
    "shares": (0.03, 1.0),
    "comments": (0.02, 1.0),
}
MEAN_IMPRESSIONS = 25.0


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java and aiokafka) gives a key."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class EventFactory:
    """Deterministic (per seed) stream of encoded events; event ids carry the run id."""

    def __init__(
        self, *, run_id: str, assets: int, campaigns: int, days: int, partitions: int, seed: int
    ) -> None:
        self._rng = random.Random(seed)
        self._run_id = run_id
        self._partitions = partitions
        self._span = days * 86_400
        self._seq = 0
        self._asset_ids = [f"asset-{n:05d}" for n in range(assets)]
        self._keys = [asset.encode() for asset in self._asset_ids]
        self._asset_partitions = [partition_for(key, partitions) for key in self._keys]
        self._cum_popularity = list(
            itertools.accumulate(1 / (rank + 1) ** POPULARITY_EXPONENT for rank in range(assets))
        )
        names = [f"campaign-{n:02d}" for n in range(campaigns)]
        self._asset_campaigns = [
            self._rng.sample(names, self._rng.randint(1, 3)) for _ in range(assets)
        ]
        self._channels = [c.value for c in CHANNEL_WEIGHTS]
        self._cum_channels = list(itertools.accumulate(CHANNEL_WEIGHTS.values()))

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def asset_ids(self) -> list[str]:
        """The catalogue, most popular first."""
        return self._asset_ids

    def campaigns_of(self, index: int) -> list[str]:
        """The campaigns the catalogue's asset number `index` runs in."""
        return self._asset_campaigns[index]

    def events(self, count: int, now: float) -> Iterator[Encoded]:
        """`count` events of the catalogue's assets, event times before `now`."""
        rng = self._rng
        picks = rng.choices(range(len(self._asset_ids)), cum_weights=self._cum_popularity, k=count)
        for index in picks:
            yield (
                self._asset_partitions[index],
                self._keys[index],
                self._encode(self._asset_ids[index], rng.choice(self._asset_campaigns[index]), now),
            )

    def probe(self, asset_id: str, now: float) -> Encoded:
        """An event of an asset no other event names: its first apply is observable."""
        key = asset_id.encode()
        value = self._encode(asset_id, self._asset_campaigns[0][0], now, age=0.0)
        return partition_for(key, self._partitions), key, value

    def _encode(self, asset_id: str, campaign: str, now: float, age: float | None = None) -> bytes:
        rng = self._rng
        self._seq += 1
        if age is None:
            age = self._span * rng.random() ** RECENCY_EXPONENT
        occurred = datetime.fromtimestamp(int(now - age), UTC).isoformat()
        channel = rng.choices(self._channels, cum_weights=self._cum_channels)[0]
        metrics = self._metrics(rng)
        return (
            f'{{"event_id":"{self._run_id}-{self._seq}","occurred_at":"{occurred}",'
            f'"schema_version":1,"asset_id":"{asset_id}","campaign_id":"{campaign}",'
            f'"channel":"{channel}","impressions":{metrics[0]},"clicks":{metrics[1]},'
            f'"engagements":{metrics[2]},"conversions":{metrics[3]},"shares":{metrics[4]},'
            f'"comments":{metrics[5]}}}'
        ).encode()

    @staticmethod
    def _metrics(rng: random.Random) -> list[int]:
        """Six deltas: an impression event with some interactions, or one interaction alone."""
        if rng.random() < IMPRESSION_EVENT_SHARE:
            values = [1 + int(rng.expovariate(1 / MEAN_IMPRESSIONS))]
            for share, mean in INTERACTIONS.values():
                values.append(1 + int(rng.expovariate(1 / mean)) if rng.random() < share else 0)
            return values
        values = [0] * 6
        values[1 + rng.randrange(len(INTERACTIONS))] = 1
        return values


def check_contract(encoded: list[Encoded], topic: str) -> None:
    """Fail before producing anything if the generated events break the contract."""
    for offset, (partition, key, value) in enumerate(encoded):
        message = RawMessage(topic, partition, offset, key, value)
        decode(AssetPerformance, message, max_bytes=1 << 20)
