"""The asset registry's handlers: registrations, lifecycle events and expired held events.

Processing one message (the same steps whether it is new or a redelivery):

1. Decode (the caller). A message that is not a valid event goes to the dead-letter topic.
2. Load the asset's state and whether this event_id was seen before.
3. If new: apply the domain rule and compare-and-set the state together with the
   event's outcome, in one atomic script. On a concurrent change, reload and retry.
   If seen: take the recorded outcome and the current state instead.
4. Project the state into the library and content-hash indexes and the held-event
   schedule. Projections ignore anything not newer than what they hold, so a replay
   repeats them harmlessly.
5. Emit: dead letters for rejected events (only when this very message produced the
   outcome, not for a re-sent copy of a settled event), and one duplicates-detected
   event per (asset, content hash), marked in Redis after Kafka acknowledged it.
6. Return; the caller acknowledges the message and Faust commits its offset.

A crash anywhere before step 6 redelivers the message and the steps run again with
the same effect: no library statistic is counted twice, no dead letter is lost (a
crash between send and mark can repeat one, with the same event_id).

Held lifecycle events (an asset's events that came before its registration) are bounded:
at most `max_held_per_asset` per asset, one more is dead-lettered (too_many_held_events).
The sweep expires them after `hold_for`: it moves them into the state's outbox in one
compare-and-set (their outcomes become `rejected`), sends the dead letters, then empties
the outbox; if the asset never registered and nothing is left, it deletes the state
instead (compare-and-delete at the same rev), so unregistered ids leave nothing behind
but their seen hash, which expires on its own. A re-sent copy of such an event is still
recognised by the seen hash (its dead letter may be sent again, and is counted once); a
replay from another offset is held again and expires again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from service.domain import registry as rules
from service.domain.enums import DuplicateKind
from service.domain.events import AssetLifecycle, AssetRegistered, DuplicateRef, DuplicatesDetected
from service.domain.library import library_entry
from service.domain.registry import AssetState, Decision, Outcome, SourceRef
from service.domain.variants import original_of
from service.errors import ConcurrentUpdateError
from service.handlers.emit import DeadLetters, Producer, encode
from service.handlers.ports import Clock, OnChange, OnRegistered, RegistryWrites
from service.store.registry import HashPlacement

log = logging.getLogger(__name__)

SWEEP_BATCH = 200
DEFAULT_MAX_HELD_PER_ASSET = 100
DEFAULT_SWEEP_BUDGET_SECONDS = 5.0

Decide = Callable[[AssetState | None], Decision]


class RegistryHandler:
    def __init__(
        self,
        store: RegistryWrites,
        producer: Producer,
        dead_letters: DeadLetters,
        duplicates_topic: str,
        hold_for: timedelta,
        *,
        on_change: OnChange,
        duplicates_sent: Counter,
        on_registered: OnRegistered,
        now: Clock,
        max_attempts: int = 20,
        max_held_per_asset: int = DEFAULT_MAX_HELD_PER_ASSET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._producer = producer
        self._dead_letters = dead_letters
        self._duplicates_topic = duplicates_topic
        self._hold_for = hold_for
        self._max_attempts = max_attempts
        self._on_change = on_change
        self._duplicates_sent = duplicates_sent
        self._on_registered = on_registered
        self._max_held = max_held_per_asset
        self._now = now  # the wall clock: when an event was received, what is due
        self._clock = clock  # monotonic seconds, for the sweep's time budget

    async def registration(self, event: AssetRegistered, source: SourceRef) -> Outcome:
        original = await self._original(event)
        outcome, state = await self._settle(
            event.asset_id,
            event.event_id,
            source,
            lambda state: rules.register(state, event, source, original=original),
        )
        placement = await self._project(state)
        await self._emit_rejections(outcome, source)
        if outcome.result == "applied" and placement is not None:
            await self._announce_duplicates(state, placement, event)
            if state.asset is not None:
                await self._on_registered(state.asset)  # file rules; quiet on a replay
        return outcome

    async def _original(self, event: AssetRegistered) -> str | None:
        """The original of the family `variant_of` names: that asset's own original when
        it is a variant (read now; an asset not registered yet counts as an original)."""
        if event.variant_of is None:
            return None
        referenced = (await self._store.load(event.variant_of)).state
        asset = None if referenced is None else referenced.asset
        return original_of(
            event.asset_id, event.variant_of, None if asset is None else asset.variant_of
        )

    async def lifecycle(self, event: AssetLifecycle, source: SourceRef) -> Outcome:
        received_at = self._now()
        outcome, state = await self._settle(
            event.asset_id,
            event.event_id,
            source,
            lambda state: rules.lifecycle(
                state, event, source, received_at, max_held=self._max_held
            ),
        )
        await self._project(state)
        await self._emit_rejections(outcome, source)
        return outcome

    async def sweep_held(
        self,
        now: datetime | None = None,
        budget_seconds: float = DEFAULT_SWEEP_BUDGET_SECONDS,
    ) -> int:
        """Dead-letter held lifecycle events whose registration never came; returns how many.

        Takes batches of due assets until none is due or `budget_seconds` (on the
        handler's monotonic clock) is spent, so that a backlog drains across sweeps
        without one sweep running unbounded. Each asset is looked at once per sweep, and
        at least one asset per sweep.
        """
        now = now or self._now()
        started = self._clock()
        delivered = 0
        visited: set[str] = set()
        stuck = 0  # visited assets still due: their outbox could not be emptied this time
        while True:
            due = await self._store.due_held(now, SWEEP_BATCH + stuck)
            batch = [asset_id for asset_id in due if asset_id not in visited][:SWEEP_BATCH]
            if not batch:
                return delivered
            for asset_id in batch:
                visited.add(asset_id)
                sent, still_due = await self._sweep_asset(asset_id, now)
                delivered += sent
                stuck += still_due
                if self._clock() - started >= budget_seconds:
                    log.info(
                        "held-event sweep stopped after its %g s budget (%d asset(s), %d dead "
                        "letter(s)); the next sweep continues",
                        budget_seconds,
                        len(visited),
                        delivered,
                    )
                    return delivered

    async def _sweep_asset(self, asset_id: str, now: datetime) -> tuple[int, bool]:
        """Expire held events into the state's outbox, send them, then empty the outbox, or
        delete the state of an asset that never registered once nothing is left of it.

        Returns how many dead letters were sent and whether the asset is still due.
        """
        for _ in range(self._max_attempts):
            loaded = await self._store.load(asset_id)
            state = loaded.state
            if state is None:
                await self._store.unschedule_held(asset_id, due_by=now)
                return 0, False
            state, expired = rules.expire_held(state, now, self._hold_for)
            if expired:
                settled = {
                    r.event_id: Outcome(result="rejected", source=r.source, rejections=[r])
                    for r in expired
                }
                if not await self._store.commit(asset_id, loaded.rev, state, settled):
                    continue
            sent = len(state.undelivered)
            for rejection in state.undelivered:
                await self._dead_letters.rejection(rejection)
            emptied = state.model_copy(update={"undelivered": []})
            if rules.can_forget(emptied):
                if await self._store.forget(asset_id, emptied.rev):
                    await self._store.unschedule_held(asset_id, due_by=now)
                    return sent, False
                # else a new event came meanwhile: it keeps the state (and, if the outbox
                # was not empty, the next sweep sends its dead letters again).
            elif sent and await self._store.replace(emptied):
                state = emptied
            # else the asset changed meanwhile: the next sweep sends them again.
            await self._reschedule(state, now)
            deadline = rules.next_deadline(state, self._hold_for)
            return sent, deadline is not None and deadline <= now
        raise ConcurrentUpdateError(f"asset {asset_id!r} changed {self._max_attempts} times")

    async def _settle(
        self, asset_id: str, event_id: str, source: SourceRef, decide: Decide
    ) -> tuple[Outcome, AssetState]:
        """Steps 2 and 3: the event's outcome and the asset's state after it."""
        for _ in range(self._max_attempts):
            loaded = await self._store.load(asset_id, event_id)
            seen = loaded.seen
            if seen is not None and not (seen.result == "rejected" and seen.source != source):
                return seen, loaded.state or AssetState(asset_id=asset_id)
            # New, or a rejected event delivered again from elsewhere (a replay of its
            # dead letter after a fix): a rejection changed nothing, so decide afresh.
            decision = decide(loaded.state)
            written = await self._store.commit(
                asset_id,
                loaded.rev,
                decision.state if decision.changed else None,
                decision.settled,
                decision.history,
            )
            if written:
                return decision.outcome, decision.state
        raise ConcurrentUpdateError(f"asset {asset_id!r} changed {self._max_attempts} times")

    async def _project(self, state: AssetState) -> HashPlacement | None:
        """Step 4; returns the asset's place in its content-hash index while it is live."""
        store = self._store
        for library_id in state.departed_libraries:
            await store.project_library(library_id, state.asset_id, state.rev, None)
        for content_sha256 in state.departed_hashes:
            await store.project_hash(content_sha256, state.asset_id, state.rev, None)
        for original_id in state.departed_originals:
            await store.project_variant(original_id, state.asset_id, False)
        placement = None
        asset = state.asset
        if asset is not None:
            entry = library_entry(asset)
            await store.project_library(asset.library_id, asset.asset_id, state.rev, entry)
            placement = await store.project_hash(
                asset.content_sha256,
                asset.asset_id,
                state.rev,
                None if entry is None else asset.library_id,
            )
            if entry is None:
                placement = None
            if asset.variant_of is not None:
                await store.project_variant(asset.variant_of, asset.asset_id, entry is not None)
        if state.departed_libraries or state.departed_hashes or state.departed_originals:
            # If the asset changed meanwhile, its next event repeats this cleanup.
            await store.replace(
                state.model_copy(
                    update={
                        "departed_libraries": [],
                        "departed_hashes": [],
                        "departed_originals": [],
                    }
                )
            )
        await self._reschedule(state, self._now())
        if asset is not None:
            await self._on_change([state.asset_id])  # its leaderboard entries may move
        return placement

    async def _reschedule(self, state: AssetState, now: datetime) -> None:
        """Keep the held-event schedule in step with the state."""
        deadline = rules.next_deadline(state, self._hold_for)
        if deadline is not None:
            await self._store.schedule_held(state.asset_id, deadline)
        elif state.asset is not None:
            # Registered: lifecycle events apply at once, nothing can be held any more.
            await self._store.unschedule_held(state.asset_id)
        else:
            await self._store.unschedule_held(state.asset_id, due_by=now)

    async def _emit_rejections(self, outcome: Outcome, source: SourceRef) -> None:
        """Step 5a: dead letters, unless this message is a re-sent copy of a settled event."""
        if outcome.source != source:
            log.info(
                "ignored a re-sent copy of the event settled at %s", outcome.source.dead_letter_id
            )
            return
        for rejection in outcome.rejections:
            await self._dead_letters.rejection(rejection)

    async def _announce_duplicates(
        self, state: AssetState, placement: HashPlacement, event: AssetRegistered
    ) -> None:
        """Step 5b: one duplicates-detected event per asset and content hash."""
        asset = state.asset
        if asset is None or placement.announced or not placement.earlier:
            return
        if asset.content_sha256 != event.content_sha256:
            return  # a later registration changed the content; its own message announces
        duplicates = [
            DuplicateRef(
                asset_id=e.asset_id,
                library_id=e.library_id,
                same_library=e.library_id == asset.library_id,
            )
            for e in placement.earlier
        ]
        detected = DuplicatesDetected(
            event_id=_duplicate_event_id(asset.asset_id, asset.content_sha256),
            occurred_at=event.occurred_at,
            content_sha256=asset.content_sha256,
            asset_id=asset.asset_id,
            library_id=asset.library_id,
            registration_event_id=event.event_id,
            duplicates=duplicates,
            kind=DuplicateKind.REDUNDANT_COPY
            if any(d.same_library for d in duplicates)
            else DuplicateKind.REUSE,
        )
        await self._producer.send(
            self._duplicates_topic, asset.content_sha256.encode(), encode(detected)
        )
        await self._store.mark_announced(asset.content_sha256, asset.asset_id)
        self._duplicates_sent.inc()
        log.info(
            "asset %s repeats the content of %d earlier asset(s)",
            asset.asset_id,
            len(placement.earlier),
        )


def _duplicate_event_id(asset_id: str, content_sha256: str) -> str:
    digest = hashlib.sha256(f"{asset_id}\n{content_sha256}".encode()).hexdigest()
    return f"duplicate/{digest}"
