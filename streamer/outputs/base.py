"""The contract every video output keeps, and the encoder settings they share.

An output takes redacted `Frame`s with `await send(frame)` and encodes them in its own thread; the
frame's pts is kept (rescaled to the container's time base, never renumbered). Its input queue is
bounded with a named policy: `BLOCK` (files: `send` waits, nothing lost) or `DROP_OLDEST` (live
pushes: `send` never waits, the oldest queued frame is dropped and counted). `aclose()` drains the
queue, flushes the encoder and finalises the container (an mp4 is only playable after it); it is
idempotent. An encoder or network failure is raised as `OutputError` from the next `send` or from
`aclose`, with a one-line message free of credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from streamer.types import Frame


class OutputError(RuntimeError):
    """An output failed; the message is one clear line without credentials."""


class OverflowPolicy(StrEnum):
    BLOCK = "block"  # send() waits for room: no frame lost (files)
    DROP_OLDEST = "drop_oldest"  # send() never waits: the oldest queued frame goes (live pushes)


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    codec: str = "libx264"
    preset: str = "veryfast"
    tune: str | None = None  # "zerolatency" for live pushes
    crf: int = 23
    gop: int = 60  # frames between keyframes; a late viewer waits at most this long
    b_frames: int | None = None  # None = the codec's default; 0 for live pushes
    fps: float = 30.0  # rate-control hint only: timestamps come from the frames
    pix_fmt: str = "yuv420p"  # what every player and browser decodes
    extra: tuple[tuple[str, str], ...] = ()  # more codec options, passed through

    def codec_options(self) -> dict[str, str]:
        options = {"preset": self.preset, "crf": str(self.crf), "g": str(self.gop)}
        if self.tune:
            options["tune"] = self.tune
        if self.b_frames is not None:
            options["bf"] = str(self.b_frames)
        return {**options, **dict(self.extra)}


@dataclass(frozen=True, slots=True)
class OutputStats:
    frames_written: int  # frames handed to the encoder
    frames_dropped: int  # DROP_OLDEST only: frames that never reached the encoder
    pts_rebased: int  # frames whose pts went backwards (a source reconnect) and were shifted


@runtime_checkable
class VideoOutput(Protocol):
    async def send(self, frame: Frame) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def stats(self) -> OutputStats: ...
