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
    "live_encoder",
    "open_output",
]


def open_output(target: str, *, fps: float = 30.0) -> VideoOutput:
    """An output for `target` (credential-free OutputError if it cannot be one); `fps` is a hint."""
    if target.lower().startswith(("rtsp://", "rtsps://")):
        return RtspOutput(target, encoder=live_encoder(fps))
    return FileOutput(target, encoder=EncoderConfig(fps=fps))
