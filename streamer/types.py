"""Frozen values that flow through the engine's pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame of one stream.

    `rgb` is H x W x 3 uint8, C-contiguous. `pts` counts `time_base` units (None when the source
    has no timestamps); `captured_ns` is the wall clock (time.time_ns) when the frame left the
    decoder, the origin of every end-to-end latency figure.
    """

    stream_id: str
    seq: int
    pts: int | None
    time_base: Fraction
    captured_ns: int
    rgb: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source knows once it is open; `url` never carries credentials."""

    url: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    live: bool  # live sources drop stale frames; files keep every frame unless asked otherwise


class SourceState(StrEnum):
    """What a source reports through `on_status`; a `str`, so plain-string callers keep working.

    connecting -> live -> (stalled ->) reconnecting -> live ... -> ended | failed. `stalled` means no
    packet arrived within the stall timeout; `ended` is a clean end of a file or of `aclose()`,
    `failed` comes right before the `SourceError` reaches the iterator.
    """

    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
