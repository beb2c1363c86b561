"""The JSON Schema files under `schemas/`, generated from the event contracts."""

from __future__ import annotations

import json
from pathlib import Path

from service.domain.events import TOPIC_CONTRACTS, json_schema


def rendered() -> dict[str, str]:
    """File name -> file content, for every topic's value contract."""
    return {
        f"{role}.v1.json": json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"
        for role, model in TOPIC_CONTRACTS.items()
    }


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: Path) -> list[str]:
    """Names of the files that are missing or differ from the contracts."""
    stale = []
    for name, text in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
