"""How the API shows a suggestion record: the event's fields, its status and outcome."""

from __future__ import annotations

from service.api.views import _suggestion_out
from service.domain.enums import Channel, Priority, SuggestionState, SuggestionType
from service.domain.events import OptimizationSuggestion
from service.domain.suggestion_state import Status
from service.store.suggestions import SuggestionRecord
from tests.unit.factories import T0


def test_a_closed_suggestion_shows_its_closing_event_and_variant() -> None:
    closing = OptimizationSuggestion(
        event_id="sug-1:2",
        occurred_at=T0,
        suggestion_id="sug-1",
        asset_id="a1",
        library_id="L1",
        type=SuggestionType.COMPRESS,
        priority=Priority.HIGH,
        channel=Channel.DISPLAY,
        description="Compress this file",
        estimated_improvement_pct=40.0,
        improvement_basis="bytes saved",
        evidence={},
        created_at=T0,
        revision=2,
        state=SuggestionState.APPLIED,
        new_asset_id="a2",
    )
    record = SuggestionRecord(
        suggestion=closing,
        status=Status.APPLIED,
        closed_at=T0,
        new_asset_id="a2",
        realised_improvement_pct=12.5,
        realised_ci95=(1.0, 20.0),
    )
    out = _suggestion_out(record)
    assert (out.status, out.state, out.revision, out.new_asset_id) == (
        Status.APPLIED,
        SuggestionState.APPLIED,
        2,
        "a2",
    )
    assert out.realised_ci95 == [1.0, 20.0]
