"""The Redis key schema, in one place.

Every key starts with the configured prefix. Keys that one atomic step (a Lua
script) touches together share a hash tag in braces, so the design holds on
Redis Cluster: `{a:<asset_id>}` for one asset, `{l:<library_id>}` for one
library, `{h:<sha256>}` for one content hash, `{ps:<partition>.<salt>}` for the
performance sums one Kafka partition writes (salted so that partitions spread
evenly over a cluster's slots), `{in:<topic>:<partition>}` for
the position of a per-message input partition, `{dl}` for dead-letter counters.
docs/redis-keys.md describes each key.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.store.slots import spread_tag


@dataclass(frozen=True, slots=True)
class LibraryKeys:
    stats: str
    members: str
    assets: str
    index_prefix: str
    usage: str
    contents: str
    waste: str

    def tag(self, tag: str) -> str:
        return f"{self.index_prefix}tag:{tag}"

    def category(self, category: str) -> str:
        return f"{self.index_prefix}category:{category}"

    def status(self, status: str) -> str:
        return f"{self.index_prefix}status:{status}"

    def word(self, word: str) -> str:
        """The library's assets with this word in their name, tags or description."""
        return f"{self.index_prefix}word:{word}"

    def prefix(self, prefix: str) -> str:
        """... with a word that starts with this prefix (of at most 32 characters)."""
        return f"{self.index_prefix}prefix:{prefix}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def asset_state(self, asset_id: str) -> str:
        return f"{self.prefix}:{{a:{asset_id}}}:state"

    def asset_seen(self, asset_id: str) -> str:
        return f"{self.prefix}:{{a:{asset_id}}}:seen"

    def asset_history(self, asset_id: str) -> str:
        """The asset's applied changes, scored by their seq (the newest few kept)."""
        return f"{self.prefix}:{{a:{asset_id}}}:history"

    def asset_variants(self, original_id: str) -> str:
        """The variants of an original (members: asset ids, scores 0)."""
        return f"{self.prefix}:{{a:{original_id}}}:variants"

    def library(self, library_id: str) -> LibraryKeys:
        base = f"{self.prefix}:{{l:{library_id}}}:"
        return LibraryKeys(
            stats=f"{base}stats",
            members=f"{base}members",
            assets=f"{base}assets",
            index_prefix=f"{base}ix:",
            usage=f"{base}usage",
            contents=f"{base}contents",
            waste=f"{base}waste",
        )

    def library_info(self, library_id: str) -> str:
        """A library's name, description and owner (from the library-updated topic)."""
        return f"{self.prefix}:{{l:{library_id}}}:info"

    @property
    def libraries(self) -> str:
        """Every library known from an asset or a library-updated event, by id."""
        return f"{self.prefix}:libraries"

    def hash_assets(self, content_sha256: str) -> str:
        return f"{self.prefix}:{{h:{content_sha256}}}:assets"

    def hash_meta(self, content_sha256: str) -> str:
        return f"{self.prefix}:{{h:{content_sha256}}}:meta"

    # --- performance metrics: everything one partition writes shares one hash tag,
    # spread over the cluster's slots (service/store/slots.py)

    def perf_prefix(self, partition: int) -> str:
        return f"{self.prefix}:{{{spread_tag('ps', partition)}}}:"

    def perf_position(self, partition: int, topic: str) -> str:
        return f"{self.perf_prefix(partition)}position:{topic}"

    def perf_counters(self, partition: int) -> str:
        return f"{self.perf_prefix(partition)}counters"

    def perf_seen(self, partition: int) -> str:
        """The event ids the partition applied in the last day (service/store/seen_ids.py)."""
        return f"{self.perf_prefix(partition)}seen"

    def perf_ids(self, partition: int, generation_start: int) -> str:
        """Fingerprints of the event ids the partition applied in one generation of
        processing time, as earlier versions kept them: read until they expire."""
        return f"{self.perf_prefix(partition)}ids:{generation_start}"

    def perf_bucket(self, partition: int, resolution: str, start: int) -> str:
        """One bucket of event time for every asset of the partition: asset_id -> its sums."""
        return f"{self.perf_prefix(partition)}b:{resolution}:{start}"

    def perf_lifetime(self, partition: int) -> str:
        """Lifetime sums of every asset of the partition: asset_id -> its sums."""
        return f"{self.perf_prefix(partition)}life"

    def perf_partition_of(self, asset_id: str) -> str:
        """Which partition's keys hold an asset's metrics (written before its first batch)."""
        return f"{self.prefix}:{{a:{asset_id}}}:perf-partition"

    def perf_dirty(self, partition: int) -> str:
        """Assets whose counters the partition changed since the last board refresh."""
        return f"{self.perf_prefix(partition)}dirty"

    def perf_claimed(self, partition: int) -> str:
        """Assets of the partition's dirty set that a board refresh took and has not
        finished (board_claim.lua)."""
        return f"{self.perf_prefix(partition)}claimed"

    # --- leaderboards

    def board(self, library_id: str, window: str, channel: str | None) -> str:
        """A library's board of one window, for one channel or (None) all channels."""
        dimension = "all" if channel is None else f"ch:{channel}"
        return f"{self.prefix}:{{l:{library_id}}}:lb:{window}:{dimension}"

    def campaign_board(self, campaign_id: str, window: str) -> str:
        """A campaign's board of one window: its assets' totals in that campaign."""
        return f"{self.prefix}:{{c:{campaign_id}}}:lb:{window}"

    def board_campaigns(self, asset_id: str) -> str:
        """The campaigns whose boards hold the asset's entries."""
        return f"{self.prefix}:{{a:{asset_id}}}:lb-campaigns"

    def board_library(self, asset_id: str) -> str:
        """The library whose boards hold the asset's entries."""
        return f"{self.prefix}:{{a:{asset_id}}}:lb-library"

    @property
    def boards_dirty(self) -> str:
        """Assets the registry changed since the last board refresh."""
        return f"{self.prefix}:lb-dirty"

    @property
    def boards_claimed(self) -> str:
        """Assets of `boards_dirty` a board refresh took and has not finished. Its hash tag
        is the dirty set's whole name, so both keys share a slot (board_claim.lua)."""
        return f"{self.prefix}:{{{self.boards_dirty}}}:claimed"

    @property
    def boards_moved(self) -> str:
        """Assets whose 24h or 7d sums moved without an event (the hourly sweep's)."""
        return f"{self.prefix}:lb-moved"

    @property
    def boards_moved_claimed(self) -> str:
        """Assets of `boards_moved` a board refresh took and has not finished (same slot)."""
        return f"{self.prefix}:{{{self.boards_moved}}}:claimed"

    @property
    def boards_refresh_lease(self) -> str:
        """Who refreshes the boards now: a `service refresher` process, or a worker's
        group leader for one run (service/store/leases.py)."""
        return f"{self.prefix}:lb-refresh-lease"

    @property
    def board_libraries(self) -> str:
        return f"{self.prefix}:lb-libraries"

    @property
    def boards_swept_hour(self) -> str:
        return f"{self.prefix}:lb-swept-hour"

    # --- suggestions

    def asset_suggestions(self, asset_id: str) -> str:
        """`<type>|<channel or ->` -> the last suggestion of that slot for the asset."""
        return f"{self.prefix}:{{a:{asset_id}}}:suggestions"

    def closed_suggestions(self, asset_id: str) -> str:
        """suggestion id -> the record of a suggestion its slot no longer holds (superseded)."""
        return f"{self.prefix}:{{a:{asset_id}}}:suggestions-closed"

    def suggestion(self, suggestion_id: str) -> str:
        """The asset of a suggestion id."""
        return f"{self.prefix}:suggestion:{suggestion_id}"

    def library_suggestion_index(
        self, library_id: str, facet: str | None = None, value: str | None = None
    ) -> str:
        """A library's suggestions (members `<time>:<id>`, scores 0, newest first in lex
        order): all of them, or those of one type, priority or status."""
        base = f"{self.prefix}:{{l:{library_id}}}:suggestion-index"
        return base if facet is None else f"{base}:{facet}:{value}"

    def library_suggestion_members(self, library_id: str) -> str:
        """suggestion id -> its member in the library's suggestion indexes."""
        return f"{self.prefix}:{{l:{library_id}}}:suggestion-members"

    def variant_of(self, asset_id: str) -> str:
        """The applied suggestion an asset is the variant of."""
        return f"{self.prefix}:{{a:{asset_id}}}:variant-of"

    def suggestions_realised(self, suggestion_type: str) -> str:
        return f"{self.prefix}:suggestions-realised:{suggestion_type}"

    # --- per-message input partitions, service-wide keys

    def input_position(self, topic: str, partition: int) -> str:
        """Offset of the last message of a per-message input partition fully processed."""
        return f"{self.prefix}:{{in:{topic}:{partition}}}:position"

    @property
    def held_schedule(self) -> str:
        return f"{self.prefix}:held-schedule"

    @property
    def dead_letter_counts(self) -> str:
        return f"{self.prefix}:{{dl}}:counts"

    def dead_letter_marker(self, dead_letter_id: str) -> str:
        return f"{self.prefix}:{{dl}}:seen:{dead_letter_id}"
