"""The thresholds of the suggestion rules: defaults, overridden per channel.

The file format is TOML (`service/rules.toml` is the shipped default); every value
of `[defaults]` can be set again under `[channels.<channel>]`.
"""

from __future__ import annotations

import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.enums import Channel


class ChannelRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ctr_benchmark: float = Field(gt=0, le=1)
    max_file_bytes: int = Field(gt=0)
    shows_modern_formats: bool
    webp_bytes_per_pixel: float = Field(gt=0)
    min_format_saving_bytes: int = Field(ge=0)
    gif_to_video_min_bytes: int = Field(gt=0)
    accepted_ratios: list[float]
    ratio_tolerance: float = Field(ge=0, lt=1)
    display_width: int = Field(gt=0)
    min_resize_saving_bytes: int = Field(ge=0)
    remove_bg_tags: list[str]
    fatigue_ratio: float = Field(gt=0, lt=1)
    fatigue_p_value: float = Field(gt=0, lt=1)


class RulesConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    defaults: ChannelRules
    channels: dict[Channel, ChannelRules]

    def for_channel(self, channel: Channel | None) -> ChannelRules:
        if channel is None:
            return self.defaults
        return self.channels.get(channel, self.defaults)


def parse_rules(text: str) -> RulesConfig:
    """Read a rules file; a channel inherits every default it does not set."""
    raw: dict[str, Any] = tomllib.loads(text)
    defaults = ChannelRules.model_validate(raw.get("defaults", {}))
    channels = {
        Channel(name): ChannelRules.model_validate({**defaults.model_dump(), **values})
        for name, values in raw.get("channels", {}).items()
    }
    return RulesConfig(defaults=defaults, channels=channels)
