"""The libraries topic (`media.library-updated`): a library's name, description, owner.

One message: decode (the caller; a bad one is dead-lettered), then store its facts if
they are later than the stored ones (`library_info.lua`, newest `occurred_at` wins) and
list the library. Both steps are idempotent, so a crash that repeats the message, or a
copy of it, changes nothing; events that arrive out of order end the same way.
"""

from __future__ import annotations

import logging

from service.domain.events import LibraryUpdated
from service.domain.libraries import library_info
from service.handlers.ports import LibraryWrites

log = logging.getLogger(__name__)


class LibraryHandler:
    def __init__(self, store: LibraryWrites) -> None:
        self._store = store

    async def updated(self, event: LibraryUpdated) -> bool:
        """Apply one event; True when it is now the library's latest version."""
        applied = await self._store.update(library_info(event))
        await self._store.remember(event.library_id)
        if not applied:
            log.info(
                "library %s: event %s is not later than the stored version; kept the stored one",
                event.library_id,
                event.event_id,
            )
        return applied
