"""README must keep telling the truth about settings and routes."""

from __future__ import annotations

from pathlib import Path

from service.api.views import ROUTES
from service.config import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in README
    ]
    assert missing == [], f"README's settings table lacks {missing}"


def test_every_route_is_documented() -> None:
    missing = [path for path in ROUTES if path not in README]
    assert missing == [], f"README's API table lacks {missing}"


def test_the_security_page_shows_the_acl_rule_the_stack_applies() -> None:
    """docs/security.md quotes deploy/redis/service.acl joined into one line, as
    deploy/stack.sh joins it (comments dropped, lines joined by spaces)."""
    root = Path(__file__).resolve().parents[2]
    source = (root / "deploy" / "redis" / "service.acl").read_text()
    rule = " ".join(word for line in source.splitlines() for word in line.split("#", 1)[0].split())
    page = (root / "docs" / "security.md").read_text()
    assert f"\n{rule}\n" in page, "docs/security.md's rule differs from deploy/redis/service.acl"
