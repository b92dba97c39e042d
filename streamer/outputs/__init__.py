"""Video outputs: redacted frames out as an H.264 file or an RTSP push (see base.py for the contract).

`open_output(target)`: `rtsp://...` -> RtspOutput, anything else is a file path -> FileOutput.
"""

from __future__ import annotations

from streamer.outputs.base import (
    EncoderConfig,
    OutputError,
    OutputStats,
    OverflowPolicy,
    VideoOutput,
)
from streamer.outputs.file import FileOutput
from streamer.outputs.rtsp import RtspOutput, live_encoder

__all__ = [
    "EncoderConfig",
    "FileOutput",
    "OutputError",
    "OutputStats",
    "OverflowPolicy",
    "RtspOutput",
    "VideoOutput",
    "is_push_target",
    "live_encoder",
    "open_output",
]


def is_push_target(target: str) -> bool:
    """Whether `open_output(target)` pushes to a server (`rtsp://`) rather than writes a file."""
    return target.lower().startswith(("rtsp://", "rtsps://"))


def open_output(target: str, *, fps: float = 30.0) -> VideoOutput:
    """An output for `target` (credential-free OutputError if it cannot be one); `fps` is a hint.

    Building one opens nothing (a file is created, a server connected to, at the first frame)."""
    if is_push_target(target):
        return RtspOutput(target, encoder=live_encoder(fps))
    return FileOutput(target, encoder=EncoderConfig(fps=fps))
