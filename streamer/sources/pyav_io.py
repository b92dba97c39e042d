"""PyAV pieces shared by the file, network and webcam sources (all run in the decoder thread).

FFmpeg's exception messages end with the URL it was given, credentials included (`...: 'rtsp://
user:pass@host/...'`), so nothing here ever formats an `av` exception with `str()`: `av_reason()`
keeps only FFmpeg's own reason text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction

import av
import av.container
import av.error

from streamer.decode import to_rgb
from streamer.sources.threaded import Producer
from streamer.types import SourceInfo

log = logging.getLogger(__name__)


def av_reason(error: BaseException) -> str:
    """A credential-free reason for an FFmpeg/PyAV error: '404 Not Found', 'Connection refused'."""
    if isinstance(error, av.error.FFmpegError):
        text = error.strerror or type(error).__name__
        return text.removeprefix("Server returned ").strip()
    return type(error).__name__  # never str(): some builtins carry the file name


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    return container.streams.video[0] if container.streams.video else None


def stream_fps(stream: av.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def make_info(url: str, stream: av.VideoStream, size: tuple[int, int], live: bool) -> SourceInfo:
    time_base = stream.time_base or Fraction(1, 90_000)
    return SourceInfo(url, size[0], size[1], stream_fps(stream), time_base, live)


class Stalled(Exception):
    """No packet for at least the stall timeout (raised by `decoded_frames`)."""

    def __init__(self, silent_s: float) -> None:
        super().__init__(f"no packet for {silent_s:.1f} s")
        self.silent_s = silent_s


def decoded_frames(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    out: Producer,
    stall_timeout_s: float | None = None,
) -> Iterator[av.VideoFrame]:
    """Demux + decode one video stream; a packet the decoder rejects is counted and skipped.

    Ends when the demuxer ends (end of file, or a live server that hung up); demux errors (timeouts,
    I/O) propagate to the caller, which decides between reconnecting and failing.

    With `stall_timeout_s`, the watchdog on time since the last packet: when FFmpeg's read timeout
    interrupts a stalled RTSP read it first hands out what its reorder queue still held instead of
    failing, which would double the detection time, so a packet that comes after that much silence
    raises `Stalled` at once.
    """
    last_packet_at = time.monotonic()
    for packet in container.demux(stream):
        now = time.monotonic()
        if stall_timeout_s is not None and now - last_packet_at >= stall_timeout_s:
            raise Stalled(now - last_packet_at)
        last_packet_at = now
        try:
            frames = stream.decode(packet)
        except av.error.InvalidDataError as e:
            out.decode_errors += 1
            log.debug("skipping a packet the decoder rejected: %s", av_reason(e))
            continue
        yield from frames


def frame_to_producer(
    out: Producer, frame: av.VideoFrame, size: tuple[int, int] | None, time_base: Fraction
) -> None:
    """Convert one decoded frame to RGB (in this thread) and hand it to the loop."""
    out.frame(to_rgb(frame, size), frame.pts, frame.time_base or time_base)
