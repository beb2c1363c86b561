"""The API's asset bodies list the entity's public fields, each as the entity holds it."""

from __future__ import annotations

from datetime import timedelta

from service.api.schemas import AssetItem, AssetOut, TotalsOut
from service.domain import registry as rules
from service.domain.metrics import Totals
from service.domain.registry import Asset
from tests.unit.factories import T0, registration, source

# The fields clients read; a field the entity gains is not shown until it is added here.
PUBLIC = [
    "asset_id",
    "library_id",
    "name",
    "description",
    "media_type",
    "format",
    "width",
    "height",
    "file_size_bytes",
    "content_sha256",
    "tags",
    "categories",
    "owner",
    "duration_seconds",
    "bitrate_kbps",
    "frame_rate",
    "color_count",
    "intended_channels",
    "status",
    "registered_at",
    "updated_at",
    "status_changed_at",
    "usage_count",
    "campaigns_used_in",
    "last_used_at",
    "variant_of",
    "variant_label",
]


def an_asset() -> Asset:
    asset = rules.register(None, registration(intended_channels=["web"]), source()).state.asset
    assert asset is not None
    return asset.model_copy(
        update={"usage_count": 2, "campaigns_used_in": ["c1"], "last_used_at": T0 + timedelta(1)}
    )


def test_asset_bodies_show_the_public_fields_as_stored() -> None:
    asset = an_asset()
    stored = asset.model_dump(mode="json")
    item = AssetItem.of(asset).model_dump(mode="json")
    assert list(item) == PUBLIC
    assert item == {name: stored[name] for name in PUBLIC}
    lifetime = TotalsOut.of(Totals(impressions=10, clicks=1))
    body = AssetOut.with_lifetime(asset, lifetime).model_dump(mode="json")
    assert body == {**item, "lifetime": lifetime.model_dump(mode="json"), "variant_count": 0}
    assert list(body) == [*PUBLIC, "lifetime", "variant_count"]


def test_a_field_the_entity_gains_stays_out_of_the_body() -> None:
    class Internal(Asset):
        notes_for_ops: str = "internal"

    asset = Internal(**dict(an_asset()))
    assert "notes_for_ops" not in AssetItem.of(asset).model_dump(mode="json")
