"""The thresholds of the suggestion rules and the platform table the file rules read.

The file format is TOML (`service/rules.toml` is the shipped default):

- `[defaults]`, overridden per channel under `[channels.<channel>]`: CTR benchmarks,
  fatigue thresholds and the savings estimates;
- `[files.<channel>.<kind>]`: what a platform accepts for one media kind (image, video,
  animated): file-size limit, aspect-ratio ranges, pixel sizes, formats. Each entry
  inherits what it does not set from `[files.default.<kind>]`, which also applies to a
  channel without an entry and to an asset meant for no channel in particular.
"""

from __future__ import annotations

import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain.enums import Channel, MediaFormat, MediaKind


class ChannelRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ctr_benchmark: float = Field(gt=0, le=1)
    webp_bytes_per_pixel: float = Field(gt=0)
    min_format_saving_bytes: int = Field(ge=0)
    gif_to_video_min_bytes: int = Field(gt=0)
    min_resize_saving_bytes: int = Field(ge=0)
    remove_bg_tags: list[str]
    fatigue_min_drop: float = Field(gt=0, lt=1)
    fatigue_p_value: float = Field(gt=0, lt=1)
    fatigue_recent_days: int = Field(ge=1, le=15)


Ratio = tuple[float, float]


class FileSpec(BaseModel):
    """What a channel accepts for one media kind. 0 and empty lists mean "no check"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: int = Field(default=0, ge=0)
    ratios: list[Ratio] = []
    ratio_tolerance: float = Field(default=0.01, ge=0, lt=1)
    crops_other_ratios: bool = False  # outside the ratios: centre-cropped, not rejected
    shown_width: int = Field(default=0, ge=0)
    density: float = Field(default=2.0, ge=1)
    recommended: list[tuple[int, int]] = []
    formats: list[MediaFormat] = []
    modern_formats: bool = False
    video_instead: bool = True  # an animated GIF may be delivered as a video here

    @field_validator("ratios")
    @classmethod
    def _ranges_in_order(cls, ranges: list[Ratio]) -> list[Ratio]:
        for low, high in ranges:
            if not 0 < low <= high:
                raise ValueError(
                    f"a ratio range is [low, high] with 0 < low <= high, got [{low}, {high}]"
                )
        return ranges

    @property
    def max_width(self) -> int:
        """The widest upload that is not too large: what the channel shows, at its density;
        0 when there is no pixel-size check."""
        return int(self.shown_width * self.density)

    def accepts_ratio(self, ratio: float) -> bool:
        if not self.ratios:
            return True
        slack = 1 + self.ratio_tolerance
        return any(low / slack <= ratio <= high * slack for low, high in self.ratios)

    def accepts_format(self, fmt: MediaFormat) -> bool:
        return not self.formats or fmt in self.formats


DEFAULT_FILES = "default"


class RulesConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    defaults: ChannelRules
    channels: dict[Channel, ChannelRules]
    files: dict[tuple[Channel | None, MediaKind], FileSpec]

    def for_channel(self, channel: Channel | None) -> ChannelRules:
        if channel is None:
            return self.defaults
        return self.channels.get(channel, self.defaults)

    def file_spec(self, channel: Channel | None, kind: MediaKind) -> FileSpec:
        spec = self.files.get((channel, kind))
        return spec if spec is not None else self.files.get((None, kind), FileSpec())


def parse_rules(text: str) -> RulesConfig:
    """Read a rules file; a channel inherits every default it does not set."""
    raw: dict[str, Any] = tomllib.loads(text)
    defaults = ChannelRules.model_validate(raw.get("defaults", {}))
    channels = {
        Channel(name): ChannelRules.model_validate({**defaults.model_dump(), **values})
        for name, values in raw.get("channels", {}).items()
    }
    table: dict[str, dict[str, Any]] = raw.get("files", {})
    unknown = set(table) - {DEFAULT_FILES, *(c.value for c in Channel)}
    if unknown:
        raise ValueError(
            f"[files.{sorted(unknown)[0]}] names no channel: use default or one of "
            f"{', '.join(c.value for c in Channel)}"
        )
    base = table.get(DEFAULT_FILES, {})
    files: dict[tuple[Channel | None, MediaKind], FileSpec] = {}
    for name, kinds in table.items():
        channel = None if name == DEFAULT_FILES else Channel(name)
        for kind_name, values in kinds.items():
            try:
                kind = MediaKind(kind_name)
            except ValueError:
                raise ValueError(
                    f"[files.{name}.{kind_name}]: the media kind must be one of "
                    f"{', '.join(k.value for k in MediaKind)}"
                ) from None
            files[(channel, kind)] = FileSpec.model_validate({**base.get(kind_name, {}), **values})
    return RulesConfig(defaults=defaults, channels=channels, files=files)
