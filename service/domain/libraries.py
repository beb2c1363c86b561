"""What a library is beyond its assets: its name, description and owner.

They come from `media.library-updated`; the event with the newest `occurred_at` wins
(at the same instant, the greater `event_id`), whatever order the events arrive in, so
applying them again or out of order always ends with the same library.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from service.domain.events import LibraryUpdated

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LibraryInfo(BaseModel):
    """A library's descriptive facts, and the event they come from."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    library_id: str
    name: str
    description: str | None = None
    owner: str
    updated_at: AwareDatetime
    event_id: str

    @property
    def order(self) -> tuple[int, str]:
        """What decides between two versions: the later one wins (microseconds, event id)."""
        return (epoch_micros(self.updated_at), self.event_id)


def library_info(event: LibraryUpdated) -> LibraryInfo:
    return LibraryInfo(
        library_id=event.library_id,
        name=event.name,
        description=event.description,
        owner=event.owner,
        updated_at=event.occurred_at,
        event_id=event.event_id,
    )


def epoch_micros(moment: datetime) -> int:
    """Whole microseconds since 1970, exact (below 2^53, so exact in Lua too, until 2255)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def wins(new: LibraryInfo, stored: LibraryInfo | None) -> bool:
    """Whether `new` replaces what is stored."""
    return stored is None or new.order > stored.order
