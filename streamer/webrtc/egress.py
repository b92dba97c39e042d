"""A stream's output video for WHEP viewers: one frame sink per stream, one track per viewer.

`VideoEgress` is a frame sink of the stream's session (streamer/session.FrameSink), added by the
engine for every stream through the gateway's frame tap. While nobody watches it costs nothing:
frames and results are ignored. With viewers it sends

* the stream's redacted frames when the stream redacts (the same fail-closed rules as the file
  and RTSP outputs: a `RedactionSink` of its own writes into this egress, so a frame without its
  result in time leaves fully redacted, never in the clear), or
* the source's frames as they are, when the stream does not redact (the page draws the masks).

Each viewer's `EgressTrack` holds only the newest frame (a `Latest` slot: a viewer whose encoder
is slower than the stream skips frames, counted in `EgressTrack.skipped`); aiortc encodes in its
own thread. Timestamps follow the frames' capture clock, so the viewer sees the source's pacing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from fractions import Fraction

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from model.types import Concept, FrameTrack
from streamer.channels import ChannelClosed, Latest
from streamer.outputs import OutputStats
from streamer.sinks.redaction import RedactionSink, RedactionSpec
from streamer.types import Frame, SourceInfo

VIDEO_CLOCK = 90_000  # RTP video timestamps tick at 90 kHz
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)


class EgressTrack(MediaStreamTrack):
    """One viewer's video track: the newest frame of its stream, each frame sent once."""

    kind = "video"

    def __init__(self, egress: VideoEgress) -> None:
        super().__init__()
        self._egress = egress
        self._slot: Latest[Frame] = Latest()
        self._first_ns: int | None = None
        self._last_pts = -1
        self.sent = 0

    @property
    def skipped(self) -> int:
        """Frames replaced by a newer one before the encoder took them."""
        return self._slot.dropped

    def offer(self, frame: Frame) -> None:
        if not self._slot.closed:
            self._slot.put(frame)

    def end(self) -> None:
        """The stream ended: the viewer's next recv() ends the track."""
        self._slot.close()

    async def recv(self) -> av.VideoFrame:
        try:
            frame = await self._slot.get()
        except ChannelClosed:
            self.stop()
            raise MediaStreamError from None
        video = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")  # H x W x 3 uint8
        if self._first_ns is None:
            self._first_ns = frame.captured_ns
        pts = (frame.captured_ns - self._first_ns) * VIDEO_CLOCK // 1_000_000_000
        self._last_pts = max(pts, self._last_pts + 1)  # strictly increasing across source hiccups
        video.pts = self._last_pts
        video.time_base = VIDEO_TIME_BASE
        self.sent += 1
        return video

    def stop(self) -> None:
        self._slot.close()
        self._egress.remove_viewer(self)
        super().stop()


class VideoEgress:
    """Frame sink that feeds a stream's WHEP viewers (see module docstring)."""

    def __init__(
        self, stream_id: str, redaction: RedactionSpec | None, concepts: Mapping[int, Concept]
    ) -> None:
        self.stream_id = stream_id
        self.redacted = redaction is not None
        self._viewers: set[EgressTrack] = set()
        self._ended = asyncio.Event()
        self._sent = 0
        self._redactor: RedactionSink | None = None
        if redaction is not None:  # no file or RTSP outputs of its own: this egress is its output
            own = RedactionSpec(
                concepts=redaction.concepts, draw=redaction.draw, budget_s=redaction.budget_s,
                on_missing=redaction.on_missing, queue=redaction.queue,
            )  # fmt: skip
            self._redactor = RedactionSink(own, concepts, [self])

    # --- viewers ------------------------------------------------------------------------------

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def add_viewer(self) -> EgressTrack:
        if self._ended.is_set():
            raise RuntimeError(f"stream {self.stream_id!r} has ended")
        track = EgressTrack(self)
        self._viewers.add(track)
        return track

    def remove_viewer(self, track: EgressTrack) -> None:
        self._viewers.discard(track)

    # --- FrameSink ----------------------------------------------------------------------------

    def stream_started(self, info: SourceInfo | None, live: bool) -> None:
        if self._redactor is not None:
            self._redactor.stream_started(info, live)

    def offer_frame(self, frame: Frame) -> None:
        if not self._viewers:
            return
        if self._redactor is not None:
            self._redactor.offer_frame(frame)
        else:
            self._fan_out(frame)

    def offer_result(self, frame: Frame, track: FrameTrack) -> None:
        if self._viewers and self._redactor is not None:
            self._redactor.offer_result(frame, track)

    def end_input(self) -> None:
        if self._redactor is not None:
            self._redactor.end_input()
        else:
            self._finish()

    def drops(self) -> dict[str, int]:
        if self._redactor is None:
            return {}
        return {f"whep_{cause}": total for cause, total in self._redactor.drops().items()}

    async def run(self) -> None:
        if self._redactor is not None:
            await self._redactor.run()  # returns after end_input, once its queue is drained
        await self._ended.wait()

    # --- VideoOutput, for the redactor --------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        self._fan_out(frame)

    async def aclose(self) -> None:
        self._finish()

    @property
    def stats(self) -> OutputStats:
        return OutputStats(frames_written=self._sent, frames_dropped=0, pts_rebased=0)

    # --- internals ----------------------------------------------------------------------------

    def _fan_out(self, frame: Frame) -> None:
        self._sent += 1
        for viewer in self._viewers:
            viewer.offer(frame)

    def _finish(self) -> None:
        for viewer in list(self._viewers):
            viewer.end()
        self._ended.set()
