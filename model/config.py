"""Hyperparameters: frozen dataclass configs and one registry, `CONFIGS`.

Defaults are the official SAM 3 values (../shared/reference/sam3-official.md §1a); `tiny` keeps the
architecture and shrinks every dimension so a frame runs in milliseconds on a CPU.

Sections are owned by the module they configure; each sub-config is built from keyword
arguments only and composed into `Sam3Config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# --- backbone: ViT trunk, necks, text encoder ------------------------------------------------


@dataclass(frozen=True)
class VitConfig:
    pass


@dataclass(frozen=True)
class NeckConfig:
    pass


@dataclass(frozen=True)
class TextConfig:
    pass


# --- detector heads: geometry encoder, fusion encoder, decoder, scoring, segmentation ----------


@dataclass(frozen=True)
class DetectorConfig:
    pass


# --- tracker: SAM heads, memory encoder, memory attention, memory bank -------------------------


@dataclass(frozen=True)
class TrackerConfig:
    pass


# --- the online video loop: association, hot-start, re-conditioning thresholds ----------------


@dataclass(frozen=True)
class VideoConfig:
    pass


# --- the whole model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sam3Config:
    name: str = "sam3"
    vit: VitConfig = field(default_factory=VitConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    text: TextConfig = field(default_factory=TextConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    video: VideoConfig = field(default_factory=VideoConfig)


def _tiny() -> Sam3Config:
    """Same architecture, small dimensions: a frame in milliseconds on 2 CPU cores (tests, parity)."""
    return Sam3Config(
        name="tiny",
        vit=replace(VitConfig()),
        neck=replace(NeckConfig()),
        text=replace(TextConfig()),
        detector=replace(DetectorConfig()),
        tracker=replace(TrackerConfig()),
        video=replace(VideoConfig()),
    )


CONFIGS: dict[str, Sam3Config] = {
    "sam3": Sam3Config(),
    "tiny": _tiny(),
}
