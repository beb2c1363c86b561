from __future__ import annotations

from pathlib import Path

from service.schema_files import check_schemas, rendered

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_contracts() -> None:
    stale = check_schemas(SCHEMAS)
    assert stale == [], f"regenerate with `service schemas`: {stale}"


def test_every_topic_has_a_schema_with_the_envelope() -> None:
    import json

    for name, text in rendered().items():
        schema = json.loads(text)
        assert {"event_id", "occurred_at"} <= set(schema["required"]), name
        assert schema["additionalProperties"] is False, name
